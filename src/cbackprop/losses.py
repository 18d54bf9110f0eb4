"""Loss functions: small validated hyper-parameter holders.

The maths lives in ``cbackprop.reference.ops`` (NumPy) and the compiled
kernels; these classes only name the loss and hold its settings.
"""
from ._checks import Settings, from_registry, is_name_among, positive


class Loss(Settings):
    """Base class of the losses.

    Each subclass is the loss's one registry entry: its ``name``, its kernel's
    ``code`` (the LossKind of ``_kernels/losses.pxi``), the output activation
    it requires (``output_activation``, None for any) and its settings. The
    reference's maths is ``cbackprop.reference.passes.LOSSES[name]``.
    """

    code = None
    output_activation = None


def _reduction(name, value):
    if not is_name_among(value, ("mean", "sum")):
        raise ValueError(f"{name} must be 'mean' or 'sum', got {value!r}")
    return str(value)


class MSE(Loss):
    """Mean squared error: ``L = scale * sum((A - Y)**2) / N``.

    ``N`` is the number of output elements; ``reduction="sum"`` drops the
    division by ``N``. Works with any output activation.
    """

    name = "mse"
    code = 0
    _checks = {"scale": positive, "reduction": _reduction}

    def __init__(self, scale=1.0, reduction="mean"):
        self.scale = scale
        self.reduction = reduction


class BCE(Loss):
    """Binary cross-entropy on a sigmoid output, computed from the pre-activation.

    ``L = -sum(Y*log(A) + (1-Y)*log(1-A)) / N``, ``N`` the number of output
    elements; targets must lie in [0, 1]. Boolean targets (``y > 0``) are
    read as 0 and 1. The output delta is the fused ``(A - Y) / N``, with no
    log(0) or overflow for any finite pre-activation.
    """

    name = "bce"
    code = 1
    output_activation = "sigmoid"


class CrossEntropy(Loss):
    """Categorical cross-entropy on a softmax output, computed from the logits.

    ``L = -sum(Y * log(softmax(Z))) / m``; ``Y`` is integer class labels
    ``(m,)`` or ``(m, k)`` rows that are probability vectors: one-hot (float
    or boolean) or soft labels, each entry in [0, 1] and each row summing to 1
    (within ``1e-6`` for float32, ``1e-12`` for float64, plus one machine
    epsilon of the dtype, ``np.finfo(dtype).eps``, per class); anything else
    is a ValueError naming the first bad row. Class labels as a column ``(m, 1)`` are refused: pass
    them 1-D. The softmax output needs at least 2 units (checked when the
    network is built).
    """

    name = "cross_entropy"
    code = 2
    output_activation = "softmax"


# The registry: every loss class by name.
LOSSES = {cls.name: cls for cls in (MSE, BCE, CrossEntropy)}

# What ``from cbackprop.losses import *`` (and so ``cbackprop``) exports.
__all__ = [cls.__name__ for cls in LOSSES.values()]


def make_loss(spec):
    """A loss instance from a name or an instance (instances are used as given)."""
    return from_registry("loss", spec, LOSSES, Loss)


def loss_from_config(name, config):
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}")
    return LOSSES[name](**config)
