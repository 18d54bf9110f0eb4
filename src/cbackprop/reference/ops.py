"""The maths of cbackprop in plain NumPy: one function per op, its forward
and its backward side by side.

Notation: a layer computes ``Z = A_prev @ W + b`` and ``A = f(Z)``; a
backward function maps the gradient with respect to its output to the
gradient with respect to its input. Losses return their value and their
gradient with respect to the output activations, except BCE and
cross-entropy, which work from the pre-activation and return the fused
output delta ``dL/dZ``.

The functions of :mod:`cbackprop.ops` (``gemm``, ``dense_forward``,
``dense_backward``, ``activation_forward``, ``activation_backward``, ``mse``,
``bce``, ``cross_entropy``) have twins here with the same names, arguments
and results, ``out=`` included; like every function here they trust their
arguments (``cbackprop.ops`` is the checked boundary).
"""
import math

import numpy as np

from .._activations import ALIASES, REGISTRY

LEAKY_SLOPE = 0.01


def _into(out, result):
    """``result``, or ``out`` filled with it (``out`` may be one of the inputs:
    ``result`` is complete before it is written)."""
    if out is None:
        return result
    out[...] = result
    return out


# -- dense layer -----------------------------------------------------------------
def gemm(a, b, trans_a=False, trans_b=False, out=None):
    """``op(a) @ op(b)``, ``op(x)`` being ``x.T`` when its flag is set."""
    return _into(out, (a.T if trans_a else a) @ (b.T if trans_b else b))


def dense_forward(a_prev, weights, bias, activation="identity", out=None):
    """``f(a_prev @ weights + bias)``; the default activation gives ``Z`` itself."""
    z = a_prev @ weights + bias
    return _into(out, ACTIVATIONS[ALIASES.get(activation, activation)][0](z))


def dense_backward(delta, a_prev, weights, grad_weights=None, grad_bias=None, grad_a_prev=None,
                   need_grad_a_prev=True):
    """``(grad_weights, grad_bias, grad_a_prev)`` from ``delta = dL/dZ``
    (``grad_a_prev`` is None when ``need_grad_a_prev`` is false)."""
    grad_weights = _into(grad_weights, a_prev.T @ delta)
    grad_bias = _into(grad_bias, delta.sum(axis=0))
    if need_grad_a_prev:
        grad_a_prev = _into(grad_a_prev, delta @ weights.T)
    return grad_weights, grad_bias, grad_a_prev


# -- activations: forward(z) -> a, backward(grad_a, z, a) -> grad_z -------------------
def sigmoid_forward(z):
    # Two branches through exp(-|z|), which never overflows.
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1 / (1 + e), e / (1 + e))


def sigmoid_backward(grad_a, z, a):
    return grad_a * a * (1 - a)


def relu_forward(z):
    return np.maximum(z, 0)


def relu_backward(grad_a, z, a):
    return grad_a * (z > 0)


def tanh_forward(z):
    return np.tanh(z)


def tanh_backward(grad_a, z, a):
    return grad_a * (1 - a * a)


def identity_forward(z):
    return z


def identity_backward(grad_a, z, a):
    return grad_a


def leaky_relu_forward(z):
    return np.where(z > 0, z, LEAKY_SLOPE * z)


def leaky_relu_backward(grad_a, z, a):
    return grad_a * np.where(z > 0, 1, LEAKY_SLOPE).astype(z.dtype)


def softmax_forward(z):
    # (initial: a batch of rows with no columns has no maximum otherwise)
    e = np.exp(z - z.max(axis=1, keepdims=True, initial=-np.inf))
    return e / e.sum(axis=1, keepdims=True)


def softmax_backward(grad_a, z, a):
    # Jacobian-vector product of the row-wise softmax.
    return a * (grad_a - (grad_a * a).sum(axis=1, keepdims=True))


def _erfc(x):
    # NumPy has no erfc: the C library's, element by element, in float64.
    return np.vectorize(math.erfc, otypes=[np.float64])(x.astype(np.float64)).astype(x.dtype)


def _normal_pdf(z):
    return np.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)


def _normal_cdf(z):
    # Φ(z) = (1 + erf(z/√2)) / 2 = erfc(-z/√2) / 2: the same function, but
    # erfc keeps its digits where 1 + erf would cancel (z below about -2).
    return 0.5 * _erfc(-z / math.sqrt(2))


def gelu_forward(z):
    return z * _normal_cdf(z)


def gelu_backward(grad_a, z, a):
    # d/dz z Φ(z) = Φ(z) + z φ(z)
    return grad_a * (_normal_cdf(z) + z * _normal_pdf(z))


GELU_TANH_SCALE = math.sqrt(2 / math.pi)
GELU_TANH_CUBIC = 0.044715


def _gelu_tanh_inner(z):
    return GELU_TANH_SCALE * (z + GELU_TANH_CUBIC * z ** 3)


def gelu_tanh_forward(z):
    # z (1 + tanh(u)) / 2 = z σ(2u): the same function, but σ keeps its
    # digits where 1 + tanh(u) would cancel (z below about -3).
    return z * sigmoid_forward(2 * _gelu_tanh_inner(z))


def gelu_tanh_backward(grad_a, z, a):
    # d/dz z σ(2u) = σ(2u) + 2 z σ(2u) (1 - σ(2u)) u'(z). From |z| = 1e4 on
    # σ(2u) (1 - σ(2u)) is exactly 0: z² capped there, not overflowing into 0 x inf.
    s = sigmoid_forward(2 * _gelu_tanh_inner(z))
    du_dz = GELU_TANH_SCALE * (1 + 3 * GELU_TANH_CUBIC * np.minimum(z * z, 1e8))
    return grad_a * (s + 2 * (z * s * (1 - s)) * du_dz)


def silu_forward(z):
    return z * sigmoid_forward(z)


def silu_backward(grad_a, z, a):
    s = sigmoid_forward(z)
    return grad_a * s * (1 + z * (1 - s))


# (forward, backward) of every activation of the registry, by its name.
ACTIVATIONS = {name: (globals()[f"{name}_forward"], globals()[f"{name}_backward"])
               for name in REGISTRY}


def activation_forward(name, z, out=None):
    """``f(z)`` for the activation called ``name`` (a new array, even for identity)."""
    a = ACTIVATIONS[ALIASES.get(name, name)][0](z)
    return _into(out, a.copy() if a is z and out is None else a)


def activation_backward(name, grad_a, a, out=None, *, z=None):
    """``grad_a ⊙ f'(z)``. The derivatives of the activations whose registry
    entry says ``"output"`` are written through ``a = f(z)`` alone (relu's and
    leaky relu's read the sign of ``z``, which is the sign of ``a``); gelu,
    gelu_tanh and silu read ``z``, which they need."""
    name = ALIASES.get(name, name)
    if REGISTRY[name].derivative == "output":
        z = a
    grad_z = ACTIVATIONS[name][1](grad_a, z, a)
    return _into(out, grad_z.copy() if grad_z is grad_a and out is None else grad_z)


# -- losses ----------------------------------------------------------------------
def mse_loss(a, y, scale, reduction):
    """``scale * sum((a - y)**2) / N`` (no division for ``reduction="sum"``) and dL/dA."""
    n = a.size if reduction == "mean" else 1
    # The loss in float64 from the start: a float32 a - y may overflow where
    # its square's sum does not.
    loss = scale * np.sum(np.square(a.astype(np.float64) - y)) / n
    return loss, (2 * scale / n) * (a - y)


def bce_loss(z, y):
    """Binary cross-entropy of ``sigmoid(z)`` and the fused delta ``(sigmoid(z) - y) / N``.

    ``-y log(a) - (1-y) log(1-a) = max(z, 0) - y z + log1p(exp(-|z|))``: no log(0), no overflow.
    """
    n = z.size
    z64 = z.astype(np.float64)
    per_element = np.maximum(z64, 0) - y * z64 + np.log1p(np.exp(-np.abs(z64)))
    return per_element.sum() / n, (sigmoid_forward(z) - y) / n


def cross_entropy_loss(z, y):
    """``-sum(y * log_softmax(z)) / m`` from the logits, and the fused delta.

    The delta is ``(softmax(z) * sum(y) - y) / m`` per row, which is the
    contract's ``(softmax(z) - y) / m`` for targets whose rows sum to one.
    """
    m = z.shape[0]
    z64 = z.astype(np.float64)
    top = z64.max(axis=1, keepdims=True)
    # -log softmax(z)_j = (max - z_j) + log(1 + Σ over the other classes of
    # exp(z - max)), through log1p: a confident row's loss keeps its digits.
    others = np.exp(z64 - top)
    others[np.arange(m), z64.argmax(axis=1)] = 0
    minus_log_softmax = (top - z64) + np.log1p(others.sum(axis=1, keepdims=True))
    # A class without target weight adds nothing, also where its
    # -log softmax overflows (logits further apart than float64's range).
    loss = np.sum(np.multiply(y, minus_log_softmax, where=y != 0,
                              out=np.zeros_like(minus_log_softmax))) / m
    delta = (softmax_forward(z) * y.sum(axis=1, keepdims=True) - y) / m
    return loss, delta


def one_hot(labels, n_classes, dtype):
    encoded = np.zeros((labels.shape[0], n_classes), dtype=dtype)
    encoded[np.arange(labels.shape[0]), labels] = 1
    return encoded


def mse(a, y, scale=1.0, reduction="mean", activation="identity", out=None, *, z=None):
    """``(loss, delta)``: :func:`mse_loss`, its gradient taken through the output
    layer's activation (``dL/dA`` itself for identity; ``z`` as in
    :func:`activation_backward`)."""
    loss, grad_a = mse_loss(a, y, scale, reduction)
    return float(loss), _into(out, activation_backward(activation, grad_a, a, z=z))


def bce(z, y, out=None):
    """``(loss, delta)`` of :func:`bce_loss`."""
    loss, delta = bce_loss(z, y)
    return float(loss), _into(out, delta)


def cross_entropy(z, y, out=None):
    """``(loss, delta)`` of :func:`cross_entropy_loss`; ``y`` may be ``(m,)`` class labels."""
    if y.ndim == 1:
        y = one_hot(y, z.shape[1], z.dtype)
    loss, delta = cross_entropy_loss(z, y)
    return float(loss), _into(out, delta)


# -- optimizer steps: new values from old ones (the network writes them) --------------
def sgd_step(param, grad, velocity, lr, momentum, nesterov):
    """``(new_param, new_velocity)``; ``v <- momentum v + g``, then ``W - lr v``
    (or ``W - lr (g + momentum v)`` with Nesterov)."""
    if momentum == 0:
        return param - lr * grad, velocity
    velocity = momentum * velocity + grad
    return param - lr * (grad + momentum * velocity if nesterov else velocity), velocity


def adam_step(param, grad, m, v, t, lr, beta1, beta2, eps):
    """``(new_param, new_m, new_v)`` of step ``t`` (from 1), with bias correction."""
    m = beta1 * m + (1 - beta1) * grad
    v = beta2 * v + (1 - beta2) * grad * grad
    m_hat = m / (1 - beta1 ** t)
    # sqrt(v̂) as sqrt(v) / sqrt(1 - β2^t), as torch has it: v̂ itself is past
    # the dtype's largest value when v is within a factor 1 / (1 - β2^t) of it.
    root_v_hat = np.sqrt(v) / math.sqrt(1 - beta2 ** t)
    return param - lr * m_hat / (root_v_hat + eps), m, v


def rmsprop_step(param, grad, square_avg, buf, lr, alpha, eps, momentum):
    """``(new_param, new_square_avg, new_buf)`` as torch.optim.RMSprop:
    ``v <- alpha v + (1 - alpha) g²``, then ``W - lr g / (sqrt(v) + eps)``, or with
    momentum ``buf <- momentum buf + g / (sqrt(v) + eps)`` and ``W - lr buf``."""
    square_avg = alpha * square_avg + (1 - alpha) * grad * grad
    step = grad / (np.sqrt(square_avg) + eps)
    if momentum == 0:
        return param - lr * step, square_avg, buf
    buf = momentum * buf + step
    return param - lr * buf, square_avg, buf


# Every optimizer's step by its name, on one uniform signature: the parameter,
# its (decayed) gradient, its two state arrays, the step's number t (from 1)
# and the optimizer; returns the new parameter and state.
OPTIMIZER_STEPS = {
    "sgd": lambda p, g, velocity, unused, t, o: (
        *sgd_step(p, g, velocity, o.lr, o.momentum, o.nesterov), unused),
    "adam": lambda p, g, m, v, t, o: adam_step(p, g, m, v, t, o.lr, o.beta1, o.beta2, o.eps),
    "rmsprop": lambda p, g, square_avg, buf, t, o: rmsprop_step(
        p, g, square_avg, buf, o.lr, o.alpha, o.eps, o.momentum),
}


# -- gradient clipping: raw gradients in, the gradients the optimizer steps with out --
def global_norm(gradients):
    """``sqrt(sum of every squared element of every array)``, accumulated in float64.

    Squares beyond the float64 range (elements above ~1e154) are summed after
    dividing by the largest magnitude, so only a norm that is itself beyond
    the range, or a NaN or infinite element, gives a non-finite result.
    """
    with np.errstate(over="ignore", invalid="ignore"):  # a non-finite norm is a result
        squares = sum(float(np.sum(np.square(g, dtype=np.float64))) for g in gradients)
        if np.isinf(squares):
            biggest = max(float(np.abs(g).max(initial=0)) for g in gradients)
            if np.isfinite(biggest):
                squares = sum(float(np.sum(np.square(g / np.float64(biggest))))
                              for g in gradients)
                return biggest * float(np.sqrt(squares))
        return float(np.sqrt(squares))


def clip_gradients(gradients, clip_norm, clip_value):
    """The gradients to step with: scaled by ``clip_norm / global_norm`` when the
    global norm exceeds ``clip_norm``, then clamped to ``[-clip_value, clip_value]``
    (a threshold of None turns that clipping off). Returns a new list; the
    arrays given are never modified.

    Raises FloatingPointError when ``clip_norm`` is set and the global norm is
    not finite: a step with such a gradient is refused.
    """
    gradients = list(gradients)
    if clip_norm is not None:
        norm = global_norm(gradients)
        if not np.isfinite(norm):
            raise FloatingPointError(f"the global gradient norm is {norm} (training diverged); "
                                     "parameters were not updated")
        if norm > clip_norm:
            # The factor in double, rounded once to the gradients' dtype.
            gradients = [g * g.dtype.type(clip_norm / norm) for g in gradients]
    if clip_value is not None:
        clipped = []
        for g in gradients:
            # The bound rounded to the gradients' dtype (a float32 bound above the
            # float32 range is infinity, which clamps nothing).
            with np.errstate(over="ignore"):
                limit = np.float64(clip_value).astype(g.dtype)
            clipped.append(np.clip(g, -limit, limit))
        gradients = clipped
    return gradients
