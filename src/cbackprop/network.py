"""The compiled Network: validation at the boundary (arguments, shapes and
dtypes in Python, _validation.py, or for arrays already of the network's
dtype and layout by the engine's C fast path; the values of X and Y by the
engine's first C pass, with the same wording), every pass one nogil call
into the Cython engine."""
import signal

from ._backend import engine as _engine
from ._network_base import NetworkBase
from .reference import passes


class Network(NetworkBase):
    """A dense feed-forward network trained by backpropagation.

    ``Network(sizes, activations, loss="mse", optimizer=None, dtype="float64",
    init="auto", seed=None)``; ``help(cbackprop)`` gives the conventions
    (shapes, targets, errors). ``cbackprop.reference.Network`` is its NumPy
    twin, with the same results to rounding.

    Networks pickle and deep-copy with their optimizer state, and a copy
    trains on bit for bit like the original; ``copy.copy`` makes the same
    independent (deep) copy.
    """

    # train_step, forward, loss and loss_and_gradients hand arrays already in
    # the engine's form straight to it (checked there, in C); the hooks below
    # (_train_step, _forward, ...) serve the Python boundary's path, which
    # converts everything else.

    # A reentrant lock that the engine's fast paths (Engine.network_call)
    # take in C, at a fraction of a `with` statement's cost.
    _new_lock = staticmethod(_engine.NetworkLock)

    # trace shows the NumPy reference maths' intermediates next to the engine's own numbers.
    _reference_intermediates = staticmethod(passes.intermediates)

    def _build(self, weights, biases):
        self._engine = _engine.Engine(self._sizes, self._activations, self._dtype,
                                      self._loss, self._lock, self._optimizer)
        self._assign_parameters(weights, biases)

    def _use_optimizer(self, optimizer):
        super()._use_optimizer(optimizer)
        self._engine.use_optimizer(optimizer)   # the one train_step reads

    def _parameters(self):
        # Fresh views each time: steps swap the engine's parameter buffer.
        return self._engine.parameter_views()

    def _assign_parameters(self, weights, biases):
        views = self._engine.parameter_views()
        for view, value in zip(views[0] + views[1], weights + biases):
            view[...] = value

    def _reset_optimizer_state(self):
        self._engine.reset_optimizer_state()

    def _check_values(self, X, Y):
        # Same checks as the reference's, done by one pass in C.
        self._engine.check_values(X, Y)

    def _forward(self, X):
        return self._engine.forward(X)

    # forward, loss and train_step are the engine's functions: an X (and Y)
    # already C-contiguous in the network's dtype and shape (a batch, or for
    # forward one sample as a row) is checked by the engine in C (same
    # checks, same errors), with no Python frame on the way; anything else
    # comes back to the _converted_* hook, through the Python boundary.
    forward = _engine.network_forward_method
    loss = _engine.network_loss_method
    train_step = _engine.network_train_step_method

    def _converted_forward(self, X):
        return super().forward(X)

    def _converted_loss(self, X, Y):
        return super().loss(X, Y)

    def _converted_train_step(self, X, Y):
        return super().train_step(X, Y)

    def _loss_value(self, X, Y):
        return self._engine.loss(X, Y, self._loss)

    def _loss_and_gradients(self, X, Y):
        loss = self._engine.loss_and_gradients(X, Y, self._loss)
        return loss, self._engine.gradient_copies()

    def loss_and_gradients(self, X, Y):
        """``(loss, [(dW, db), ...])``; the parameters are not changed."""
        with self._lock:
            value = self._engine.loss_and_gradients_if_ready(X, Y, self._loss)
            if value is not None:
                return value, self._engine.gradient_copies()
        return super().loss_and_gradients(X, Y)

    def _train_step(self, X, Y):
        return self._engine.train_step(X, Y, self._loss, self._optimizer)

    # fit's epochs run in compiled chunks of about this many seconds: Python
    # (the progress line, Ctrl-C's check) runs between them.
    _CHUNK_SECONDS = 0.05

    def _run_epoch(self, X, Y, order, batch_size, ctrl_c, display, diverged):
        """The reference's loop of steps (NetworkBase._run_epoch), in compiled
        chunks: the same steps on the same batches (each batch's rows gathered
        in the epoch's order), the same running loss, the same bits. A Ctrl-C
        stops a chunk after the step it interrupts."""
        m = X.shape[0]
        batch_size = min(batch_size, m)   # one batch of every row, however large the request
        n_batches = -(-m // batch_size)
        total, batch = 0.0, 0
        while batch < n_batches:
            ctrl_c.check()
            with self._lock:   # (a Ctrl-C while it waited: train_batches takes no step)
                batch, total, error, interrupted = self._engine.train_batches(
                    X, Y, order, batch, batch_size, total, self._loss, self._optimizer,
                    self._CHUNK_SECONDS, ctrl_c)
            if interrupted:
                # For Python's handler (fit's): it runs now and requests the stop.
                signal.raise_signal(signal.SIGINT)
            if error is not None:
                diverged(error, batch + 1)
                try:
                    raise error
                finally:
                    # Else this frame holds the error, whose traceback holds
                    # this frame: a cycle keeping the network and the data
                    # alive until the cycle collector runs.
                    del error
            ctrl_c.check()
            if display is not None and display.clock() >= display.next_draw:
                display.draw_batch(batch, total / min(batch * batch_size, m))
        return total / m

    # -- optimizer state out and back in (Network.trace undoes a trial step) -----------
    def _optimizer_state(self):
        return self._engine.optimizer_state()

    def _restore_optimizer_state(self, state):
        self._engine.restore_optimizer_state(*state)


# The engine's functions serve as Network's methods: named as such.
for _name in ("forward", "loss", "train_step"):
    getattr(Network, _name).__name__ = _name
    getattr(Network, _name).__qualname__ = f"Network.{_name}"
del _name
