# Type stubs of cbackprop's public API (README.md, "The API").
from typing import Callable, Iterable, Literal, Sequence, TypeAlias

import numpy as np
import numpy.typing as npt

from . import losses as losses
from . import ops as ops
from . import optimizers as optimizers
from . import reference as reference
from ._network_base import NetworkBase as _NetworkBase

__version__: str
# As the package's (a test keeps them equal): what `from cbackprop import *` gives.
__all__ = ["Network", "MSE", "BCE", "CrossEntropy", "SGD", "Adam", "RMSprop", "Loss", "Optimizer",
           "reference", "ops", "kernel_path", "set_num_threads", "get_num_threads", "History",
           "StopTraining", "check_gradients", "GradientCheck", "Trace", "LayerTrace", "__version__"]
# (and "avx512_on_avx2" in a test build that asks for it: never in a wheel)
kernel_path: Literal["avx512", "avx2", "baseline", "avx512_on_avx2"]

ArrayLike: TypeAlias = npt.ArrayLike
# The names of the activation registry (_activations.py) and its alias; a test keeps them equal.
Activation: TypeAlias = Literal["sigmoid", "relu", "tanh", "identity", "linear", "leaky_relu", "softmax",
                               "gelu", "gelu_tanh", "silu"]
Gradients: TypeAlias = list[tuple[np.ndarray, np.ndarray]]

class Loss:
    name: str
    def config(self) -> dict[str, object]: ...

class MSE(Loss):
    scale: float
    reduction: Literal["mean", "sum"]
    def __init__(self, scale: float = 1.0, reduction: Literal["mean", "sum"] = "mean") -> None: ...

class BCE(Loss):
    def __init__(self) -> None: ...

class CrossEntropy(Loss):
    def __init__(self) -> None: ...

class Optimizer:
    name: str
    lr: float
    weight_decay: float
    clip_norm: float | None
    clip_value: float | None
    def config(self) -> dict[str, object]: ...

class SGD(Optimizer):
    momentum: float
    nesterov: bool
    def __init__(self, lr: float = 0.01, momentum: float = 0.0, nesterov: bool = False,
                 weight_decay: float = 0.0, clip_norm: float | None = None,
                 clip_value: float | None = None) -> None: ...

class Adam(Optimizer):
    beta1: float
    beta2: float
    eps: float
    def __init__(self, lr: float = 0.001, beta1: float = 0.9, beta2: float = 0.999,
                 eps: float = 1e-8, weight_decay: float = 0.0, clip_norm: float | None = None,
                 clip_value: float | None = None) -> None: ...

class RMSprop(Optimizer):
    alpha: float
    eps: float
    momentum: float
    def __init__(self, lr: float = 0.01, alpha: float = 0.99, eps: float = 1e-8,
                 momentum: float = 0.0, weight_decay: float = 0.0, clip_norm: float | None = None,
                 clip_value: float | None = None) -> None: ...

class StopTraining(Exception): ...

class History(dict[str, list[float]]):
    monitor: Literal["loss", "val_loss"]
    def __init__(self, keys: Iterable[str], monitor: Literal["loss", "val_loss"]) -> None: ...
    best_epoch: int | None
    stopped_epoch: int | None
    stop_reason: Literal["completed", "early_stopping", "callback", "interrupted", "diverged"]
    @property
    def interrupted(self) -> bool: ...

# callback(net, epoch, logs): return True (or raise StopTraining) to stop after this epoch.
Callback: TypeAlias = Callable[["Network", int, dict[str, float]], object]

class Network(_NetworkBase): ...

class LayerTrace:
    activation: str
    z: np.ndarray
    a: np.ndarray
    delta: np.ndarray
    grad_weights: np.ndarray
    grad_bias: np.ndarray
    weights_before: np.ndarray
    bias_before: np.ndarray
    weights_after: np.ndarray
    bias_after: np.ndarray

class Trace:
    X: np.ndarray
    Y: np.ndarray
    loss: float
    layers: tuple[LayerTrace, ...]
    applied: bool
    loss_function: Loss
    optimizer: Optimizer
    def render(self, precision: int = 4, max_elements: int = 64) -> str: ...

class GradientCheck:
    per_layer: tuple[float, ...]
    checked: tuple[int, ...]
    eps: float
    @property
    def max(self) -> float: ...

def check_gradients(net: _NetworkBase, X: ArrayLike, Y: ArrayLike, eps: float = 1e-6,
                    max_checks_per_layer: int | None = None,
                    seed: int | None = None) -> GradientCheck: ...

def set_num_threads(n: int) -> None: ...
def get_num_threads() -> int: ...
