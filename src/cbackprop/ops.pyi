# Type stubs of cbackprop.ops (the same signatures as cbackprop.reference.ops' twins).
from typing import Literal, TypeAlias

import numpy as np
import numpy.typing as npt

from . import Activation

ArrayLike: TypeAlias = npt.ArrayLike
FloatArray: TypeAlias = npt.NDArray[np.float32] | npt.NDArray[np.float64]

__all__ = ["gemm", "dense_forward", "dense_backward", "activation_forward",
           "activation_backward", "mse", "bce", "cross_entropy"]

def gemm(a: ArrayLike, b: ArrayLike, trans_a: bool = False, trans_b: bool = False,
         out: FloatArray | None = None) -> FloatArray: ...
def dense_forward(a_prev: ArrayLike, weights: ArrayLike, bias: ArrayLike,
                  activation: Activation = "identity", out: FloatArray | None = None) -> FloatArray: ...
def dense_backward(delta: ArrayLike, a_prev: ArrayLike, weights: ArrayLike,
                   grad_weights: FloatArray | None = None, grad_bias: FloatArray | None = None,
                   grad_a_prev: FloatArray | None = None, need_grad_a_prev: bool = True
                   ) -> tuple[FloatArray, FloatArray, FloatArray | None]: ...
def activation_forward(name: Activation, z: ArrayLike, out: FloatArray | None = None) -> FloatArray: ...
def activation_backward(name: Activation, grad_a: ArrayLike, a: ArrayLike,
                        out: FloatArray | None = None, *, z: ArrayLike | None = None) -> FloatArray: ...
def mse(a: ArrayLike, y: ArrayLike, scale: float = 1.0, reduction: Literal["mean", "sum"] = "mean",
        activation: Activation = "identity", out: FloatArray | None = None, *,
        z: ArrayLike | None = None) -> tuple[float, FloatArray]: ...
def bce(z: ArrayLike, y: ArrayLike, out: FloatArray | None = None) -> tuple[float, FloatArray]: ...
def cross_entropy(z: ArrayLike, y: ArrayLike, out: FloatArray | None = None) -> tuple[float, FloatArray]: ...
