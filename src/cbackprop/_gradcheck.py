"""``check_gradients``: a network's back-propagated gradients against central
finite differences of its loss, taken in float64.

The finite differences are taken with the float64 reference maths
(:mod:`cbackprop.reference.passes`) on copies of the network's parameters
cast up, with its activations and loss, so a float32 network is checked
against derivatives free of float32 rounding, and the network itself is
never perturbed.
"""
import dataclasses
import numbers

import numpy as np

from ._checks import finite_float
from ._network_base import NetworkBase
from ._validation import check_seed
from .reference import passes

# The relative error of one gradient entry is |a - n| / max(|a|, |n|, floor),
# a the back-propagated value and n the finite difference. A central
# difference is accurate to about 1e-16 * |L| / eps in absolute terms, not
# relative ones, so entries that are zero or tiny next to the rest of their
# layer (a dead relu unit, say) would turn that rounding noise into a large
# relative error. The floor is RELATIVE_FLOOR times the largest |a| or |n| of
# the layer, and never less than the entry's own noise: ROUNDING_FLOOR times
# the largest |L| of its three evaluations over eps, a hundred times that
# rounding (1e-8 for a loss of 1 at the default eps), plus its second
# difference |L(p+eps) + L(p-eps) - 2 L(p)| / (2 eps), about eps |L''|, the
# scale of the difference's truncation where the gradient is about 0 (at an
# exact minimum, a loss of 0, the differences are ~1e-12 of truncation
# against gradients of exactly 0). A layer of zeros has error 0, not 0/0. A
# wrong entry still shows: a 100% error in an entry a hundredth of the
# layer's largest scores 0.1, far above what a correct gradient gives, and
# so does a wrong layer whose gradients are all tiny, with a loss as tiny (an
# absolute floor of 1e-8 had hidden a sign flip of gradients of 1e-12).
RELATIVE_FLOOR = 0.1
ROUNDING_FLOOR = 1e-14


@dataclasses.dataclass(frozen=True)
class GradientCheck:
    """The result of :func:`check_gradients`.

    ``per_layer[l]`` is the worst relative error over the weights and bias
    of layer ``l`` (0-based; ``inf`` when a gradient is not finite);
    ``checked[l]`` is how many of that layer's entries were compared;
    ``eps`` is the finite-difference step. ``max`` is the worst of all layers.
    """

    per_layer: tuple
    checked: tuple
    eps: float

    @property
    def max(self):
        """The worst relative error over every layer."""
        return max(self.per_layer)

    def __repr__(self):
        per_layer = ", ".join(f"{error:.3g}" for error in self.per_layer)
        return (f"GradientCheck(max={self.max:.3g}, per_layer=[{per_layer}], "
                f"checked={list(self.checked)}, eps={self.eps:g})")


def check_gradients(net, X, Y, eps=1e-6, max_checks_per_layer=None, seed=None):
    """Compare ``net.loss_and_gradients(X, Y)`` with central finite differences.

    Each checked entry ``p`` gets the numerical derivative
    ``(L(p + eps) - L(p - eps)) / (2 eps)`` of the loss, computed in float64
    by the reference maths on copies of ``net``'s parameters (cast up from
    float32 if need be) and the batch as ``net`` sees it. Its relative
    error against the back-propagated value ``a`` is

        |a - n| / max(|a|, |n|, floor),  floor = max(0.1 * s, noise)

    where ``s`` is the largest ``|a|`` or ``|n|`` among the entries checked
    in that layer (weights and bias together): the usual relative error for
    the layer's large entries, and for its small ones the error relative to
    a tenth of the largest, or to the difference's own noise, whichever is
    larger: ``noise = 1e-14 * |L| / eps`` (a hundred times its rounding,
    ``L`` the largest of the three losses it takes) ``+ |L(p + eps) +
    L(p - eps) - 2 L(p)| / (2 eps)`` (about ``eps |L''|``, the scale of its
    truncation where the gradient is about 0, as at an exact minimum).
    ``per_layer`` reports the worst entry of each layer.

    With the default ``eps``, a correct network typically scores about
    1e-8 in float64 and 1e-6 in float32 (measured over 90 small networks of
    every activation and loss: at most 1.4e-7 and 4e-6); a wrong gradient
    scores 1e-2 and up. An entry whose pre-activation sits within ``eps`` of a relu
    kink has a finite difference that straddles it, and a large error for
    that reason alone.

    ``max_checks_per_layer``: None checks every entry (two loss evaluations
    each); an int ``k`` checks at most ``k`` entries of each layer, drawn
    uniformly without replacement from its weights and bias, repeatably for
    a given ``seed``.

    Returns a :class:`GradientCheck` (``per_layer``, ``checked``, ``eps``,
    ``max``). The network's parameters are never changed.
    """
    if not isinstance(net, NetworkBase):
        raise TypeError(f"net must be a cbackprop Network, got {type(net).__name__}")
    eps = finite_float("eps", eps)
    if eps <= 0:
        raise ValueError(f"eps must be > 0, got {eps}")
    k = max_checks_per_layer
    if k is not None:
        if isinstance(k, bool) or not isinstance(k, numbers.Integral):
            raise TypeError(f"max_checks_per_layer must be an int or None, got {k!r}")
        if k < 1:
            raise ValueError(f"max_checks_per_layer must be >= 1, got {k}")
    rng = np.random.default_rng(check_seed(seed))

    # The batch as the network sees it (its own checks, cast to its dtype).
    X, Y = net._batch(X, Y)
    with net._lock:  # the gradients and the parameters from the same moment
        _, analytic = net.loss_and_gradients(X, Y)
        weights, biases = net.get_params()
    # float64 C-order copies of our own, perturbed in place.
    weights = [np.array(w, dtype=np.float64, order="C") for w in weights]
    biases = [np.array(b, dtype=np.float64, order="C") for b in biases]
    X64 = X.astype(np.float64)
    Y64 = Y if Y.dtype == np.int64 else Y.astype(np.float64)  # class labels stay labels

    def loss_at_current_parameters():
        return passes.loss_value(weights, biases, net.activations, net.loss_function, X64, Y64)

    per_layer, checked = [], []
    # IEEE arithmetic, as in the networks, whatever np.seterr says: overflow is
    # a result (an infinite loss, inf - inf, a worst error of inf) and an exp
    # underflowing to 0 is no error.
    with np.errstate(all="ignore"):
        loss = loss_at_current_parameters()
        for layer, (dW, db) in enumerate(analytic):
            W, b = weights[layer], biases[layer]
            entries = np.arange(W.size + b.size)
            if k is not None and entries.size > k:
                entries = np.sort(rng.choice(entries, size=k, replace=False))
            numeric, noise = np.empty(entries.size), np.empty(entries.size)
            for i, entry in enumerate(entries):
                # Entries run over W's, then b's, each in C order.
                array, index = ((W.reshape(-1), entry) if entry < W.size
                                else (b, entry - W.size))
                numeric[i], noise[i] = _central_difference(loss_at_current_parameters, loss,
                                                           array, index, eps)
            backprop = np.concatenate([dW.ravel(), db.ravel()]).astype(np.float64)[entries]
            per_layer.append(_worst_relative_error(backprop, numeric, noise))
            checked.append(int(entries.size))
    return GradientCheck(per_layer=tuple(per_layer), checked=tuple(checked), eps=eps)


def _central_difference(loss, loss_here, array, index, eps):
    """``(dL/dp, noise)`` of the parameter ``array[index]``, ``array`` (or the
    array it is a view of) one of those ``loss()`` reads, ``loss_here`` the
    loss as it is; ``noise`` is the difference's own error scale (see
    RELATIVE_FLOOR)."""
    original = array[index]
    array[index] = original + eps
    plus = loss()
    array[index] = original - eps
    minus = loss()
    array[index] = original
    rounding = ROUNDING_FLOOR * max(abs(plus), abs(minus), abs(loss_here)) / eps
    truncation = abs(plus + minus - 2 * loss_here) / (2 * eps)
    return (plus - minus) / (2 * eps), rounding + truncation


def _worst_relative_error(backprop, numeric, noise):
    """The largest ``|a - n| / max(|a|, |n|, floor)`` (see RELATIVE_FLOOR),
    ``noise`` each difference's own."""
    if backprop.size == 0:
        return 0.0
    if not (np.isfinite(backprop).all() and np.isfinite(numeric).all()):
        return float("inf")
    magnitude = np.maximum(np.abs(backprop), np.abs(numeric))
    floor = np.maximum(np.maximum(RELATIVE_FLOOR * magnitude.max(), noise),
                       np.finfo(np.float64).tiny)
    return float((np.abs(backprop - numeric) / np.maximum(magnitude, floor)).max())
