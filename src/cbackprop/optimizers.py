"""Optimizers: validated hyper-parameter holders.

The network owns the optimizer state (velocities, moments, step count), so
one optimizer object may be shared and replaced freely; assigning a new
optimizer to ``net.optimizer`` starts from fresh state. Changing a
hyper-parameter (``net.optimizer.lr = 0.05``) takes effect on the next step.

Every optimizer clips gradients on request, before weight decay and the
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
from ._checks import Settings, boolean, from_registry, in_range, non_negative, positive


class Optimizer(Settings):
    """Base class of the optimizers.

    Each subclass is the optimizer's one registry entry: its ``name``, its
    kernel's ``code`` (the OptimizerKind of ``_kernels/optimizers.pxi``), its
    hyper-parameters and their checks, what the kernel reads of them
    (``_kernel_settings``) and the update rule as ``Network.trace`` shows it.
    The reference's step is ``cbackprop.reference.ops.OPTIMIZER_STEPS[name]``.
    Every optimizer has ``lr``, ``weight_decay``, ``clip_norm`` and
    ``clip_value``, which the engine reads itself.
    """

    code = None

    def _kernel_settings(self):
        """The kernel's settings (OptimizerSettings fields) beyond lr, weight
        decay and clipping. Whatever depends on the step's number (Adam's bias
        corrections) is computed by the kernel's ``start_step``."""
        raise NotImplementedError

    def _trace_rule(self, param, g):
        """``(rule, notes)``: the right-hand side of ``param ← rule`` for the
        gradient written ``g``, and notes on the state it uses."""
        raise NotImplementedError

    def _trace_state(self):
        """A line on the per-parameter state, or None."""
        return None


def _unit_interval(name, value):
    return in_range(name, value, 0.0, 1.0)


def _clip_threshold(name, value):
    """None (no clipping) or a positive finite float."""
    return None if value is None else positive(name, value)


def _flag(name, value):
    """A bool setting: as ``boolean``, but an invalid hyper-parameter is a ValueError."""
    try:
        return boolean(name, value)
    except TypeError as exc:
        raise ValueError(str(exc)) from None


class SGD(Optimizer):
    """Stochastic gradient descent with optional (Nesterov) momentum.

    With weight decay ``g <- g + weight_decay * W`` on weights only; with
    momentum ``v <- momentum * v + g`` and ``W <- W - lr * v`` (or
    ``W - lr * (g + momentum * v)`` with ``nesterov=True``).

    Gradient clipping (``clip_norm``, ``clip_value``: each None, off, or a
    positive finite number) comes first, before weight decay; see
    ``help(cbackprop.optimizers)``.
    """

    name = "sgd"
    code = 0
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

    def _kernel_settings(self):
        return {"momentum": self.momentum, "nesterov": self.nesterov}

    def _trace_rule(self, param, g):
        lr, mu = f"{self.lr:g}", self.momentum
        if mu == 0:
            return f"{param} − {lr}·{g}", []
        step = f"({g} + {mu:g}·v)" if self.nesterov else "v"
        return f"{param} − {lr}·{step}", [f"v ← {mu:g}·v + {g}"]


class Adam(Optimizer):
    """Adam with bias correction; weight decay (added to the gradient) on weights only.

    With weight decay ``g <- g + weight_decay * W``; then ``t <- t + 1``,
    ``m <- beta1 * m + (1 - beta1) * g``, ``v <- beta2 * v + (1 - beta2) * g²``
    and ``W <- W - lr * (m / (1 - beta1**t)) / (sqrt(v / (1 - beta2**t)) + eps)``.
    ``m``, ``v`` and ``t`` start at 0.

    Gradient clipping (``clip_norm``, ``clip_value``: each None, off, or a
    positive finite number) comes first, before weight decay; see
    ``help(cbackprop.optimizers)``.
    """

    name = "adam"
    code = 1
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

    def _kernel_settings(self):
        return {"beta1": self.beta1, "beta2": self.beta2, "eps": self.eps}

    def _trace_rule(self, param, g):
        return f"{param} − {self.lr:g}·m̂/(√v̂ + {self.eps:g})", [f"g = {g}"]

    def _trace_state(self):
        b1, b2 = self.beta1, self.beta2
        return (f"  per parameter: m ← {b1:g}·m + {1 - b1:g}·g, v ← {b2:g}·v + {1 - b2:g}·g², "
                f"m̂ = m/(1 − {b1:g}ᵗ), v̂ = v/(1 − {b2:g}ᵗ), t the step's number")


class RMSprop(Optimizer):
    """RMSprop as ``torch.optim.RMSprop`` (not centered) defines it.

    With weight decay ``g <- g + weight_decay * W`` on weights only; then
    ``v <- alpha * v + (1 - alpha) * g²`` and ``W <- W - lr * g / (sqrt(v) + eps)``;
    with momentum ``mu``, ``buf <- mu * buf + g / (sqrt(v) + eps)`` and
    ``W <- W - lr * buf``. ``v`` and ``buf`` start at 0.

    Gradient clipping (``clip_norm``, ``clip_value``: each None, off, or a
    positive finite number) comes first, before weight decay; see
    ``help(cbackprop.optimizers)``.
    """

    name = "rmsprop"
    code = 2
    _checks = {"lr": non_negative, "alpha": _unit_interval, "eps": positive,
               "momentum": _unit_interval, "weight_decay": non_negative,
               "clip_norm": _clip_threshold, "clip_value": _clip_threshold}

    def __init__(self, lr=0.01, alpha=0.99, eps=1e-8, momentum=0.0, weight_decay=0.0,
                 clip_norm=None, clip_value=None):
        self.lr = lr
        self.alpha = alpha
        self.eps = eps
        self.momentum = momentum
        self.weight_decay = weight_decay
        self.clip_norm = clip_norm
        self.clip_value = clip_value

    def _kernel_settings(self):
        return {"alpha": self.alpha, "eps": self.eps, "momentum": self.momentum}

    def _trace_rule(self, param, g):
        if self.momentum == 0:
            return f"{param} − {self.lr:g}·g/(√v + {self.eps:g})", [f"g = {g}"]
        return f"{param} − {self.lr:g}·buf", [f"g = {g}"]

    def _trace_state(self):
        a, mu = self.alpha, self.momentum
        line = f"  per parameter: v ← {a:g}·v + {1 - a:g}·g²"
        if mu:
            line += f", buf ← {mu:g}·buf + g/(√v + {self.eps:g})"
        return line


# The registry: every optimizer class by name.
OPTIMIZERS = {cls.name: cls for cls in (SGD, Adam, RMSprop)}

# What ``from cbackprop.optimizers import *`` (and so ``cbackprop``) exports.
__all__ = [cls.__name__ for cls in OPTIMIZERS.values()]


def make_optimizer(spec):
    return SGD() if spec is None else from_registry("optimizer", spec, OPTIMIZERS, Optimizer)


def optimizer_from_config(name, config):
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}")
    return OPTIMIZERS[name](**config)
