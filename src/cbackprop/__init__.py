"""cbackprop: a Cython compute core for training dense neural networks.

``cbackprop.Network`` runs on compiled kernels; ``cbackprop.reference.Network``
is the same API in plain NumPy, used to cross-check it.
"""
from . import ops, reference
from ._backend import get_num_threads, kernel_path, set_num_threads
from ._gradcheck import GradientCheck, check_gradients
from ._trace import LayerTrace, Trace
from ._training import History, StopTraining
from .losses import BCE, MSE, CrossEntropy
from .network import Network
from .optimizers import SGD, Adam

__version__ = "0.1.0"

__all__ = ["Network", "MSE", "BCE", "CrossEntropy", "SGD", "Adam", "reference", "ops", "kernel_path",
           "set_num_threads", "get_num_threads", "History", "StopTraining", "check_gradients",
           "GradientCheck", "Trace", "LayerTrace", "__version__"]
