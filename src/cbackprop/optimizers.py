"""Optimizers: validated hyper-parameter holders.

The network owns the optimizer state (velocities, moments, step count), so
one optimizer object may be shared and replaced freely; assigning a new
optimizer to ``net.optimizer`` starts from fresh state. Changing a
hyper-parameter (``net.optimizer.lr = 0.05``) takes effect on the next step.

Both optimizers clip gradients on request, before weight decay and the
update; ``g`` is the raw gradient of the loss (what ``loss_and_gradients``
returns, which clipping does not change):

- ``clip_norm=c``: the global norm ``||g|| = sqrt(sum over every layer of
  ||dW||^2 + ||db||^2)``, accumulated in float64 (float64 gradients whose
  squares overflow are rescaled first); when it exceeds ``c``, every
  gradient is scaled by ``c / ||g||`` (as ``torch.nn.utils.clip_grad_norm_``
  does, without its 1e-6 added to the norm). A norm that is not finite (a
  NaN or infinite gradient) refuses the step: ``FloatingPointError`` and
  nothing changed, as for a diverging update.
- ``clip_value=v``: then each element is clamped to ``[-v, v]`` (an infinite
  element becomes ``±v``; a NaN stays NaN and the update refuses the step).

Each is ``None`` (off, the default) or a positive finite number.
"""
from ._checks import Settings, boolean, in_range, non_negative, positive


class Optimizer(Settings):
    """Base class of the optimizers; ``name`` identifies the update kernel."""


def _unit_interval(name, value):
    return in_range(name, value, 0.0, 1.0)


def _clip_threshold(name, value):
    """None (no clipping) or a positive finite float."""
    return None if value is None else positive(name, value)


def _flag(name, value):
    """A bool setting: as ``boolean`` (and the integers 0 and 1, accepted since
    the first release), but an invalid hyper-parameter is a ValueError."""
    if type(value) is int and value in (0, 1):
        return bool(value)
    try:
        return boolean(name, value)
    except TypeError as exc:
        raise ValueError(str(exc)) from None


class SGD(Optimizer):
    """Stochastic gradient descent with optional (Nesterov) momentum.

    With weight decay ``g <- g + weight_decay * W`` on weights only; with
    momentum ``v <- momentum * v + g`` and ``W <- W - lr * v`` (or
    ``W - lr * (g + momentum * v)`` with ``nesterov=True``).

    Gradient clipping comes first, before weight decay: with ``clip_norm=c``,
    when the global norm of the raw gradient over every layer,
    ``sqrt(sum ||dW||^2 + ||db||^2)``, exceeds ``c``, every gradient is scaled
    by ``c / norm``; then with ``clip_value=v`` every element is clamped to
    ``[-v, v]``. Each is None (off) or a positive finite number; see the
    module documentation for the details.
    """

    name = "sgd"
    _checks = {"lr": non_negative, "momentum": _unit_interval, "nesterov": _flag,
               "weight_decay": non_negative, "clip_norm": _clip_threshold,
               "clip_value": _clip_threshold}

    def __init__(self, lr=0.01, momentum=0.0, nesterov=False, weight_decay=0.0,
                 clip_norm=None, clip_value=None):
        self.lr = lr
        self.momentum = momentum
        self.nesterov = nesterov
        self.weight_decay = weight_decay
        self.clip_norm = clip_norm
        self.clip_value = clip_value


class Adam(Optimizer):
    """Adam with bias correction; weight decay (added to the gradient) on weights only.

    Gradient clipping comes first, before weight decay and the moments: with
    ``clip_norm=c``, when the global norm of the raw gradient over every
    layer, ``sqrt(sum ||dW||^2 + ||db||^2)``, exceeds ``c``, every gradient is
    scaled by ``c / norm``; then with ``clip_value=v`` every element is
    clamped to ``[-v, v]``. Each is None (off) or a positive finite number;
    see the module documentation for the details.
    """

    name = "adam"
    _checks = {"lr": non_negative, "beta1": _unit_interval, "beta2": _unit_interval,
               "eps": positive, "weight_decay": non_negative, "clip_norm": _clip_threshold,
               "clip_value": _clip_threshold}

    def __init__(self, lr=0.001, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0,
                 clip_norm=None, clip_value=None):
        self.lr = lr
        self.beta1 = beta1
        self.beta2 = beta2
        self.eps = eps
        self.weight_decay = weight_decay
        self.clip_norm = clip_norm
        self.clip_value = clip_value


_BY_NAME = {"sgd": SGD, "adam": Adam}


def make_optimizer(spec):
    if spec is None:
        return SGD()
    if isinstance(spec, Optimizer):
        return spec
    if isinstance(spec, str) and spec in _BY_NAME:
        return _BY_NAME[spec]()
    raise ValueError(f"unknown optimizer {spec!r}: use cb.SGD(...), cb.Adam(...), 'sgd' or 'adam'")


def optimizer_from_config(name, config):
    if name not in _BY_NAME:
        raise ValueError(f"unknown optimizer {name!r}")
    return _BY_NAME[name](**config)
