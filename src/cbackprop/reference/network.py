"""The reference Network: backpropagation written as the maths reads, in NumPy."""
import functools

import numpy as np

from .._network_base import NetworkBase
from . import ops, passes


def _ieee_arithmetic(method):
    """Overflow, underflow and division by zero show in the results (an
    infinite loss becomes FloatingPointError in train_step), whatever
    ``np.seterr`` says: the compiled engine's IEEE arithmetic. Under
    ``np.seterr(all="raise")`` a sigmoid's exp(-40) underflowing to 0 would
    otherwise stop a finite step as a divergence."""

    @functools.wraps(method)
    def quiet(*args):
        with np.errstate(all="ignore"):
            return method(*args)

    return quiet


class Network(NetworkBase):
    """Same arguments, methods and results as :class:`cbackprop.Network`, in plain NumPy
    (pickles and copies too: a pickle of one loads as this class)."""

    _reference_intermediates = staticmethod(passes.intermediates)   # for trace

    def _build(self, weights, biases):
        self._weights = weights
        self._biases = biases

    def _parameters(self):
        return self._weights, self._biases

    # The state is replaced whole once every new array exists: a MemoryError
    # on the way leaves it as it was.
    def _assign_parameters(self, weights, biases):
        self._weights, self._biases = [w.copy() for w in weights], [b.copy() for b in biases]

    def _reset_optimizer_state(self):
        parameters = self._weights + self._biases
        self._moment1, self._moment2, self._step_count = (
            [np.zeros_like(p) for p in parameters], [np.zeros_like(p) for p in parameters], 0)

    # -- forward and backward: the pure passes of reference/passes.py ------------------
    @_ieee_arithmetic
    def _forward(self, X):
        return passes.forward(self._weights, self._biases, self._activations, X)[1][-1]

    @_ieee_arithmetic
    def _loss_value(self, X, Y):
        return passes.loss_value(self._weights, self._biases, self._activations, self._loss, X, Y)

    @_ieee_arithmetic
    def _loss_and_gradients(self, X, Y):
        loss, grads, _ = passes.backward(self._weights, self._biases, self._activations,
                                         self._loss, X, Y)
        return loss, grads

    # -- optimizer step ----------------------------------------------------------------
    @_ieee_arithmetic
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
            stepped.append(ops.OPTIMIZER_STEPS[opt.name](param, grad, self._moment1[i],
                                                          self._moment2[i], t, opt))
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
        """Put back a state ``_optimizer_state`` returned (or a pickle carried,
        its step count checked by ``__setstate__``): the moments checked
        first, as the compiled engine's (TypeError for what is not a list of
        arrays, ValueError for their number, shapes or dtype), so a state of
        another network is refused here rather than by a broadcasting error
        at the next step."""
        moment1, moment2, step_count = state
        parameters = self._weights + self._biases
        for name, moments in (("moment1", moment1), ("moment2", moment2)):
            if (not isinstance(moments, list)
                    or not all(isinstance(m, np.ndarray) for m in moments)):
                raise TypeError(f"{name} must be a list of arrays, got {type(moments).__name__}")
            if (len(moments) != len(parameters)
                    or any(m.shape != p.shape or m.dtype != p.dtype
                           for m, p in zip(moments, parameters))):
                raise ValueError(f"{name} must be a list of {len(parameters)} arrays shaped "
                                 f"and typed as the parameters ({self._dtype.name})")
        self._moment1, self._moment2, self._step_count = (
            [m.copy() for m in moment1], [v.copy() for v in moment2], step_count)
