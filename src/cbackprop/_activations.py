"""The activation registry: every activation is one entry here, and
everything else derives from it — the Network's checks and ``init="auto"``,
the checked ``cbackprop.ops`` boundary, the NumPy reference (its
``<name>_forward`` / ``<name>_backward`` functions), the compiled engine's
dispatch (``code`` is the kernel's number in ``_kernels/activations.pxi``)
and the tests' parametrisations.

A module of constants, so that the reference stays plain NumPy.
"""
from typing import NamedTuple


class Activation(NamedTuple):
    name: str
    code: int             # the kernel's enum value in _kernels/activations.pxi
    derivative: str       # "output": f'(Z) is written through A = f(Z); "z": it needs Z
    init: str             # the scheme init="auto" draws this layer's weights with
    doc: str
    output_only: bool = False   # allowed on the last layer alone


REGISTRY = {entry.name: entry for entry in (
    Activation("sigmoid", 0, "output", "xavier", "1 / (1 + exp(-z)); f' = a (1 - a)"),
    Activation("relu", 1, "output", "he", "max(z, 0); f' = 1 where a > 0, else 0"),
    Activation("tanh", 2, "output", "xavier", "tanh(z); f' = 1 - a²"),
    Activation("identity", 3, "output", "xavier", "z; f' = 1"),
    Activation("leaky_relu", 4, "output", "he", "z if z > 0 else 0.01 z; f' = 1 or 0.01 by the sign of a"),
    Activation("softmax", 5, "output", "xavier",
               "exp(z) / sum(exp(z)) per row; backward is the row-wise Jacobian product", True),
    Activation("gelu", 6, "z", "xavier",
               "z Φ(z) = z (1 + erf(z / √2)) / 2 (torch.nn.GELU()); f' = Φ(z) + z φ(z)"),
    Activation("gelu_tanh", 7, "z", "xavier",
               "z (1 + tanh(√(2/π) (z + 0.044715 z³))) / 2 (nn.GELU(approximate='tanh'))"),
    Activation("silu", 8, "z", "xavier", "z sigmoid(z) (torch.nn.SiLU); f' = s (1 + z (1 - s))"),
)}

# The names, in registry order (error messages list them).
ACTIVATIONS = tuple(REGISTRY)

# Other names accepted for an activation.
ALIASES = {"linear": "identity"}

# Activations whose derivative needs the pre-activation Z (the engine keeps Z for them).
NEEDS_Z = frozenset(name for name, entry in REGISTRY.items() if entry.derivative == "z")
