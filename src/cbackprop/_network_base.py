"""What the compiled and the reference Network share: arguments, validation
at the boundary, parameters in and out, fit, save and load.

Subclasses supply the arithmetic through hooks that receive validated,
C-contiguous arrays of the network's dtype (``_build``, ``_parameters``,
``_assign_parameters``, ``_reset_optimizer_state``, ``_forward``,
``_loss_value``, ``_loss_and_gradients``, ``_train_step``), and ``trace`` takes the
optimizer state out and puts it back through two more
(``_optimizer_state``, ``_restore_optimizer_state``); pickle and copy use
those too, so one ``__getstate__``/``__setstate__`` serves both classes.
``trace`` gets the reference maths of a pass from the class attribute
``_reference_intermediates`` (:func:`cbackprop.reference.passes.intermediates`):
this module never imports :mod:`cbackprop.reference`, whose ``__init__``
imports the reference Network, a subclass of this class.
"""
import copy
import math
import operator
import textwrap
import threading

import numpy as np

from . import _io, _trace, _training
from ._checks import boolean
from ._init import check_init, initial_parameters
from ._signals import sigint_deferred
from ._validation import (
    as_batch,
    as_list,
    as_dtype,
    as_targets,
    check_activations,
    check_dtype,
    check_finite,
    check_loss_fits,
    check_seed,
    check_sizes,
    check_softmax_width,
    check_values,
    loss_not_finite_error,
    numeric_array,
)
from ._activations import REGISTRY as ACTIVATION_REGISTRY
from .losses import LOSSES, loss_from_config, make_loss
from .optimizers import OPTIMIZERS, make_optimizer, optimizer_from_config

#: Version of the state that ``__getstate__`` writes and ``__setstate__`` reads.
STATE_VERSION = 1


def _constructor_doc(template):
    """The constructor's documentation with the registries' names filled in."""
    def names(values):
        return ", ".join(f'``"{value}"``' for value in values)

    def classes(values):
        return ", ".join(f":class:`cbackprop.{cls.__name__}`" for cls in values)

    def bullet(text):
        return textwrap.fill(text, width=78, initial_indent=" " * 8 + "- ",
                             subsequent_indent=" " * 10)

    return template.format(
        activations=bullet(f"``activations``: one name per weight layer (``len(sizes) - 1``): "
                           f"{names(ACTIVATION_REGISTRY)} (alias ``\"linear\"`` for identity; "
                           "softmax on the last layer only, with at least 2 outputs)."),
        loss=bullet(f"``loss``: {names(LOSSES)}, or an instance of {classes(LOSSES.values())}."),
        optimizer=bullet(f"``optimizer``: {classes(OPTIMIZERS.values())} (``SGD()`` when "
                         f"``None``; or a name, {names(OPTIMIZERS)}); assignable later "
                         "(``net.optimizer = ...``, ``net.optimizer.lr = ...`` takes effect "
                         "on the next step)."))


def _step_count(value):
    """An optimizer state's count of steps taken: an integer >= 0."""
    try:
        count = operator.index(value)
    except TypeError:
        raise TypeError(f"step_count must be an integer, got {type(value).__name__}") from None
    if count < 0:
        raise ValueError(f"step_count must be >= 0, got {count}")
    return count


class NetworkBase:
    def __init__(self, sizes, activations, loss="mse", optimizer=None, dtype="float64",
                 init="auto", seed=None):
        """A dense feed-forward network.

        - ``sizes``: layer widths, input first (``[2, 3, 1]``: 2 inputs, a
          hidden layer of 3, 1 output); at least two, each >= 1.
{activations}
{loss}
{optimizer}
        - ``dtype``: ``"float32"`` or ``"float64"`` (NumPy dtypes too): every
          parameter and computation uses it.
        - ``init``: ``"auto"`` (He for relu/leaky_relu layers, Glorot
          otherwise: each activation's registry entry says), ``"xavier"`` or
          ``"he"``; biases start at 0.
        - ``seed``: an int; the same seed gives the same initial parameters
          in both implementations.

        Layer ``l`` computes ``Z = A_prev @ W + b``, ``W`` of shape
        ``(sizes[l-1], sizes[l])``; a batch ``X`` is ``(m, sizes[0])``.
        """
        self._describe(sizes, activations, dtype, loss, optimizer)
        weights, biases = initial_parameters(self._sizes, self._activations, check_init(init),
                                             check_seed(seed), self._dtype)
        self._build(weights, biases)
        self._reset_optimizer_state()

    __init__.__doc__ = _constructor_doc(__init__.__doc__)

    # The lock's type: reentrant, as threading.RLock's (the compiled Network
    # takes one its engine can take in C).
    _new_lock = staticmethod(threading.RLock)

    def _describe(self, sizes, activations, dtype, loss, optimizer):
        """Check and set what every network holds besides its arithmetic."""
        sizes = check_sizes(sizes)
        activations = check_activations(activations, len(sizes) - 1)
        check_softmax_width(activations, sizes)
        dtype = check_dtype(dtype)
        loss = make_loss(loss)
        check_loss_fits(loss, activations[-1])
        # One call at a time per network: the compiled passes share workspaces
        # and both implementations update parameters in place. A second
        # thread waits (without holding the GIL) until the first is done.
        self._lock = self._new_lock()
        self._sizes = sizes
        self._activations = activations
        self._dtype = dtype
        self._loss = loss
        self._optimizer = make_optimizer(optimizer)

    # -- read-only description -------------------------------------------------
    @property
    def sizes(self):
        """The layer widths, input first (a copy)."""
        return list(self._sizes)

    @property
    def activations(self):
        """The activation of each weight layer, by name (a copy; aliases resolved)."""
        return list(self._activations)

    @property
    def dtype(self):
        """The parameters' and computations' numpy dtype: float32 or float64."""
        return self._dtype

    @property
    def loss_function(self):
        """The loss: an MSE, BCE or CrossEntropy instance."""
        return self._loss

    @property
    def optimizer(self):
        """The optimizer (an SGD, Adam or RMSprop instance). Its settings may be
        changed between steps (``net.optimizer.lr = 0.05`` takes effect on the
        next one); assigning another optimizer (an instance or a name) starts
        from fresh state: zero velocities and moments, step count 0."""
        return self._optimizer

    @optimizer.setter
    def optimizer(self, optimizer):
        # A new optimizer starts from fresh state (zero velocities/moments, t = 0).
        optimizer = make_optimizer(optimizer)
        with self._lock, sigint_deferred():   # never the new optimizer on the old state
            self._use_optimizer(optimizer)

    def _use_optimizer(self, optimizer):
        """Train on with this optimizer from fresh state (the lock held)."""
        self._reset_optimizer_state()   # (first: a MemoryError keeps the old optimizer)
        self._optimizer = optimizer

    def __repr__(self):
        return (f"{type(self).__module__}.{type(self).__name__}({self._sizes}, {self._activations}, "
                f"loss={self._loss!r}, optimizer={self._optimizer!r}, dtype='{self._dtype.name}')")

    # -- parameters ------------------------------------------------------------
    def get_params(self):
        """``(weights, biases)``: lists of copies, ``W`` of shape ``(fan_in, fan_out)``."""
        with self._lock:
            weights, biases = self._parameters()
            return [w.copy() for w in weights], [b.copy() for b in biases]

    def set_params(self, weights, biases):
        """Copy ``weights`` and ``biases`` in, cast to the network's dtype.

        All of them are checked before any is written, so a bad list leaves
        the network unchanged; a Ctrl-C while they are written waits until
        all are in.
        """
        n_layers = len(self._sizes) - 1
        weights = as_list("weights", weights, "a list with one array per layer")
        biases = as_list("biases", biases, "a list with one array per layer")
        if len(weights) != n_layers or len(biases) != n_layers:
            raise ValueError(f"expected {n_layers} weight matrices and {n_layers} bias vectors, "
                             f"got {len(weights)} and {len(biases)}")
        new_weights, new_biases = [], []
        for layer, (fan_in, fan_out) in enumerate(zip(self._sizes[:-1], self._sizes[1:])):
            for name, value, shape, out in (
                (f"weights[{layer}]", weights[layer], (fan_in, fan_out), new_weights),
                (f"biases[{layer}]", biases[layer], (fan_out,), new_biases),
            ):
                array = numeric_array(name, value)
                if array.shape != shape:
                    raise ValueError(f"{name} must have shape {shape}, got {array.shape}")
                array = as_dtype(name, array, self._dtype)
                check_finite(name, array)
                out.append(array)
        with self._lock, sigint_deferred():   # written whole, even on Ctrl-C
            self._assign_parameters(new_weights, new_biases)

    # -- computation -----------------------------------------------------------
    def _inputs(self, X):
        return as_batch(X, self._sizes[0], self._dtype)

    def _batch(self, X, Y):
        X, single = self._inputs(X)
        Y = as_targets(Y, X.shape[0], self._sizes[-1], self._loss, self._dtype, single)
        self._check_values(X, Y)
        return X, Y

    def _check_values(self, X, Y):
        check_values(X, Y, self._loss, self._sizes[-1])

    def forward(self, X):
        """Output activations ``(m, sizes[-1])``, or ``(sizes[-1],)`` for a 1-D ``X``."""
        X, single = self._inputs(X)
        self._check_values(X, None)
        with self._lock:
            out = self._forward(X)
        return out[0] if single else out

    def predict(self, X):
        """Same as :meth:`forward`."""
        return self.forward(X)

    def loss(self, X, Y):
        """The loss on this batch as a Python float."""
        X, Y = self._batch(X, Y)
        with self._lock:
            return float(self._loss_value(X, Y))

    def loss_and_gradients(self, X, Y):
        """``(loss, [(dW, db), ...])``; the parameters are not changed."""
        X, Y = self._batch(X, Y)
        with self._lock:
            loss, grads = self._loss_and_gradients(X, Y)
        return float(loss), grads

    def train_step(self, X, Y):
        """One optimizer step on this batch; returns the loss before the update.

        Raises FloatingPointError, with nothing changed, when the loss is not
        finite or the update would overflow the dtype.
        """
        return self._checked_step(*self._batch(X, Y))

    def _checked_step(self, X, Y):
        with self._lock:
            loss = float(self._train_step(X, Y))
        if not math.isfinite(loss):
            self._diverged(loss)
        return loss

    @staticmethod
    def _diverged(loss):
        raise loss_not_finite_error(loss)

    def _run_epoch(self, X, Y, order, batch_size, ctrl_c, display, diverged):
        """fit's steps over the minibatches of one epoch, the rows of X and Y
        taken in ``order`` (a permutation, or None: as they are); the epoch's
        mean loss. A Python loop of ``_checked_step`` here; the compiled
        Network runs it in compiled chunks, to the same bits."""
        if order is not None:
            X, Y = X[order], Y[order]

        def step(X, Y):
            with self._lock:
                ctrl_c.check()   # one that came while another thread's call held the lock
                return self._checked_step(X, Y)
        return _training.run_epoch(step, X, Y, batch_size, ctrl_c, display, diverged)

    def fit(self, X, Y, epochs=10, batch_size=32, shuffle=True, seed=None, verbose=False, *,
            validation_data=None, patience=None, min_delta=0.0, restore_best=True,
            callbacks=None):
        """Train in minibatches; returns a :class:`cbackprop.History`, a ``dict``
        whose ``"loss"`` is the mean training loss of each epoch.

        The epoch loss is the mean of the batch losses weighted by batch size.
        ``seed`` makes the shuffling repeatable. Everything (data, validation
        data, arguments) is checked before the first step. The optimizer's
        state carries over from earlier steps and fits (two fits of 2 epochs
        are one of 4 with ``shuffle=False``). Changing ``X`` or ``Y`` during
        the fit (from a callback or another thread) is not supported: class
        labels are copied when checked, and float data already C-contiguous
        in the network's dtype is read where it lies.

        - ``validation_data=(X_val, Y_val)``: after each epoch, the loss on it
          (``history["val_loss"]``, equal to ``net.loss(X_val, Y_val)`` at that
          point) and, for ``cross_entropy`` and ``bce``, the fraction classified
          correctly (``history["val_accuracy"]``; the argmax of the output
          against the label, or the one-hot target's argmax; for ``bce``, each
          output against the target, each class 1 above 0.5 and class 0 at
          0.5 or below).
        - Early stopping, on when ``patience`` (an int >= 1) is given: it follows
          ``val_loss`` with validation data, else the training ``loss``, and
          stops after ``patience`` epochs in a row that did not lower it by
          more than ``min_delta``. With ``restore_best`` (the default; it acts
          only together with ``patience``) the network then ends with the
          parameters of ``history.best_epoch`` (the optimizer's state is not
          rewound), whether the epochs ran out, patience did or a callback
          stopped training, but not after Ctrl-C. Without ``patience``,
          ``restore_best`` does nothing: the last parameters stay.
        - ``callbacks``: a list of callables, each called after every epoch as
          ``callback(net, epoch, logs)``, ``epoch`` the 0-based index of the
          epoch into the history's lists (``history.best_epoch`` and the
          progress line count from 1: epoch ``epoch + 1``) and ``logs`` a new
          dict of that epoch's figures (the keys of the history, one float
          each). A callback may change the network (e.g. ``net.optimizer.lr``).
          Returning ``True`` (the epoch's other callbacks still run) or raising
          :class:`cbackprop.StopTraining` (they do not) ends training after
          this epoch (``history.stop_reason == "callback"``).
        - ``verbose=True`` shows progress on stdout: a line rewritten in place
          during each epoch (batches, running loss, time, time left) and one
          line per finished epoch; to a file or pipe, only the latter.
          ``verbose=False`` writes nothing.
        - Ctrl-C (``KeyboardInterrupt``) ends training cleanly: the running
          step (or validation, or callback) completes, no further step runs
          (a second Ctrl-C does not wait for the step of the reference, but its
          update is still written whole or not at all; the compiled Network's
          running step is one C call, which both Ctrl-Cs wait for), and fit
          returns the history of the
          completed epochs with ``history.interrupted`` set; the parameters
          are those after the last completed step, even with ``restore_best``
          (nothing is restored), also when Ctrl-C comes in the last epoch.

        - A diverging step raises FloatingPointError, as ``train_step`` does,
          with the parameters (and optimizer state) as after the previous
          step. Its message ends with where fit stopped (``"...; fit stopped
          at epoch 3, batch 7 of 12 ..."``, both numbered from 1, batches in
          the epoch's order) and ``err.history`` holds the history of the
          epochs finished before it (``stop_reason == "diverged"``; nothing
          is restored, even with ``restore_best``).

        :class:`cbackprop.History` lists the history's keys and attributes.
        """
        return _training.fit(self, X, Y, epochs, batch_size, shuffle, seed, verbose,
                             validation_data, patience, min_delta, restore_best, callbacks)

    # -- files -------------------------------------------------------------------
    def save(self, path):
        """Write architecture, dtype, parameters, loss and optimizer settings to ``path``
        (an ``.npz`` archive without pickles), atomically: a failed save leaves
        any existing file as it was. ``path`` is a ``str``, ``bytes`` or
        path-like object; saving onto a symbolic link writes the file it
        points to (the link stays), as writing through ``open`` would. Onto a
        FIFO, a pipe or a device (``/dev/null``, ``/dev/stdout`` on a pipe or
        terminal) it writes through, as ``open`` would, not atomically."""
        _io.save_network(self, path)

    @classmethod
    def load(cls, path):
        """A network read from a file written by :meth:`save`; never unpickles."""
        return _io.load_network(cls, path)

    # -- copies and pickles ------------------------------------------------------------
    def __getstate__(self):
        """The network as plain data, for ``pickle`` and ``copy``.

        A dict of strings, numbers, lists, small dicts and NumPy arrays:
        architecture, dtype, loss and optimizer (names and settings),
        parameters, and the optimizer state (momentum velocities, Adam's
        moments and step count, in the implementation's own layout), so a
        network restored from it trains on bit for bit like the original.
        Never the compiled engine, workspaces or the lock: ``__setstate__``
        builds them anew. Attributes whose names do not start with ``_``
        (set by the user: the network itself has none) are carried as they
        are; the number of threads is the process's (``cb.set_num_threads``),
        not the network's, and is not carried. A pickle loads as the class it
        was taken from (compiled or reference).
        """
        with self._lock:   # parameters and optimizer state of the same moment
            weights, biases = self.get_params()
            optimizer_state = self._optimizer_state()
        return {
            "version": STATE_VERSION,
            "sizes": list(self._sizes),
            "activations": list(self._activations),
            "dtype": self._dtype.name,
            "loss": {"name": self._loss.name, "config": self._loss.config()},
            "optimizer": {"name": self._optimizer.name, "config": self._optimizer.config()},
            "weights": weights,
            "biases": biases,
            "optimizer_state": optimizer_state,
            "attributes": {name: value for name, value in vars(self).items()
                           if not name.startswith("_")},
        }

    def __setstate__(self, state):
        """Rebuild the network from what :meth:`__getstate__` returned."""
        version = state.get("version") if isinstance(state, dict) else None
        if version != STATE_VERSION:
            raise ValueError(f"not a cbackprop network state of version {STATE_VERSION} "
                             f"(got version {version!r})")
        self._describe(state["sizes"], state["activations"], state["dtype"],
                       loss_from_config(**state["loss"]),
                       optimizer_from_config(**state["optimizer"]))
        # Built on zeros, then set_params checks and copies the carried values.
        self._build([np.zeros((n_in, n_out), self._dtype)
                     for n_in, n_out in zip(self._sizes[:-1], self._sizes[1:])],
                    [np.zeros(n_out, self._dtype) for n_out in self._sizes[1:]])
        self.set_params(state["weights"], state["biases"])
        self._reset_optimizer_state()
        moment1, moment2, step_count = state["optimizer_state"]
        self._restore_optimizer_state((moment1, moment2, _step_count(step_count)))
        vars(self).update(state["attributes"])

    def __copy__(self):
        """``copy.copy(net)`` is ``copy.deepcopy(net)``: a network that shares
        nothing with this one (parameters, optimizer state, loss and optimizer
        objects), so training either never changes the other. A shallow copy
        would share the parameters and engine, which nothing could use safely."""
        return copy.deepcopy(self)

    # -- inspection ----------------------------------------------------------------
    def trace(self, X, Y, apply=False):
        """One training step on this batch with every intermediate recorded.

        Returns a :class:`cbackprop.Trace` of plain NumPy arrays: the batch,
        the loss before the update, and per layer ``z``, ``a``, ``delta``
        (dL/dZ), ``grad_weights``, ``grad_bias`` and the weights and bias
        before and after the update; ``str(trace)`` writes it out as a
        worked example. ``z``, ``a`` and ``delta`` are recomputed by the
        NumPy reference maths in the network's dtype; the gradients, the loss
        and the parameters after the update are the network's own, from the
        same optimizer step as :meth:`train_step`.

        With ``apply=False`` (the default) the network is left exactly as it
        was: parameters and optimizer state (velocities, moments, step count)
        are restored bit for bit. With ``apply=True`` the step is kept, as if
        :meth:`train_step` had been called. Raises what ``train_step`` raises
        (FloatingPointError for a diverging step, which changes nothing).
        """
        apply = boolean("apply", apply)
        X, Y = self._batch(X, Y)
        return _trace.record_trace(self, X, Y, apply)

