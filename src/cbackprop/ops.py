"""Low-level ops for custom training loops: the compiled dense-layer kernels
on arrays you own.

Each function has a NumPy twin of the same name and signature in
:mod:`cbackprop.reference.ops`, and both give the same results (float64 to
about 1e-12 relative, float32 to about 1e-5, where the result is not the
small difference of large numbers: a derivative such as tanh's ``1 - a²``
at saturation keeps fewer digits in the reference, which rounds ``a²``
first). A layer computes
``Z = A_prev @ W + b`` and ``A = f(Z)``; batches are 2-D ``(m, n)`` with
samples as rows, as in :class:`cbackprop.Network`.

The gradients of one hidden layer, every buffer (``h``, ``z``, ``gW1``,
``gb1``, ``gW2``, ``gb2``, ``grad_h``) allocated once with ``np.empty`` and
reused from step to step::

    h = ops.dense_forward(X, W1, b1, "relu", out=h)
    z = ops.dense_forward(h, W2, b2, out=z)                 # logits
    loss, delta = ops.cross_entropy(z, labels, out=z)       # delta overwrites z
    gW2, gb2, grad_h = ops.dense_backward(delta, h, W2, gW2, gb2, grad_h)
    grad_h = ops.activation_backward("relu", grad_h, h, out=grad_h)
    gW1, gb1, _ = ops.dense_backward(grad_h, X, W1, gW1, gb1, need_grad_a_prev=False)

Conventions shared by every op:

- Dtypes: every floating-point input of one call is float32, or every one is
  float64 (no implicit casts: ``TypeError`` for any other dtype, including
  integers and non-numeric data; ``ValueError`` when float32 and float64
  are mixed). The result has that dtype.
- Inputs may be any array (or array-like); those that are not C-contiguous,
  aligned and in native byte order are copied first. Values are not checked:
  NaN and infinity propagate as IEEE arithmetic says (class labels alone are
  range-checked, as they index memory).
- ``out=`` (and the ``grad_*`` outputs of :func:`dense_backward`): ``None``
  allocates the result; otherwise a writable, aligned, C-contiguous
  ``numpy.ndarray`` of exactly the result's shape and dtype, which is
  filled and returned (``result is out``). Anything else raises
  ``ValueError``: an output is never silently copied.
- Aliasing: an output must not share memory with any input, except where an
  op is documented as working in place (``activation_forward`` with
  ``out=z``, ``activation_backward`` with ``out=grad_a``, ``bce`` and
  ``cross_entropy`` with ``out=z``); there the output must be that very
  array (not a partial overlap), and the op's other inputs must still not
  share memory with it. Overlaps raise ``ValueError``. An input copied
  first (above) is read from its copy before anything is written, so only
  its copy is held to this: ``gemm(x.T, w, out=x)`` is allowed and right.
- Wrong ranks or shapes, unknown activation names and empty loss batches
  raise ``ValueError``.
- The kernels run without the GIL; GEMMs and large element-wise passes use
  the threads set by :func:`cbackprop.set_num_threads`. Each call allocates
  its own GEMM panels, so calls from several threads may run at once (on
  arrays they do not share).
"""
import numpy as np
from numpy.lib.array_utils import byte_bounds

from ._backend import engine as _engine
from ._checks import boolean, int64_array, sparse_hint
from ._activations import ACTIVATIONS as _ACTIVATION_NAMES
from ._activations import ALIASES as _ALIASES
from ._activations import NEEDS_Z as _NEEDS_Z
from ._activations import REGISTRY as _ACTIVATION_REGISTRY
from .losses import MSE

__all__ = ["gemm", "dense_forward", "dense_backward", "activation_forward",
           "activation_backward", "mse", "bce", "cross_entropy"]

_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))
# Activation names and aliases -> kernel codes (the fast path's lookup).
_CODES = {**{name: _ACTIVATION_REGISTRY[name].code for name in _ACTIVATION_NAMES},
          **{alias: _ACTIVATION_REGISTRY[name].code for alias, name in _ALIASES.items()}}
_FLOATS_SET = frozenset(_FLOATS)   # native byte order only


# -- the boundary ----------------------------------------------------------------------
def _float_array(name, x, ndim, dtype=None):
    """``x`` as an aligned, C-contiguous, native float32/float64 array of rank
    ``ndim`` (copied only when needed), of ``dtype`` when one is given."""
    if isinstance(x, np.ndarray) and x.ndim == ndim and x.dtype in _FLOATS_SET:
        # The common case, in a fraction of the general checks' time.
        flags = x.flags
        if (dtype is None or x.dtype == dtype) and flags.c_contiguous and flags.aligned:
            return x
    x_given, given_array = x, isinstance(x, np.ndarray)
    if not given_array:
        try:
            x = np.asarray(x)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"{name} could not be read as an array: {exc}") from None
    if x.dtype.kind != "f" or x.dtype.newbyteorder("=") not in _FLOATS:
        raise TypeError(f"{name} must be a float32 or float64 array, got dtype {x.dtype}"
                        f"{sparse_hint(name, x_given)}")
    native = x.dtype.newbyteorder("=")
    if dtype is not None and native != dtype:
        hint = ("" if given_array else f" (given as a {type(x_given).__name__}, it is read "
                                       f"as {native}: pass np.asarray({name}, np.{dtype.name}))")
        raise ValueError(f"{name} is {native}, but the other arrays of this call are "
                         f"{dtype}{hint}")
    if x.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got shape {x.shape}")
    if not (x.flags.c_contiguous and x.flags.aligned and x.dtype.isnative):
        x = np.require(x, native, ["C_CONTIGUOUS", "ALIGNED"])
    return x


def _output(name, out, shape, dtype, inputs, in_place=None):
    """``out`` checked (or a new array): exactly ``shape`` and ``dtype``, writable,
    C-contiguous, sharing no memory with the ``(label, array)`` pairs of
    ``inputs``, except by being the very input labelled ``in_place``."""
    if out is None:
        return np.empty(shape, dtype)
    if not isinstance(out, np.ndarray):
        raise ValueError(f"{name} must be a numpy.ndarray, got {type(out).__name__}")
    if out.dtype != dtype or out.shape != shape:
        raise ValueError(f"{name} must be a {dtype} array of shape {shape}, "
                         f"got {out.dtype} of shape {out.shape}")
    flags = out.flags
    if not (flags.c_contiguous and flags.aligned and flags.writeable):
        raise ValueError(f"{name} must be a writable, aligned, C-contiguous array "
                         "(outputs are never copied)")
    for label, x in inputs:
        if not np.may_share_memory(out, x):
            continue
        if label == in_place and (out is x or _same_memory(out, x)):
            continue
        hint = ""
        if in_place is not None:
            hint = f" (to work in place, pass {in_place} itself as {name})"
        raise ValueError(f"{name} shares memory with {label}{hint}")
    return out


def _same_memory(x, y):
    # Both are C-contiguous: equal bounds, shape and dtype mean the same elements.
    return x.shape == y.shape and x.dtype == y.dtype and byte_bounds(x) == byte_bounds(y)


def _distinct_outputs(outputs):
    outputs = [(name, out) for name, out in outputs if out is not None]
    for i, (name, out) in enumerate(outputs):
        for other_name, other in outputs[i + 1:]:
            if np.may_share_memory(out, other):
                raise ValueError(f"{name} and {other_name} share memory")


def _activation_code(name):
    if not isinstance(name, str):
        raise TypeError(f"the activation must be a name (str), got {type(name).__name__}")
    canonical = _ALIASES.get(name, name)
    if canonical not in _ACTIVATION_NAMES:
        raise ValueError(f"unknown activation {name!r}: use one of {_ACTIVATION_NAMES} or 'linear'")
    return _ACTIVATION_REGISTRY[canonical].code


def _pre_activation(name, z, a):
    """``z`` checked against ``a`` when given; the activations whose derivative
    needs it (gelu, gelu_tanh, silu) refuse to go without it. None otherwise:
    the kernel then reads only ``a``."""
    canonical = _ALIASES.get(name, name)
    if z is None:
        if canonical in _NEEDS_Z:
            raise ValueError(f"activation {name!r} needs z=, the pre-activation: its derivative "
                             "cannot be written through a = f(z)")
        return None
    z = _float_array("z", z, 2, a.dtype)
    _same_shape("z", z, a.shape, "the shape of a")
    return z


def _same_shape(name, x, shape, what):
    if x.shape != shape:
        raise ValueError(f"{name} must have shape {shape} ({what}), got {x.shape}")


def _not_empty(name, x):
    if x.size == 0:
        raise ValueError(f"{name} is empty: a loss needs at least one element")


# (scale, reduction) -> (scale, whether reduction is "sum"), as cb.MSE checked
# them: building an MSE to check them took longer than a small call's kernel.
_MSE_SETTINGS = {}


def _mse_settings(scale, reduction):
    """``cb.MSE(scale, reduction)``'s checks (and errors), remembered for a
    Python float or int scale and a str reduction."""
    key = (scale, reduction) if type(scale) in (float, int) and type(reduction) is str else None
    settings = None if key is None else _MSE_SETTINGS.get(key)
    if settings is None:
        loss = MSE(scale=scale, reduction=reduction)
        settings = (loss.scale, loss.reduction == "sum")
        if key is not None and len(_MSE_SETTINGS) < 256:
            _MSE_SETTINGS[key] = settings
    return settings


# -- GEMM and the dense layer -------------------------------------------------------------
def gemm(a, b, trans_a=False, trans_b=False, out=None):
    """``op(a) @ op(b)`` by the engine's BLIS-style GEMM, where ``op(x)`` is
    ``x.T`` when its ``trans_`` flag is set (read through strides, never copied).

    ``a``, ``b``: 2-D, one dtype; ``op(a)`` is ``(M, K)``, ``op(b)`` ``(K, N)``.
    Returns ``out``, ``(M, N)``, which must not share memory with ``a`` or ``b``.
    Runs on the threads of :func:`cbackprop.set_num_threads` above ~3e6 flops.
    """
    if _engine.gemm_ready(a, b, trans_a, trans_b, out):
        return _engine.op_gemm(a, b, trans_a, trans_b, out)
    trans_a, trans_b = boolean("trans_a", trans_a), boolean("trans_b", trans_b)
    a = _float_array("a", a, 2)
    b = _float_array("b", b, 2, a.dtype)
    M, K = a.shape[::-1] if trans_a else a.shape
    K_b, N = b.shape[::-1] if trans_b else b.shape
    if K_b != K:
        raise ValueError(f"inner dimensions differ: op(a) is {(M, K)}, op(b) is {(K_b, N)}")
    out = _output("out", out, (M, N), a.dtype, [("a", a), ("b", b)])
    return _engine.op_gemm(a, b, trans_a, trans_b, out)


def dense_forward(a_prev, weights, bias, activation="identity", out=None):
    """``f(a_prev @ weights + bias)``: the layer's GEMM, then bias and activation
    in one pass over the result while it is in cache.

    ``a_prev`` ``(m, n_in)``, ``weights`` ``(n_in, n_out)``, ``bias`` ``(n_out,)``;
    ``activation`` any name the Network takes (softmax row-wise). Returns
    ``out``, ``(m, n_out)``, which must not share memory with the inputs. For
    BCE or cross-entropy, use ``activation="identity"`` and pass the logits to
    :func:`bce` / :func:`cross_entropy`.
    """
    code = _CODES.get(activation) if type(activation) is str else None
    if code is not None and _engine.dense_forward_ready(a_prev, weights, bias, out):
        if out is None:
            out = np.empty((a_prev.shape[0], weights.shape[1]), a_prev.dtype)
        return _engine.op_dense_forward(a_prev, weights, bias, code, out)
    code = _activation_code(activation)
    a_prev = _float_array("a_prev", a_prev, 2)
    weights = _float_array("weights", weights, 2, a_prev.dtype)
    bias = _float_array("bias", bias, 1, a_prev.dtype)
    m, n_in = a_prev.shape
    if weights.shape[0] != n_in:
        raise ValueError(f"weights must have {n_in} rows (the width of a_prev), "
                         f"got shape {weights.shape}")
    n_out = weights.shape[1]
    _same_shape("bias", bias, (n_out,), "the columns of weights")
    out = _output("out", out, (m, n_out), a_prev.dtype,
                  [("a_prev", a_prev), ("weights", weights), ("bias", bias)])
    return _engine.op_dense_forward(a_prev, weights, bias, code, out)


def dense_backward(delta, a_prev, weights, grad_weights=None, grad_bias=None, grad_a_prev=None,
                   need_grad_a_prev=True):
    """The gradients of a dense layer from ``delta = dL/dZ``:
    ``(grad_weights, grad_bias, grad_a_prev)`` = ``(a_prevᵀ @ delta,
    delta summed over rows, delta @ weightsᵀ)``.

    ``delta`` ``(m, n_out)``, ``a_prev`` ``(m, n_in)``, ``weights`` ``(n_in, n_out)``;
    the outputs have the shapes of ``weights``, ``bias`` and ``a_prev``
    (parameters first, as in ``Network.loss_and_gradients``). The bias
    gradient is accumulated in float64. ``need_grad_a_prev=False`` (a first
    layer) skips the third product and returns ``None`` in its place
    (``grad_a_prev`` must then be ``None``). ``grad_a_prev`` is dL/dA_prev: turn
    it into the previous layer's delta with :func:`activation_backward`, in
    place. No output may share memory with an input or another output.
    """
    if _engine.dense_backward_ready(delta, a_prev, weights, grad_weights, grad_bias,
                                    grad_a_prev, need_grad_a_prev):
        (m, n_out), n_in, dtype = delta.shape, a_prev.shape[1], delta.dtype
        return _engine.op_dense_backward(
            delta, a_prev, weights,
            np.empty((n_in, n_out), dtype) if grad_weights is None else grad_weights,
            np.empty(n_out, dtype) if grad_bias is None else grad_bias,
            np.empty((m, n_in), dtype) if need_grad_a_prev and grad_a_prev is None
            else grad_a_prev)
    need_grad_a_prev = boolean("need_grad_a_prev", need_grad_a_prev)
    delta = _float_array("delta", delta, 2)
    a_prev = _float_array("a_prev", a_prev, 2, delta.dtype)
    weights = _float_array("weights", weights, 2, delta.dtype)
    m, n_out = delta.shape
    if a_prev.shape[0] != m:
        raise ValueError(f"a_prev must have {m} rows (the rows of delta), got shape {a_prev.shape}")
    n_in = a_prev.shape[1]
    _same_shape("weights", weights, (n_in, n_out), "a_prev's width by delta's width")
    inputs = [("delta", delta), ("a_prev", a_prev), ("weights", weights)]
    grad_weights = _output("grad_weights", grad_weights, (n_in, n_out), delta.dtype, inputs)
    grad_bias = _output("grad_bias", grad_bias, (n_out,), delta.dtype, inputs)
    if need_grad_a_prev:
        grad_a_prev = _output("grad_a_prev", grad_a_prev, (m, n_in), delta.dtype, inputs)
    elif grad_a_prev is not None:
        raise ValueError("grad_a_prev was given, but need_grad_a_prev=False")
    _distinct_outputs([("grad_weights", grad_weights), ("grad_bias", grad_bias),
                       ("grad_a_prev", grad_a_prev)])
    return _engine.op_dense_backward(delta, a_prev, weights, grad_weights, grad_bias, grad_a_prev)


# -- activations ---------------------------------------------------------------------------
def activation_forward(name, z, out=None):
    """``f(z)`` for the activation ``name`` (softmax row-wise, subtracting the row
    maximum; sigmoid by its two stable branches). ``z`` is ``(m, n)``; returns
    ``out``, which may be ``z`` itself (in place)."""
    code = _CODES.get(name) if type(name) is str else None
    if code is not None and _engine.elementwise_ready((z,), out, 0):
        return _engine.op_activation_forward(code, z, np.empty_like(z) if out is None else out)
    code = _activation_code(name)
    z = _float_array("z", z, 2)
    out = _output("out", out, z.shape, z.dtype, [("z", z)], in_place="z")
    return _engine.op_activation_forward(code, z, out)


def activation_backward(name, grad_a, a, out=None, *, z=None):
    """``grad_a ⊙ f'(z)`` (softmax: its Jacobian-vector product). Most
    derivatives are written through the activation's output ``a = f(z)``:
    sigmoid ``a(1-a)``, tanh ``1-a²``, relu and leaky_relu by the sign of ``a``
    (the sign of ``z``). Those of gelu, gelu_tanh and silu need the
    pre-activation itself: pass it as ``z=`` (a ValueError without it); for
    the others ``z`` is checked but not read.

    ``grad_a`` (dL/dA), ``a`` and ``z`` are ``(m, n)``; returns dL/dZ in ``out``,
    which may be ``grad_a`` itself (in place) but must not share memory with
    ``a`` or ``z``.
    """
    code = _CODES.get(name) if type(name) is str else None
    if code is not None and (z is not None or _ALIASES.get(name, name) not in _NEEDS_Z):
        inputs = (grad_a, a) if z is None else (grad_a, a, z)
        if _engine.elementwise_ready(inputs, out, 0):
            return _engine.op_activation_backward(
                code, grad_a, a, a if z is None else z,
                np.empty_like(grad_a) if out is None else out)
    code = _activation_code(name)
    grad_a = _float_array("grad_a", grad_a, 2)
    a = _float_array("a", a, 2, grad_a.dtype)
    _same_shape("a", a, grad_a.shape, "the shape of grad_a")
    z = _pre_activation(name, z, a)
    inputs = [("grad_a", grad_a), ("a", a)] + ([("z", z)] if z is not None else [])
    out = _output("out", out, a.shape, a.dtype, inputs, in_place="grad_a")
    return _engine.op_activation_backward(code, grad_a, a, z if z is not None else a, out)


# -- losses with fused output deltas -------------------------------------------------------
def mse(a, y, scale=1.0, reduction="mean", activation="identity", out=None, *, z=None):
    """Mean squared error ``scale * sum((a - y)**2) / N`` (``reduction="sum"``:
    no division by ``N = a.size``), as ``cb.MSE(scale, reduction)``.

    Returns ``(loss, delta)``: the loss as a float (accumulated in float64) and
    ``delta`` in ``out``: ``dL/dA`` for the default ``activation="identity"``,
    or, fused, ``dL/dZ`` of an output layer with that activation whose output
    is ``a`` (gelu, gelu_tanh and silu need its pre-activation ``z=`` too, as in
    :func:`activation_backward`). ``a`` and ``y`` are ``(m, n)``, not empty;
    ``out`` must not share memory with them.
    """
    scale, reduction_sum = _mse_settings(scale, reduction)
    code = _CODES.get(activation) if type(activation) is str else None
    if code is not None and (z is not None or _ALIASES.get(activation, activation) not in _NEEDS_Z):
        inputs = (a, y) if z is None else (a, y, z)
        if _engine.elementwise_ready(inputs, out, -1) and a.size:
            return _engine.op_mse(a, y, a if z is None else z, scale, reduction_sum, code,
                                  np.empty_like(a) if out is None else out)
    code = _activation_code(activation)
    a = _float_array("a", a, 2)
    y = _float_array("y", y, 2, a.dtype)
    _same_shape("y", y, a.shape, "the shape of a")
    _not_empty("a", a)
    z = _pre_activation(activation, z, a)
    inputs = [("a", a), ("y", y)] + ([("z", z)] if z is not None else [])
    out = _output("out", out, a.shape, a.dtype, inputs)
    return _engine.op_mse(a, y, z if z is not None else a, scale, reduction_sum, code, out)


def bce(z, y, out=None):
    """Binary cross-entropy of ``sigmoid(z)``, from the pre-activation ``z``, as
    ``cb.BCE()``: ``mean(max(z, 0) - y z + log1p(exp(-|z|)))``, no ``log(0)`` and no
    overflow for any finite ``z``.

    Returns ``(loss, delta)`` with the fused ``delta = (sigmoid(z) - y) / N``
    (``N = z.size``) in ``out``, which may be ``z`` itself (in place). ``z`` and
    ``y`` are ``(m, n)``, not empty; targets are not range-checked.
    """
    if _engine.elementwise_ready((z, y), out, 0) and z.size:
        return _engine.op_bce(z, y, np.empty_like(z) if out is None else out)
    z = _float_array("z", z, 2)
    y = _float_array("y", y, 2, z.dtype)
    _same_shape("y", y, z.shape, "the shape of z")
    _not_empty("z", z)
    out = _output("out", out, z.shape, z.dtype, [("z", z), ("y", y)], in_place="z")
    return _engine.op_bce(z, y, out)


def cross_entropy(z, y, out=None):
    """Cross-entropy of ``softmax(z)`` from the logits ``z``, as ``cb.CrossEntropy()``:
    ``-sum(y * log_softmax(z)) / m``.

    ``z`` is ``(m, k)``, not empty; ``y`` is ``(m, k)`` targets of ``z``'s dtype
    (one-hot, or any rows: see below) or ``(m,)`` integer class labels in
    ``[0, k)`` (a label outside it is a ``ValueError``; labels of a
    non-integer dtype, or integer labels as an ``(m, 1)`` column, a
    ``TypeError``). Returns ``(loss, delta)`` with the
    fused ``delta = (softmax(z) * y.sum(row) - y) / m``, which is
    ``(softmax(z) - y) / m`` for rows summing to one, in ``out``; ``out`` may
    be ``z`` itself (in place).
    """
    if _engine.cross_entropy_ready(z, y, out):
        return _engine.op_cross_entropy(z, y, np.empty_like(z) if out is None else out)
    z = _float_array("z", z, 2)
    y = _targets_or_labels(y, z)
    _not_empty("z", z)
    out = _output("out", out, z.shape, z.dtype, [("z", z), ("y", y)], in_place="z")
    return _engine.op_cross_entropy(z, y, out)


def _targets_or_labels(y, z):
    given = y   # a list of targets is converted by _float_array, which says so on a dtype slip
    if not isinstance(y, np.ndarray):
        try:
            y = np.asarray(y)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"y could not be read as an array: {exc}") from None
    if y.ndim == 1:
        if y.dtype.kind not in "iu":
            raise TypeError(f"1-D y holds class labels and must have an integer dtype, "
                            f"got {y.dtype}")
        if y.shape != (z.shape[0],):
            raise ValueError(f"labels y must have shape ({z.shape[0]},), one per row of z, "
                             f"got {y.shape}")
        if y.dtype.kind == "u" and y.size and y.max() > np.iinfo(np.int64).max:
            raise ValueError(f"class label {y.max()} out of range [0, {z.shape[1]})")
        return int64_array(y, ["C_CONTIGUOUS", "ALIGNED"])
    if y.dtype.kind not in "iufb":
        raise TypeError(f"y must be (m,) integer class labels or (m, k) {z.dtype} targets, got "
                        f"dtype {y.dtype}{sparse_hint('y', given)}")
    if y.ndim != 2:
        raise ValueError(f"y must be (m,) class labels or (m, k) targets, got shape {y.shape}")
    if y.dtype.kind in "iub":
        column = ": class labels go 1-D, shape (m,), not a column" if y.shape[1] == 1 else ""
        raise TypeError(f"2-D y holds targets and must have z's dtype ({z.dtype}), got "
                        f"{y.dtype}{column}")
    y = _float_array("y", given, 2, z.dtype)
    _same_shape("y", y, z.shape, "the shape of z, or (m,) class labels")
    return y
