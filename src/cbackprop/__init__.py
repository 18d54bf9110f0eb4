"""cbackprop: a Cython compute core for training dense neural networks.

``cbackprop.Network`` runs on compiled kernels; ``cbackprop.reference.Network``
is the same API in plain NumPy, used to cross-check it. ``cbackprop.ops``
runs single kernels (a product, an activation, a loss) on your own arrays.

Conventions:

- A batch ``X`` is ``(m, sizes[0])``, one sample per row; a 1-D ``X`` of
  length ``sizes[0]`` is one sample. Layer ``l`` computes
  ``Z = A_prev @ W + b``, ``A = f(Z)``, with ``W`` of shape
  ``(sizes[l-1], sizes[l])`` and ``b`` of shape ``(sizes[l],)``.
- Targets ``Y`` are ``(m, sizes[-1])``, or ``(m,)`` for one output. For
  ``cross_entropy``: integer class labels ``(m,)``, or rows of
  probabilities (one-hot or soft). For ``bce``: values in [0, 1].
- Parameters and computation are in the network's ``dtype`` (float32 or
  float64); inputs of other numeric dtypes, lists and non-contiguous
  arrays are converted, never modified.
- Errors: ``ValueError`` for wrong shapes, unknown names, empty batches,
  labels out of range, out-of-range hyper-parameters, a loss that does not
  fit the output layer, and NaN or infinity in ``X``, ``Y`` or parameters;
  ``TypeError`` for data that is not numeric and for an argument of the
  wrong type (``lr="0.1"``, ``epochs=10.0``); ``FloatingPointError`` when a
  step diverges (the step changes nothing: ``train_step`` leaves the
  network as it was, ``fit`` as after its last completed step, the history
  in ``err.history``).
- ``set_num_threads(n)`` / ``get_num_threads()``: threads of the compiled
  passes; ``kernel_path``: which engine build runs (``CBACKPROP_CPU``
  forces one).
"""
from . import ops, reference
from ._backend import get_num_threads, kernel_path, set_num_threads
from ._gradcheck import GradientCheck, check_gradients
from ._trace import LayerTrace, Trace
from ._training import History, StopTraining
from . import losses, optimizers
from .losses import *        # every class of the loss registry (losses.__all__)
from .losses import Loss     # their base, for isinstance
from .network import Network
from .optimizers import *    # every class of the optimizer registry (optimizers.__all__)
from .optimizers import Optimizer

__version__ = "0.1.0"

__all__ = ["Network", *losses.__all__, *optimizers.__all__, "Loss", "Optimizer", "reference",
           "ops", "kernel_path",
           "set_num_threads", "get_num_threads", "History", "StopTraining", "check_gradients",
           "GradientCheck", "Trace", "LayerTrace", "__version__"]
