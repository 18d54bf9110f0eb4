"""A whole pass of the reference maths: pure functions of the parameters.

Layer ``l`` (counted from 0, as the lists are) reads ``A[l]``, with
``A[0] = X``:

- forward:  ``Z[l] = A[l] @ W[l] + b[l]`` and ``A[l+1] = f_l(Z[l])``;
- the output layer: the loss ``L`` and ``δ[-1] = dL/dZ[-1]``;
- backward: ``dW[l] = A[l]ᵀ δ[l]``, ``db[l] = Σ_rows δ[l]`` and
  ``δ[l-1] = f'_{l-1}(Z[l-1]) applied to δ[l] W[l]ᵀ`` (a product with the
  derivative, ``⊙``, for every activation but softmax).

``weights``, ``biases`` are lists of arrays of one dtype, ``activations``
the layers' activation names and ``loss`` a loss setting (``cb.MSE``,
``cb.BCE`` or ``cb.CrossEntropy``, read by its ``name`` and settings).
Nothing is modified in place. Like :mod:`.ops`, these functions trust their
arguments, and overflow shows as inf/NaN (callers choose ``np.errstate``).
"""
import numpy as np

from . import ops


def forward(weights, biases, activations, X):
    """``(Z, A)``: the pre-activations ``Z[l]`` and activations ``A[l]`` of
    every layer, ``A`` one longer than ``Z`` (``A[0]`` is ``X``)."""
    Z, A = [], [X]
    for W, b, name in zip(weights, biases, activations):
        Z.append(ops.dense_forward(A[-1], W, b))
        A.append(ops.ACTIVATIONS[name][0](Z[-1]))
    return Z, A


def _cross_entropy(loss, activation, z, a, Y):
    if Y.dtype == np.int64:   # class labels
        Y = ops.one_hot(Y, z.shape[1], z.dtype)
    return ops.cross_entropy_loss(z, Y)


def _mse(loss, activation, z, a, Y):
    value, grad_a = ops.mse_loss(a, Y, loss.scale, loss.reduction)
    return value, ops.ACTIVATIONS[activation][1](grad_a, z, a)


# Every loss of the registry (cbackprop/losses.py) by its name:
# (loss settings, output activation, z, a, Y) -> (L, δ).
LOSSES = {
    "mse": _mse,
    "bce": lambda loss, activation, z, a, Y: ops.bce_loss(z, Y),
    "cross_entropy": _cross_entropy,
}


def output_loss(loss, activation, z, a, Y):
    """``(L, δ)``: the loss and ``δ = dL/dZ`` of the output layer, from its
    pre-activation ``z`` and activation ``a``. BCE and cross-entropy give the
    fused delta; MSE goes through ``dL/dA`` and the activation's backward."""
    return LOSSES[loss.name](loss, activation, z, a, Y)


def loss_value(weights, biases, activations, loss, X, Y):
    """The loss ``L`` of the batch (a forward pass, no gradients)."""
    Z, A = forward(weights, biases, activations, X)
    return output_loss(loss, activations[-1], Z[-1], A[-1], Y)[0]


def backward(weights, biases, activations, loss, X, Y):
    """``(L, grads, deltas)``: the loss, ``grads[l] = (dW, db)`` of every layer
    and ``deltas[l] = δ = dL/dZ`` of every layer."""
    Z, A = forward(weights, biases, activations, X)
    n = len(weights)
    L, delta = output_loss(loss, activations[-1], Z[-1], A[-1], Y)
    grads, deltas = [None] * n, [None] * n
    for l in reversed(range(n)):
        deltas[l] = delta
        dW, db, grad_a_prev = ops.dense_backward(delta, A[l], weights[l])
        grads[l] = (dW, db)
        if l > 0:
            f_backward = ops.ACTIVATIONS[activations[l - 1]][1]
            delta = f_backward(grad_a_prev, Z[l - 1], A[l])
    return L, grads, deltas


def intermediates(weights, biases, activations, loss, X, Y):
    """``(Z, A, deltas)``: every intermediate of :func:`forward` and
    :func:`backward` (what ``Network.trace`` shows)."""
    Z, A = forward(weights, biases, activations, X)
    return Z, A, backward(weights, biases, activations, loss, X, Y)[2]
