"""The training loop behind ``Network.fit``: minibatches, validation figures,
early stopping, callbacks, the progress display, a clean stop on Ctrl-C and
a diverging step's error that keeps the finished epochs.

It drives a network only through its validated boundary (``_batch``) and its
hooks (``_run_epoch``, ``_checked_step``, ``_loss_value``, ``_forward``), so
the compiled and the reference Network train identically. ``run_epoch`` is
the reference's loop of steps: per step it adds only two flag tests, before
and after it (a stop requested by Ctrl-C), and, with ``verbose``, one clock
read. The compiled Network runs the same steps in compiled chunks
(network.py).
"""
import math
import numbers
import signal
import threading

import numpy as np

from ._checks import boolean, finite_float
from ._progress import ProgressDisplay
from ._validation import check_seed
from .losses import BCE, CrossEntropy


class StopTraining(Exception):
    """Raise from a ``fit`` callback to end training after the current epoch."""


class History(dict):
    """What ``fit`` returns: a ``dict`` of per-epoch lists, plus how training went.

    Keys (each a list with one float per completed epoch):

    - ``"loss"``: the mean training loss of the epoch (batch losses weighted
      by batch size, each taken before its step's update);
    - ``"val_loss"``: the loss on ``validation_data`` after the epoch (only
      with ``validation_data``);
    - ``"val_accuracy"``: the fraction of ``validation_data`` classified
      correctly after the epoch (only with ``validation_data`` and a
      ``cross_entropy`` or ``bce`` loss).

    Attributes (epochs numbered from 1, as the progress line shows them:
    epoch ``e``'s figures are ``history[key][e - 1]``):

    - ``monitor``: the key early stopping and ``best_epoch`` follow,
      ``"val_loss"`` with validation data, else ``"loss"``;
    - ``best_epoch``: the last epoch that improved ``monitor`` by more than
      ``min_delta`` (its loss is ``history[monitor][best_epoch - 1]``), or
      ``None`` when no epoch completed with a finite figure (an infinite or
      NaN loss never counts as an improvement);
    - ``stopped_epoch``: the epoch after which early stopping or a callback
      ended training, ``None`` when every epoch ran or on Ctrl-C;
    - ``stop_reason``: ``"completed"``, ``"early_stopping"``, ``"callback"``,
      ``"interrupted"``, or ``"diverged"`` (on the history that the
      ``FloatingPointError`` of a diverging step carries as ``err.history``,
      as does any other raised out of ``fit``, a callback's among them);
    - ``interrupted``: ``True`` when Ctrl-C (``KeyboardInterrupt``) ended
      training; the lists then hold only the epochs completed before it.
    """

    def __init__(self, keys, monitor):
        super().__init__((key, []) for key in keys)
        self.monitor = monitor
        self.best_epoch = None
        self.stopped_epoch = None
        self.stop_reason = "completed"

    @property
    def interrupted(self):
        """Whether a Ctrl-C ended the fit (``stop_reason == "interrupted"``)."""
        return self.stop_reason == "interrupted"


def fit(net, X, Y, epochs, batch_size, shuffle, seed, verbose, validation_data, patience,
        min_delta, restore_best, callbacks):
    """``Network.fit`` (documented there): checks everything, then trains."""
    epochs = _count("epochs", epochs, minimum=0)
    batch_size = _count("batch_size", batch_size, minimum=1)
    patience = None if patience is None else _count("patience", patience, minimum=1)
    min_delta = _check_min_delta(min_delta)
    shuffle = boolean("shuffle", shuffle)
    verbose = boolean("verbose", verbose)
    restore_best = boolean("restore_best", restore_best)
    callbacks = _check_callbacks(callbacks)
    X, Y = _own_labels(*net._batch(X, Y), Y)
    validation = None if validation_data is None else _Validation(net, validation_data)
    rng = np.random.default_rng(check_seed(seed))

    keys = ["loss"] + ([] if validation is None else validation.keys)
    history = History(keys, "loss" if validation is None else "val_loss")
    tracker = _BestTracker(net, min_delta, patience,
                           keep_best=restore_best and patience is not None)
    m = X.shape[0]
    n_batches = -(-m // batch_size)
    display = ProgressDisplay(epochs, n_batches) if verbose else None
    epoch = 0

    def diverged(error, batch):
        """Say where the step failed and hand over the finished epochs (the
        failing step changed nothing; nothing is restored)."""
        history.stop_reason = "diverged"
        finished = len(history["loss"])
        where = f"epoch {epoch + 1}, batch {batch} of {n_batches}"
        error.args = (f"{error}; fit stopped at {where} (err.history holds the {finished} "
                      f"finished epoch{'' if finished == 1 else 's'})",)
        error.history = history
        if display is not None:
            display.note(f"training diverged at {where}; parameters as before that step")

    try:
        # A Ctrl-C is honoured at the next of these checks: before and after
        # every step, after the epoch's figures are recorded, after the
        # callbacks, and when the loop ends (on leaving the ``with``), so no
        # step runs after it and an interrupted fit restores nothing.
        with _CtrlCStopsAfterStep() as ctrl_c:
            for epoch in range(epochs):
                ctrl_c.check()
                if display is not None:
                    display.start_epoch(epoch)
                order = rng.permutation(m) if shuffle else None
                figures = {"loss": net._run_epoch(X, Y, order, batch_size, ctrl_c, display,
                                                  diverged)}
                if validation is not None:
                    figures.update(validation.figures(net))
                for key, value in figures.items():
                    history[key].append(value)
                out_of_patience = tracker.update(epoch, figures[history.monitor])
                history.best_epoch = None if tracker.best_epoch is None else tracker.best_epoch + 1
                if display is not None:
                    display.end_epoch(figures)
                ctrl_c.check()
                stopped_by_callback = _run_callbacks(callbacks, net, epoch, figures)
                ctrl_c.check()
                if out_of_patience or stopped_by_callback:
                    history.stopped_epoch = epoch + 1
                    history.stop_reason = "early_stopping" if out_of_patience else "callback"
                    break
    except KeyboardInterrupt:
        history.stop_reason = "interrupted"
        history.stopped_epoch = None   # a Ctrl-C just after a stop by patience or callback wins
        # A second Ctrl-C may land between two appends: keep the lists aligned.
        complete = min(len(values) for values in history.values())
        for values in history.values():
            del values[complete:]
        if display is not None:
            when = "after" if complete == epoch + 1 else "during"
            display.note(f"interrupted {when} epoch {epoch + 1}/{epochs}: {complete} epoch(s) "
                         "complete; parameters as after the last completed step")
        return history
    except FloatingPointError as error:
        # Every one out of fit carries a history (the contract), a callback's
        # own too; an inner fit's (a callback's fit) keeps its own, which its
        # message counts.
        if not hasattr(error, "history"):
            history.stop_reason = "diverged"
            error.history = history
        raise
    finally:
        if display is not None:
            display.close()

    restored = tracker.restore_best(len(history["loss"]) - 1)
    if display is not None and history.stop_reason == "early_stopping":
        by_more_than = f" by more than {min_delta:g}" if min_delta else ""
        best = ("no epoch's was finite" if tracker.best_epoch is None
                else f"best epoch {tracker.best_epoch + 1}")
        display.note(f"early stopping: {history.monitor} did not improve{by_more_than} for "
                     f"{patience} epoch(s); {best}"
                     + (", its parameters restored" if restored else ""))
    return history


def run_epoch(step, X, Y, batch_size, ctrl_c, display, diverged):
    """One pass of ``step`` over the minibatches of ``X, Y``; the mean loss.

    A step's FloatingPointError goes to ``diverged(error, batch)`` (``batch``
    numbered from 1) and is raised on."""
    m = X.shape[0]
    clock = None if display is None else display.clock
    total = 0.0
    for start in range(0, m, batch_size):
        stop = min(start + batch_size, m)
        ctrl_c.check()
        try:
            total += step(X[start:stop], Y[start:stop]) * (stop - start)
        except FloatingPointError as error:
            diverged(error, start // batch_size + 1)
            raise
        ctrl_c.check()
        # With verbose, one clock read per step; a redraw at most every 0.1 s.
        if display is not None and clock() >= display.next_draw:
            display.draw_batch(start // batch_size + 1, total / stop)
    return total / m


class _Validation:
    """The validation set, checked and converted once, and its per-epoch figures."""

    def __init__(self, net, validation_data):
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
            raise ValueError("validation_data must be a pair (X_val, Y_val), got "
                             f"{_describe(validation_data)}")
        try:
            self.X, self.Y = _own_labels(*net._batch(*validation_data), validation_data[1])
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"validation_data: {exc}") from None
        loss = net.loss_function
        self.targets = None
        if isinstance(loss, CrossEntropy):
            self.targets = self.Y if self.Y.dtype == np.int64 else self.Y.argmax(axis=1)
        elif isinstance(loss, BCE):
            self.targets = self.Y > 0.5
        self.keys = ["val_loss"] + ([] if self.targets is None else ["val_accuracy"])

    def figures(self, net):
        with net._lock:
            figures = {"val_loss": float(net._loss_value(self.X, self.Y))}
            if self.targets is not None:
                output = net._forward(self.X)
                predicted = output.argmax(axis=1) if self.targets.ndim == 1 else output > 0.5
                figures["val_accuracy"] = float(np.mean(predicted == self.targets))
        return figures


class _BestTracker:
    """Follows the monitored figure: best epoch, patience, best parameters."""

    def __init__(self, net, min_delta, patience, keep_best):
        self._net = net
        self._min_delta = min_delta
        self._patience = patience
        self._keep_best = keep_best
        self._best = math.inf
        self._epochs_without_improvement = 0
        self._best_params = None
        self.best_epoch = None

    def update(self, epoch, value):
        """Record ``epoch``'s figure; True when patience has run out."""
        if value < self._best - self._min_delta:
            self._best = value
            self.best_epoch = epoch
            self._epochs_without_improvement = 0
            if self._keep_best:
                self._best_params = self._net.get_params()
            return False
        self._epochs_without_improvement += 1
        return self._patience is not None and self._epochs_without_improvement >= self._patience

    def restore_best(self, last_epoch):
        """Put the best epoch's parameters back; True if that changed anything."""
        if self._best_params is None or self.best_epoch == last_epoch:
            return False
        self._net.set_params(*self._best_params)
        return True


class _CtrlCStopsAfterStep:
    """Turns the first Ctrl-C into a request (``requested``) that the loop
    honours at its next ``check()``, so the running step (or validation, or
    callback) completes. A second Ctrl-C raises KeyboardInterrupt at once, as
    usual (a step's writes still complete: both Networks write an update as
    one piece). Leaving the ``with`` without an error raises KeyboardInterrupt
    for a request not yet honoured, after the handler is put back, so a
    Ctrl-C that came after the last check is not lost.

    Signal handlers belong to the main thread; elsewhere, and when the program
    installed its own handler, nothing is changed (and KeyboardInterrupt is
    still caught by ``fit``). A fit run by another fit's callback leaves the
    outer one's handler in place and honours its request too, so that a
    Ctrl-C stops both after the running step.
    """

    __slots__ = ("requested", "_previous", "_outer")

    @property
    def requested_here_or_outside(self):
        return self.requested or (self._outer is not None and self._outer.requested)

    @property
    def watching(self):
        """Whether a fit's handler is the one installed (main thread, no Ctrl-C yet)."""
        return ((self._previous is not None or self._outer is not None)
                and not self.requested_here_or_outside)

    def __enter__(self):
        self.requested = False
        self._previous = self._outer = None
        if threading.current_thread() is threading.main_thread():
            handler = signal.getsignal(signal.SIGINT)
            if handler is signal.default_int_handler:
                self._previous = signal.signal(signal.SIGINT, self._request_stop)
            elif isinstance(getattr(handler, "__self__", None), _CtrlCStopsAfterStep):
                self._outer = handler.__self__
        return self

    def _request_stop(self, signum, frame):
        self.requested = True
        signal.signal(signal.SIGINT, self._previous)

    def check(self):
        if self.requested_here_or_outside:
            raise KeyboardInterrupt

    def __exit__(self, exc_type, exc_value, traceback):
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
        if exc_type is None:
            self.check()
        return False


def _own_labels(X, Y, given):
    """``(X, Y)``, with class labels ``Y`` copied when they are the caller's
    array ``given``: labels index memory, and fit trains on the ones it
    checked, which no callback (or other thread) can then change."""
    if Y.dtype == np.int64 and isinstance(given, np.ndarray) and np.may_share_memory(Y, given):
        Y = Y.copy()
    return X, Y


def _run_callbacks(callbacks, net, epoch, figures):
    """Call each ``callback(net, epoch, logs)``; True if one asks to stop."""
    stop = False
    for callback in callbacks:
        try:
            answer = callback(net, epoch, dict(figures))
        except StopTraining:
            return True
        if answer is True or answer is np.True_:
            stop = True
    return stop


def _count(name, value, minimum):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def _check_min_delta(min_delta):
    min_delta = finite_float("min_delta", min_delta)
    if min_delta < 0:
        raise ValueError(f"min_delta must be finite and >= 0, got {min_delta}")
    return min_delta


def _check_callbacks(callbacks):
    if callbacks is None:
        return []
    if callable(callbacks) or isinstance(callbacks, (str, bytes)):
        raise TypeError("callbacks must be a list of callables (wrap a single callback in a list)")
    try:
        callbacks = list(callbacks)
    except TypeError:
        raise TypeError(
            f"callbacks must be a list of callables, got {_describe(callbacks)}") from None
    for callback in callbacks:
        if not callable(callback):
            raise TypeError(f"each callback must be callable, got {_describe(callback)}")
    return callbacks


def _describe(value):
    if isinstance(value, (tuple, list)):
        return f"a {type(value).__name__} of length {len(value)}"
    return f"an object of type {type(value).__name__}"
