"""Checks on user input, run once at the public boundary.

Everything below the boundary (the NumPy reference's ops and the compiled
kernels) trusts what it is given: shapes agree, dtypes match, arrays are
C-contiguous. Value checks (finiteness, label range) are done here for the
reference; the compiled engine does the same checks in C as its first pass.
"""
import numbers

import numpy as np

from ._names import ACTIVATIONS
from ._names import ALIASES as _ALIASES
from .losses import BCE, CrossEntropy

DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def check_sizes(sizes):
    try:
        sizes = list(sizes)
    except TypeError:
        raise TypeError(f"sizes must be a sequence of layer widths, got {type(sizes).__name__}") from None
    if len(sizes) < 2:
        raise ValueError(f"sizes needs at least two entries (inputs and outputs), got {sizes}")
    for width in sizes:
        if isinstance(width, bool) or not isinstance(width, numbers.Integral):
            raise TypeError(f"layer widths must be integers, got {width!r} in {sizes}")
        if width < 1:
            raise ValueError(f"layer widths must be >= 1, got {width} in {sizes}")
    return [int(width) for width in sizes]


def check_activations(activations, n_layers):
    if isinstance(activations, str):
        raise TypeError("activations must be a list with one name per weight layer, not a single string")
    activations = [_ALIASES.get(a, a) for a in activations]
    if len(activations) != n_layers:
        raise ValueError(
            f"expected {n_layers} activation names (one per weight layer), got {len(activations)}"
        )
    for i, name in enumerate(activations):
        if name not in ACTIVATIONS:
            raise ValueError(f"unknown activation {name!r}: use one of {ACTIVATIONS} or 'linear'")
        if name == "softmax" and i != n_layers - 1:
            raise ValueError("softmax is only supported on the last layer")
    return activations


def check_dtype(dtype):
    try:
        dtype = np.dtype(dtype)
    except TypeError:
        raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}") from None
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype}")
    return dtype


def check_loss_fits(loss, output_activation):
    if isinstance(loss, BCE) and output_activation != "sigmoid":
        raise ValueError(f"loss 'bce' needs a sigmoid output layer, got {output_activation!r}")
    if isinstance(loss, CrossEntropy) and output_activation != "softmax":
        raise ValueError(f"loss 'cross_entropy' needs a softmax output layer, got {output_activation!r}")


def check_seed(seed):
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, numbers.Integral)):
        raise TypeError(f"seed must be an int or None, got {type(seed).__name__}")
    if seed is not None and seed < 0:
        raise ValueError(f"seed must be non-negative, got {seed}")
    return seed


def numeric_array(name, data):
    """``data`` as an ndarray of a real numeric dtype (no copy when possible)."""
    try:
        array = np.asarray(data)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{name} could not be read as an array: {exc}") from None
    if array.dtype.kind not in "iuf":
        raise TypeError(f"{name} must hold real numbers, got dtype {array.dtype}")
    return array


def as_dtype(name, array, dtype):
    """C-contiguous ``array`` cast to ``dtype``; copies only when needed."""
    if array.dtype == dtype and array.flags.c_contiguous:
        return array
    # Values beyond float32's range become inf here and are then reported
    # by the finiteness check, not as a cast warning.
    with np.errstate(over="ignore", invalid="ignore"):
        return np.ascontiguousarray(array, dtype=dtype)


def as_batch(X, n_inputs, dtype):
    """Returns ``(X2d, single)``: a C-contiguous ``(m, n_inputs)`` batch of ``dtype``."""
    X = numeric_array("X", X)
    single = X.ndim == 1
    if single:
        X = X.reshape(1, -1)
    if X.ndim != 2 or X.shape[1] != n_inputs:
        raise ValueError(f"X must have shape (m, {n_inputs}) or ({n_inputs},), got {np.shape(X)}")
    if X.shape[0] == 0:
        raise ValueError("X is an empty batch (0 samples)")
    return as_dtype("X", X, dtype), single


def as_targets(Y, m, n_outputs, loss, dtype, single):
    """Targets as ``(m, n_outputs)`` of ``dtype``, or int64 class labels ``(m,)``.

    Labels are returned only for cross-entropy; their range is checked with
    the other values (``check_values``).
    """
    Y = numeric_array("Y", Y)
    if isinstance(loss, CrossEntropy) and _looks_like_labels(Y, m, single):
        return _as_labels(Y.reshape(m))
    if Y.shape == (m, n_outputs):
        pass
    elif Y.shape == (m,) and n_outputs == 1:
        Y = Y.reshape(m, 1)
    elif single and Y.shape in ((n_outputs,), ()) and Y.size == n_outputs:
        Y = Y.reshape(1, n_outputs)
    else:
        raise ValueError(f"Y must have shape ({m}, {n_outputs}) to match the output, got {Y.shape}")
    return as_dtype("Y", Y, dtype)


def _looks_like_labels(Y, m, single):
    """Cross-entropy targets given as one class label per sample (a 1-D row
    of k > 1 entries for a single sample is a one-hot row, not labels)."""
    return Y.shape == (m,) or (single and Y.ndim == 0)


def _as_labels(Y):
    if Y.dtype.kind == "f":
        if not np.all(np.isfinite(Y)):
            raise ValueError("class labels contain NaN or infinity")
        if np.any(Y != np.round(Y)):
            raise ValueError("class labels must be whole numbers")
    return np.ascontiguousarray(Y, dtype=np.int64)


def check_values(X, Y, loss, n_outputs):
    """Value checks that need a pass over the data (reference implementation)."""
    check_finite("X", X)
    if Y is None:
        return
    if Y.dtype == np.int64:
        check_labels(Y, n_outputs)
        return
    check_finite("Y", Y)
    if isinstance(loss, BCE) and (Y.min() < 0 or Y.max() > 1):
        raise ValueError("bce targets Y must lie in [0, 1]")


def check_finite(name, array):
    if not np.isfinite(array).all():
        raise ValueError(f"{name} contains NaN or infinity")


def check_labels(labels, n_classes):
    low, high = labels.min(), labels.max()
    if low < 0 or high >= n_classes:
        bad = low if low < 0 else high
        raise ValueError(f"class label {bad} out of range [0, {n_classes})")
