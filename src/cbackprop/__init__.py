"""cbackprop: a Cython compute core for training dense neural networks.

``cbackprop.Network`` runs on compiled kernels; ``cbackprop.reference.Network``
is the same API in plain NumPy, used to cross-check it.
"""
from . import ops, reference
from ._backend import get_num_threads, kernel_path, set_num_threads
from ._gradcheck import GradientCheck, check_gradients
from ._trace import LayerTrace, Trace
from ._training import History, StopTraining
from . import losses, optimizers
from .losses import *        # every class of the loss registry (losses.__all__)
from .network import Network
from .optimizers import *    # every class of the optimizer registry (optimizers.__all__)

__version__ = "0.1.0"

__all__ = ["Network", *losses.__all__, *optimizers.__all__, "reference", "ops", "kernel_path",
           "set_num_threads", "get_num_threads", "History", "StopTraining", "check_gradients",
           "GradientCheck", "Trace", "LayerTrace", "__version__"]
