"""``Network.trace``: one training step with every intermediate recorded, and
its rendering as text in the style of a hand-worked backpropagation example.

Where the numbers come from:

- ``z``, ``a`` and ``delta`` of every layer are recomputed by the NumPy
  reference maths (:mod:`cbackprop.reference.passes`), in the network's dtype,
  from the parameters the network holds before the step. For the compiled
  network they agree with its own intermediates to within the contract's
  tolerance (1e-10 relative in float64, 1e-4 in float32).
- ``grad_weights``, ``grad_bias`` and ``loss`` are the network's own
  (``loss_and_gradients`` and the step's return value), and the parameters
  after the step come from the network's own optimizer step: exactly what
  ``train_step`` does, momentum and Adam state included.
"""
import dataclasses
import textwrap

import numpy as np

from ._signals import sigint_deferred
from .losses import BCE, MSE, CrossEntropy


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class LayerTrace:
    """One layer of a :class:`Trace`: arrays of the network's dtype, ``m`` the batch size.

    ``z = a_prev @ weights_before + bias_before`` and ``a = activation(z)``
    are ``(m, n_out)``; ``delta`` is ``dL/dz``, ``(m, n_out)``;
    ``grad_weights`` ``(n_in, n_out)`` and ``grad_bias`` ``(n_out,)`` are
    ``dL/dW`` and ``dL/db``; ``weights_*``/``bias_*`` are the parameters
    before and after the optimizer step.
    """

    activation: str
    z: np.ndarray
    a: np.ndarray
    delta: np.ndarray
    grad_weights: np.ndarray
    grad_bias: np.ndarray
    weights_before: np.ndarray
    bias_before: np.ndarray
    weights_after: np.ndarray
    bias_after: np.ndarray

    def __repr__(self):
        n_in, n_out = self.weights_before.shape
        return f"<LayerTrace {self.activation} {n_in}->{n_out}, batch of {self.z.shape[0]}>"


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class Trace:
    """One training step with every intermediate, as returned by ``Network.trace``.

    ``X`` is the batch as the network saw it (2-D, the network's dtype) and
    ``Y`` its targets (``(m, k)``, or ``(m,)`` int64 class labels for
    cross-entropy); ``loss`` is the loss before the update (what
    ``train_step`` returns); ``layers`` holds one :class:`LayerTrace` per
    weight layer, ``layers[0]`` the first (called layer 1, ``W1``, in the
    text); ``applied`` says whether the step was kept. ``loss_function`` and
    ``optimizer`` are copies of the network's settings at the time.

    ``str(trace)`` (or :meth:`render`) writes it out step by step.
    """

    X: np.ndarray
    Y: np.ndarray
    loss: float
    layers: tuple
    applied: bool
    loss_function: object
    optimizer: object

    def __repr__(self):
        return (f"<Trace of {len(self.layers)} layers, batch of {self.X.shape[0]}, "
                f"loss {self.loss:.6g}, applied={self.applied}>")

    def __str__(self):
        return self.render()

    def render(self, precision=4, max_elements=64):
        """The step as text: the forward pass, the loss, the backward pass and
        the update, each quantity named as in a hand-worked example
        (``Z1 = A0 @ W1 + b1``, ``δ2 = dL/dZ2``, ``dW2 = A1ᵀ @ δ2``, ``W2 ← ...``).

        Values are printed with at most ``precision`` decimals; arrays of
        more than ``max_elements`` entries are summarised (their first and
        last rows and columns).
        """
        show = _Printer(precision, max_elements)
        n = len(self.layers)
        m = self.X.shape[0]
        first = self.layers[0]
        widths = [first.weights_before.shape[0]] + [layer.z.shape[1] for layer in self.layers]
        activations = ", ".join(layer.activation for layer in self.layers)
        lines = [
            f"One training step of a {widths} network ({activations}), {self.X.dtype}, batch of {m}",
            f"loss {self.loss_function!r}",
            f"optimizer {self.optimizer!r}",
            "the step was applied" if self.applied
            else "the step was not applied: the network is as it was before",
            "",
            "Forward pass",
            show("A0 = X", self.X),
        ]
        for l, layer in enumerate(self.layers, start=1):
            lines.append(show(f"Z{l} = A{l - 1} @ W{l} + b{l}", layer.z))
            lines.append(show(f"A{l} = {layer.activation}(Z{l})", layer.a))
        lines.append(show("Y", self.Y))
        labels = self.Y.ndim == 1   # cross-entropy targets given as class labels
        formula, note = _loss_formula(self.loss_function, n, self.layers[-1].z.shape, labels)
        lines.append(show(formula, self.loss, note))
        lines += ["", "Backward pass"]
        for l in range(n, 0, -1):
            layer = self.layers[l - 1]
            if l == n:
                rule, note = _output_delta_formula(self.loss_function, layer.activation, n,
                                                   layer.z.shape, labels)
            else:
                above = self.layers[l]   # (seed 001 prints dL/dA1 before the relu mask)
                lines.append(show(f"dL/dA{l} = δ{l + 1} @ W{l + 1}ᵀ",
                                  above.delta @ above.weights_before.T))
                rule = f"δ{l} = dL/dZ{l} = dL/dA{l} ⊙ {layer.activation}'(Z{l})"
                note = None
            lines.append(show(rule, layer.delta, note))
            lines.append(show(f"dW{l} = A{l - 1}ᵀ @ δ{l}", layer.grad_weights))
            lines.append(show(f"db{l} = column sums of δ{l}", layer.grad_bias))
        lines += ["", f"Update by {self.optimizer!r}"]
        clipping = _clipping_note(self.optimizer, self.layers)
        if clipping:
            lines.append(clipping)
        state = self.optimizer._trace_state()
        if state:
            lines.append(state)
        for l, layer in enumerate(self.layers, start=1):
            for param, grad, before, after, decayed in (
                (f"W{l}", f"dW{l}", layer.weights_before, layer.weights_after, True),
                (f"b{l}", f"db{l}", layer.bias_before, layer.bias_after, False),
            ):
                rule, note = _update_formula(self.optimizer, param, grad, decayed)
                lines.append(show(param, before))
                lines.append(show(f"{param} ← {rule}", after, note))
        return "\n".join(lines)


def record_trace(net, X, Y, apply):
    """The :class:`Trace` of one step of ``net`` on a batch already validated by
    ``net._batch``; with ``apply=False`` the network's parameters and optimizer
    state are put back exactly as they were."""
    with net._lock:
        loss_function, optimizer = _settings_copy(net.loss_function), _settings_copy(net.optimizer)
        weights_before, biases_before = net.get_params()
        _, grads = net._loss_and_gradients(X, Y)
        state = None if apply else net._optimizer_state()
        try:
            loss = net._checked_step(X, Y)
            weights_after, biases_after = net.get_params()
        finally:
            if not apply:
                with sigint_deferred():   # put back whole, even on Ctrl-C
                    net._assign_parameters(weights_before, biases_before)
                    net._restore_optimizer_state(state)
    # The intermediates are recomputed from the parameters before the step.
    pre_activations, activations, deltas = _reference_pass(net, weights_before, biases_before,
                                                           loss_function, X, Y)
    layers = tuple(
        LayerTrace(activation=net.activations[i], z=pre_activations[i], a=activations[i + 1],
                   delta=deltas[i], grad_weights=grads[i][0], grad_bias=grads[i][1],
                   weights_before=weights_before[i], bias_before=biases_before[i],
                   weights_after=weights_after[i], bias_after=biases_after[i])
        for i in range(len(grads)))
    return Trace(X=X.copy(), Y=Y.copy(), loss=loss, layers=layers, applied=apply,
                 loss_function=loss_function, optimizer=optimizer)


def _reference_pass(net, weights, biases, loss, X, Y):
    """``(pre_activations, activations, deltas)`` of the reference maths with
    ``net``'s architecture and these parameters; ``activations[0]`` is X and
    ``deltas[l] = dL/dZ`` of layer ``l``."""
    # IEEE arithmetic, as in the networks, whatever np.seterr says: a diverging
    # step shows as inf/NaN, and an exp underflowing to 0 is no error.
    with np.errstate(all="ignore"):
        # reference.passes.intermediates, held by the network's class: importing
        # the reference package here would import its Network, whose base class
        # imports this module.
        return net._reference_intermediates(weights, biases, net.activations, loss, X, Y)


def _settings_copy(settings):
    # A snapshot: later changes to the network's loss or optimizer do not
    # change what the trace says was used.
    return type(settings)(**settings.config())


# -- text ------------------------------------------------------------------------------------
class _Printer:
    """``label = value`` lines; arrays that need several lines start on the next one."""

    def __init__(self, precision, max_elements):
        self.options = dict(precision=precision, threshold=max_elements, edgeitems=3,
                            floatmode="maxprec", max_line_width=100)

    def __call__(self, label, value, note=None):
        text = np.array2string(np.asarray(value), **self.options)
        note = f"   ({note})" if note else ""
        if "\n" in text:
            return f"  {label} ={note}\n" + textwrap.indent(text, "      ")
        return f"  {label} = {text}{note}"


def _times(coefficient, term):
    """``c·term``, or just ``term`` when ``c`` is 1."""
    return term if coefficient == 1 else f"{coefficient:g}·{term}"


def _loss_formula(loss, n, output_shape, labels):
    """``(formula, note)`` of the loss; ``labels``: Y holds class labels, not one-hot rows."""
    m, k = output_shape
    if isinstance(loss, MSE):
        total = _times(loss.scale, f"Σ(A{n} − Y)²")
        if loss.reduction == "mean":
            return f"L = {total}/N", f"N = {m * k}"
        return f"L = {total}", None
    if isinstance(loss, BCE):
        return f"L = −Σ(Y·log A{n} + (1 − Y)·log(1 − A{n}))/N", f"N = {m * k}"
    assert isinstance(loss, CrossEntropy)
    if labels:
        return f"L = −Σᵢ log A{n}[i, Y[i]]/m", f"m = {m}, Y[i] the class label of sample i"
    return f"L = −Σ(Y·log A{n})/m", f"m = {m}, Y rows of class probabilities"


def _output_delta_formula(loss, activation, n, output_shape, labels):
    """``(formula, note)`` of the output layer's delta (``labels`` as in _loss_formula)."""
    m, k = output_shape
    if isinstance(loss, BCE):
        return f"δ{n} = dL/dZ{n} = (A{n} − Y)/N", f"BCE and sigmoid fused, N = {m * k}"
    if isinstance(loss, CrossEntropy):
        if labels:
            return (f"δ{n} = dL/dZ{n} = (A{n} − onehot(Y))/m",
                    f"cross-entropy and softmax fused, m = {m}")
        return f"δ{n} = dL/dZ{n} = (A{n} − Y)/m", f"cross-entropy and softmax fused, m = {m}"
    assert isinstance(loss, MSE)
    grad_a = f"dL/dA{n} = {_times(2 * loss.scale, f'(A{n} − Y)')}"
    if loss.reduction == "mean":
        grad_a += f"/N, N = {m * k}"
    if activation == "softmax":
        return f"δ{n} = dL/dZ{n} = softmax'(Z{n})ᵀ dL/dA{n}", f"row by row, {grad_a}"
    return f"δ{n} = dL/dZ{n} = dL/dA{n} ⊙ {activation}'(Z{n})", grad_a


def _clipping_note(optimizer, layers):
    """The line saying how the gradients were clipped before the update, or None."""
    clip_norm = getattr(optimizer, "clip_norm", None)
    clip_value = getattr(optimizer, "clip_value", None)
    if clip_norm is None and clip_value is None:
        return None
    lines = ["  the gradients are clipped first (clip(dW), clip(db) below):"]
    if clip_norm is not None:
        norm = np.sqrt(sum(np.sum(np.square(grad, dtype=np.float64))
                           for layer in layers for grad in (layer.grad_weights, layer.grad_bias)))
        lines.append(f"    g ← g·min(1, {clip_norm:g}/‖g‖), ‖g‖ = {norm:.6g} over all layers")
    if clip_value is not None:
        lines.append(f"    {'then ' if clip_norm is not None else ''}each element clamped to "
                     f"[−{clip_value:g}, {clip_value:g}]")
    return "\n".join(lines)


def _update_formula(optimizer, param, grad, decayed):
    """``(right-hand side, note)`` of the update of ``param`` by ``optimizer``."""
    if getattr(optimizer, "clip_norm", None) is not None or \
            getattr(optimizer, "clip_value", None) is not None:
        grad = f"clip({grad})"
    g, notes = grad, []
    decay = getattr(optimizer, "weight_decay", 0.0)
    if decayed and decay:  # weight decay applies to weights only
        g = "g"
        notes.append(f"g = {grad} + {decay:g}·{param}")
    rule, state_notes = optimizer._trace_rule(param, g)
    notes += [note for note in state_notes if note != "g = g"]   # g is already defined
    return rule, ", ".join(notes) or None
