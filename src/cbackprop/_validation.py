"""Checks on user input, run once at the public boundary.

Everything below the boundary (the NumPy reference's ops and the compiled
kernels) trusts what it is given: shapes agree, dtypes match, arrays are
C-contiguous. Value checks (finiteness, label range) are done here for the
reference; the compiled engine does the same checks in C as its first pass.
"""
import collections.abc
import numbers

import numpy as np

from ._activations import ACTIVATIONS, REGISTRY
from ._activations import ALIASES as _ALIASES
from ._checks import int64_array, is_name_among, sparse_hint
from .losses import BCE, CrossEntropy

DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def as_list(name, value, what):
    """``value``'s items as a list; TypeError naming ``what`` it should be if it
    has none, or none in an order (a mapping, whose items would be its keys, or a set)."""
    if isinstance(value, (collections.abc.Mapping, collections.abc.Set)):
        raise TypeError(f"{name} must be {what}, got {type(value).__name__}")
    try:
        return list(value)
    except TypeError:
        raise TypeError(f"{name} must be {what}, got {type(value).__name__}") from None


def check_sizes(sizes):
    sizes = as_list("sizes", sizes, "a sequence of layer widths")
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
    activations = as_list("activations", activations, "a list with one name per weight layer")
    activations = [_ALIASES.get(a, a) if isinstance(a, str) else a for a in activations]
    if len(activations) != n_layers:
        raise ValueError(
            f"expected {n_layers} activation names (one per weight layer), got {len(activations)}"
        )
    for i, name in enumerate(activations):
        if not is_name_among(name, ACTIVATIONS):
            raise ValueError(f"unknown activation {name!r}: use one of {ACTIVATIONS} or 'linear'")
        if REGISTRY[name].output_only and i != n_layers - 1:
            raise ValueError(f"{name} is only supported on the last layer")
    return activations


def check_softmax_width(activations, sizes):
    """A softmax output of width 1 is always 1: its cross-entropy is 0 and it
    can never learn, so it is refused at construction."""
    if activations[-1] == "softmax" and sizes[-1] < 2:
        raise ValueError(f"a softmax output layer needs at least 2 outputs, got {sizes[-1]} "
                         "(for one output, use a sigmoid output with loss 'bce')")


def check_dtype(dtype):
    try:
        dtype = np.dtype(dtype)
    except TypeError:
        raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}") from None
    if dtype.kind == "f":   # '>f8' is float64 too: computed in this CPU's byte order
        dtype = dtype.newbyteorder("=")
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype}")
    return dtype


def check_loss_fits(loss, output_activation):
    needed = loss.output_activation
    if needed is not None and output_activation != needed:
        raise ValueError(f"loss {loss.name!r} needs a {needed} output layer, got {output_activation!r}")


def check_seed(seed):
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, numbers.Integral)):
        raise TypeError(f"seed must be an int or None, got {type(seed).__name__}")
    if seed is not None and seed < 0:
        raise ValueError(f"seed must be non-negative, got {seed}")
    return seed


def numeric_array(name, data, hint=""):
    """``data`` as an ndarray of a real numeric dtype (no copy when possible)."""
    try:
        array = np.asarray(data)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{name} could not be read as an array: {exc}") from None
    if array.dtype.kind not in "iuf":
        raise TypeError(f"{name} must hold real numbers, got dtype {array.dtype}"
                        f"{sparse_hint(name, data) or hint}")
    return array


def as_dtype(name, array, dtype):
    """C-contiguous ``array`` cast to ``dtype``; copies only when needed."""
    if array.dtype == dtype and array.flags.c_contiguous:
        return array
    # A finite value beyond float32's range would become inf here: said as
    # what it is, not left to the finiteness check ("contains infinity"). One
    # below float32's smallest becomes 0 or a subnormal, as NumPy casts it by
    # default, whatever np.seterr says of underflow.
    try:
        with np.errstate(over="raise", invalid="ignore", under="ignore"):
            return np.ascontiguousarray(array, dtype=dtype)
    except FloatingPointError:
        raise ValueError(f"{name} holds values beyond {np.dtype(dtype).name}'s range "
                         f"(its largest is {np.finfo(dtype).max:.4g})") from None


def as_batch(X, n_inputs, dtype):
    """Returns ``(X2d, single)``: a C-contiguous ``(m, n_inputs)`` batch of ``dtype``."""
    X = numeric_array("X", X)
    given = X.shape   # reported as passed, not as reshaped
    single = X.ndim == 1
    if single:
        X = X.reshape(1, -1)
    if X.ndim != 2 or X.shape[1] != n_inputs:
        features = (f"X has {X.shape[1]} features per sample but the network takes "
                    f"{n_inputs} (sizes[0]): " if X.ndim == 2 else "")
        raise ValueError(f"{features}X must have shape (m, {n_inputs}) or ({n_inputs},), "
                         f"got {given}")
    if X.shape[0] == 0:
        raise ValueError("X is an empty batch (0 samples)")
    return as_dtype("X", X, dtype), single


def as_targets(Y, m, n_outputs, loss, dtype, single):
    """Targets as ``(m, n_outputs)`` of ``dtype``, or int64 class labels ``(m,)``.

    Boolean targets mean 0 and 1 for ``bce`` and for one-hot ``cross_entropy``
    rows (not as class labels, nor for ``mse``). Labels are returned only for
    cross-entropy; labels the int64 cast would change (beyond its range, or
    fractional) are refused here, the range of the others is checked with the
    other values (``check_values``).
    """
    is_ce = isinstance(loss, CrossEntropy)
    boolean = _is_bool_data(Y)
    if boolean:
        Y = np.asarray(Y)
        if isinstance(loss, BCE) or (is_ce and not _looks_like_labels(Y, m, single)):
            Y = Y.astype(dtype)
    Y = numeric_array("Y", Y, hint=_BOOL_HINT if boolean else "")
    if is_ce and _looks_like_labels(Y, m, single):
        return _as_labels(Y.reshape(m), n_outputs)
    if Y.shape == (m, n_outputs):
        pass
    elif Y.shape == (m,) and n_outputs == 1:
        Y = Y.reshape(m, 1)
    elif single and Y.shape in ((n_outputs,), ()) and Y.size == n_outputs:
        Y = Y.reshape(1, n_outputs)
    elif is_ce:
        hint = (": give class labels as a 1-D array (for example Y.ravel())"
                if Y.shape == (m, 1) else "")
        raise ValueError(f"Y must have shape ({m}, {n_outputs}) (one probability row per sample) "
                         f"or ({m},) (integer class labels) for cross_entropy, got {Y.shape}{hint}")
    else:
        raise ValueError(f"Y must have shape ({m}, {n_outputs}) to match the output, got "
                         f"{Y.shape}{_target_shape_hint(Y, m, n_outputs, loss)}")
    return as_dtype("Y", Y, dtype)


def _target_shape_hint(Y, m, n_outputs, loss):
    """What a target array of the wrong shape most likely means."""
    if Y.shape == (n_outputs, m) and n_outputs != m:
        return f": Y looks transposed (pass Y.T: one row per sample)"
    if Y.ndim == 2 and Y.shape[0] != m:
        return f": Y has {Y.shape[0]} rows but X has {m} (one row of each per sample)"
    if Y.shape == (m,) and n_outputs > 1:
        return (f": 1-D class labels need loss 'cross_entropy' and a softmax output (this "
                f"network's loss is {loss.name!r}); otherwise give one row of {n_outputs} "
                "targets per sample")
    return ""


_BOOL_HINT = (" (boolean Y is read as 0/1 targets only for loss 'bce' and for one-hot "
              "cross_entropy rows)")


def _is_bool_data(Y):
    try:
        return np.asarray(Y).dtype == np.bool_
    except (ValueError, TypeError):
        return False


def _looks_like_labels(Y, m, single):
    """Cross-entropy targets given as one class label per sample (a 1-D row
    of k > 1 entries for a single sample is a one-hot row, not labels)."""
    return Y.shape == (m,) or (single and Y.ndim == 0)


def _as_labels(Y, n_classes):
    if Y.dtype.kind == "f":
        if not np.all(np.isfinite(Y)):
            raise ValueError("class labels contain NaN or infinity")
        fractional = Y != np.round(Y)
        if fractional.any():
            sample = int(np.flatnonzero(fractional)[0])
            raise ValueError(f"class labels must be whole numbers: sample {sample}'s is "
                             f"{Y[sample].item()!r}")
    if Y.dtype.kind != "i" or Y.dtype.itemsize > 8:
        # uint64 and float labels may not survive the cast to int64 (2**64 - 1
        # would become -1): their range is checked on the values as given.
        outside = (Y < 0) | (Y >= n_classes)
        if outside.any():
            raise label_error(Y, int(np.flatnonzero(outside)[0]), n_classes)
    return int64_array(Y)


def loss_not_finite_error(loss):
    """The FloatingPointError of a step whose loss is not finite (nothing changed)."""
    return FloatingPointError(
        f"the loss is {loss} on this batch (training diverged); parameters were not updated")


def label_error(labels, sample, n_classes):
    """The error for the first class label out of range (both implementations)."""
    return ValueError(f"class label {labels[sample].item()!r} (sample {sample}) out of range "
                      f"[0, {n_classes})")


def probability_tolerance(dtype, n_classes):
    """How far a row of cross-entropy targets may sum from 1.

    A base (1e-6 for float32, 1e-12 for float64) plus one unit roundoff per
    entry: a row computed in the dtype (a softmax, a smoothed label) or cast
    to it sums to 1 only within about k roundings. The sum itself is taken in
    float64.
    """
    dtype = np.dtype(dtype)
    base = 1e-6 if dtype == np.float32 else 1e-12
    return base + n_classes * float(np.finfo(dtype).eps)


def row_sums(Y):
    """Each row's sum in float64, added left to right, as the compiled check
    adds them: ``np.sum`` adds eight or more values in another order, whose
    last bits put rows within an ulp of the tolerance on the other side.
    A column at a time: no (m, k) float64 copy of Y."""
    sums = np.zeros(Y.shape[0])
    for column in Y.T:
        sums += column
    return sums


def first_bad_probability_row(Y):
    """Index of the first row of ``Y`` that is not a probability vector, or -1."""
    tolerance = probability_tolerance(Y.dtype, Y.shape[1])
    bad = ((Y < 0) | (Y > 1)).any(axis=1)
    bad |= np.abs(row_sums(Y) - 1.0) > tolerance
    return int(np.flatnonzero(bad)[0]) if bad.any() else -1


def unit_interval_error(Y):
    """The error for bce targets outside [0, 1] (both implementations): the first."""
    row, column = np.argwhere((Y < 0) | (Y > 1))[0]
    return ValueError(f"bce targets Y must lie in [0, 1]: Y[{row}, {column}] is "
                      f"{Y[row, column].item()!r} (for more than two classes, use a softmax "
                      "output with loss 'cross_entropy'; -1/1 labels are (Y + 1) / 2)")


def probability_error(Y, row):
    """The error for row ``row`` of cross-entropy targets (both implementations)."""
    values = Y[row]
    outside = values[(values < 0) | (values > 1)]
    if outside.size:
        what = f"has entry {outside[0].item()!r} outside [0, 1]"
    else:
        what = f"sums to {float(row_sums(values[np.newaxis])[0])!r}"
    return ValueError(
        f"cross_entropy targets must be probability rows (entries in [0, 1], each row "
        f"summing to 1, one-hot or soft labels): row {row} of Y {what}")


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
        raise unit_interval_error(Y)
    if isinstance(loss, CrossEntropy):
        row = first_bad_probability_row(Y)
        if row >= 0:
            raise probability_error(Y, row)


def check_finite(name, array):
    if not np.isfinite(array).all():
        raise ValueError(f"{name} contains NaN or infinity")


def check_labels(labels, n_classes):
    outside = (labels < 0) | (labels >= n_classes)
    if outside.any():
        raise label_error(labels, int(np.flatnonzero(outside)[0]), n_classes)
