"""The NumPy reference implementation of cbackprop: the same API as the
compiled :class:`cbackprop.Network`, written the way the maths reads."""
from .network import Network

__all__ = ["Network"]
