"""The reference Network: backpropagation written as the maths reads, in NumPy."""
import functools

import numpy as np

from .._network_base import NetworkBase
from ..losses import BCE, MSE, CrossEntropy
from . import ops


def _overflow_is_a_result(method):
    """Overflow of a diverging network shows in its results (an infinite loss
    becomes FloatingPointError in train_step), not as NumPy warnings: the same
    behaviour as the compiled engine's IEEE arithmetic."""

    @functools.wraps(method)
    def quiet(*args):
        with np.errstate(over="ignore", invalid="ignore"):
            return method(*args)

    return quiet


class Network(NetworkBase):
    """Same arguments, methods and results as :class:`cbackprop.Network`, in plain NumPy
    (pickles and copies too: a pickle of one loads as this class)."""

    def _build(self, weights, biases):
        self._weights = weights
        self._biases = biases

    def _parameters(self):
        return self._weights, self._biases

    def _assign_parameters(self, weights, biases):
        self._weights = [w.copy() for w in weights]
        self._biases = [b.copy() for b in biases]

    def _reset_optimizer_state(self):
        self._step_count = 0
        self._moment1 = [np.zeros_like(p) for p in self._weights + self._biases]
        self._moment2 = [np.zeros_like(p) for p in self._weights + self._biases]

    # -- forward and backward ----------------------------------------------------------
    def _forward_pass(self, X):
        """Pre-activations and activations of every layer; ``activations[0]`` is X."""
        pre_activations, activations = [], [X]
        for W, b, name in zip(self._weights, self._biases, self._activations):
            z = ops.dense_forward(activations[-1], W, b)
            pre_activations.append(z)
            activations.append(ops.ACTIVATIONS[name][0](z))
        return pre_activations, activations

    @_overflow_is_a_result
    def _forward(self, X):
        return self._forward_pass(X)[1][-1]

    def _output_loss(self, z, a, Y):
        """The loss and ``delta = dL/dZ`` of the output layer."""
        loss = self._loss
        if isinstance(loss, CrossEntropy):
            if Y.dtype == np.int64:
                Y = ops.one_hot(Y, z.shape[1], z.dtype)
            return ops.cross_entropy_loss(z, Y)
        if isinstance(loss, BCE):
            return ops.bce_loss(z, Y)
        assert isinstance(loss, MSE)
        value, grad_a = ops.mse_loss(a, Y, loss.scale, loss.reduction)
        return value, ops.ACTIVATIONS[self._activations[-1]][1](grad_a, z, a)

    @_overflow_is_a_result
    def _loss_value(self, X, Y):
        pre_activations, activations = self._forward_pass(X)
        return self._output_loss(pre_activations[-1], activations[-1], Y)[0]

    @_overflow_is_a_result
    def _loss_and_gradients(self, X, Y):
        loss, grads, _ = self._backward_pass(X, Y)
        return loss, grads

    def _backward_pass(self, X, Y):
        """``(loss, grads, passes)``: the gradients of every layer and, for
        ``Network.trace``, ``passes = (pre_activations, activations, deltas)``
        with ``deltas[l] = dL/dZ`` of layer ``l``."""
        pre_activations, activations = self._forward_pass(X)
        loss, delta = self._output_loss(pre_activations[-1], activations[-1], Y)
        grads = [None] * len(self._weights)
        deltas = [None] * len(self._weights)
        for layer in reversed(range(len(self._weights))):
            deltas[layer] = delta
            grad_weights, grad_bias, grad_a_prev = ops.dense_backward(
                delta, activations[layer], self._weights[layer])
            grads[layer] = (grad_weights, grad_bias)
            if layer > 0:
                backward = ops.ACTIVATIONS[self._activations[layer - 1]][1]
                delta = backward(grad_a_prev, pre_activations[layer - 1], activations[layer])
        return loss, grads, (pre_activations, activations, deltas)

    # -- optimizer step ----------------------------------------------------------------
    @_overflow_is_a_result
    def _train_step(self, X, Y):
        loss, grads = self._loss_and_gradients(X, Y)
        if not np.isfinite(loss):
            return loss
        opt = self._optimizer
        params = self._weights + self._biases
        gradients = ops.clip_gradients([gw for gw, _ in grads] + [gb for _, gb in grads],
                                       opt.clip_norm, opt.clip_value)
        n_weights = len(self._weights)
        t = self._step_count + 1
        stepped = []
        for i, (param, grad) in enumerate(zip(params, gradients)):
            if i < n_weights and opt.weight_decay:
                grad = grad + opt.weight_decay * param
            if opt.name == "adam":
                stepped.append(ops.adam_step(param, grad, self._moment1[i], self._moment2[i], t,
                                             opt.lr, opt.beta1, opt.beta2, opt.eps))
            else:
                new_param, velocity = ops.sgd_step(param, grad, self._moment1[i], opt.lr,
                                                   opt.momentum, opt.nesterov)
                stepped.append((new_param, velocity, self._moment2[i]))
        # A step that would leave anything non-finite is refused whole.
        if not all(np.isfinite(value).all() for values in stepped for value in values):
            raise FloatingPointError(
                f"the update of this step overflows {self._dtype.name} (loss {loss:.6g}; "
                "training diverged); parameters were not updated")
        new_params, new_m1, new_m2 = (list(values) for values in zip(*stepped))
        # Everything is computed: the new state replaces the old in one C call,
        # so a Ctrl-C lands before it or after it, never in the middle.
        vars(self).update(_weights=new_params[:n_weights], _biases=new_params[n_weights:],
                          _moment1=new_m1, _moment2=new_m2, _step_count=t)
        return loss

    # -- optimizer state out and back in (Network.trace undoes a trial step) -----------
    def _optimizer_state(self):
        return ([m.copy() for m in self._moment1], [v.copy() for v in self._moment2],
                self._step_count)

    def _restore_optimizer_state(self, state):
        moment1, moment2, self._step_count = state
        self._moment1 = [m.copy() for m in moment1]
        self._moment2 = [v.copy() for v in moment2]
