# The NumPy reference has exactly the compiled Network's API: both derive from
# the same base (a sibling of cbackprop.Network, not a subclass).
from .._network_base import NetworkBase as _NetworkBase
from . import ops as ops

class Network(_NetworkBase): ...
