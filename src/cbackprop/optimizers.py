"""Optimizers: validated hyper-parameter holders.

The network owns the optimizer state (velocities, moments, step count), so
one optimizer object may be shared and replaced freely; assigning a new
optimizer to ``net.optimizer`` starts from fresh state. Changing a
hyper-parameter (``net.optimizer.lr = 0.05``) takes effect on the next step.
"""
from ._checks import Settings, in_range, non_negative, positive


class Optimizer(Settings):
    """Base class of the optimizers; ``name`` identifies the update kernel."""


def _unit_interval(name, value):
    return in_range(name, value, 0.0, 1.0)


def _boolean(name, value):
    if not isinstance(value, (bool, int)) or value not in (0, 1):
        raise ValueError(f"{name} must be True or False, got {value!r}")
    return bool(value)


class SGD(Optimizer):
    """Stochastic gradient descent with optional (Nesterov) momentum.

    With weight decay ``g <- g + weight_decay * W`` on weights only; with
    momentum ``v <- momentum * v + g`` and ``W <- W - lr * v`` (or
    ``W - lr * (g + momentum * v)`` with ``nesterov=True``).
    """

    name = "sgd"
    _checks = {"lr": non_negative, "momentum": _unit_interval, "nesterov": _boolean,
               "weight_decay": non_negative}

    def __init__(self, lr=0.01, momentum=0.0, nesterov=False, weight_decay=0.0):
        self.lr = lr
        self.momentum = momentum
        self.nesterov = nesterov
        self.weight_decay = weight_decay


class Adam(Optimizer):
    """Adam with bias correction; weight decay (added to the gradient) on weights only."""

    name = "adam"
    _checks = {"lr": non_negative, "beta1": _unit_interval, "beta2": _unit_interval,
               "eps": positive, "weight_decay": non_negative}

    def __init__(self, lr=0.001, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0):
        self.lr = lr
        self.beta1 = beta1
        self.beta2 = beta2
        self.eps = eps
        self.weight_decay = weight_decay


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
