# The NumPy reference has exactly the compiled Network's API.
from .. import Network as _CompiledNetwork

class Network(_CompiledNetwork): ...
