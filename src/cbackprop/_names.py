"""The activation names, defined once: the Network's checks, the checked
``cbackprop.ops`` boundary and the NumPy reference maths all read them here
(a module of constants, so the reference stays plain NumPy)."""

ACTIVATIONS = ("sigmoid", "relu", "tanh", "identity", "leaky_relu", "softmax")

# Other names accepted for an activation.
ALIASES = {"linear": "identity"}
