"""Ctrl-C never leaves a network half updated: a SIGINT that lands while a
step's update or set_params is being written is delivered once every array
is written (fit's own handling of Ctrl-C is tested in test_fit.py)."""
import inspect
import os
import signal
import sys

import numpy as np
import pytest

import cbackprop as cb
import cbackprop.network
from cbackprop._signals import sigint_deferred
from cbackprop._trace import record_trace


def params_of(net):
    weights, biases = net.get_params()
    return weights + biases


def assert_same(a, b):
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)


def ctrl_c_at(function, fragment):
    """A context that sends SIGINT when ``function`` first reaches the line
    holding ``fragment`` (the line has not run yet)."""
    function = inspect.unwrap(function)
    lines, first = inspect.getsourcelines(function)
    target = first + next(i for i, text in enumerate(lines) if fragment in text)
    code = function.__code__

    def local(frame, event, arg):
        if event == "line" and frame.f_lineno == target and not sent:
            sent.append(1)
            os.kill(os.getpid(), signal.SIGINT)
        return local

    def on_call(frame, event, arg):
        return local if frame.f_code is code else None

    class Context:
        def __enter__(self):
            sys.settrace(on_call)

        def __exit__(self, *exc_info):
            sys.settrace(None)
            assert sent, f"{function.__qualname__} never reached {fragment!r}"

    sent = []
    return Context()


def test_sigint_deferred_delivers_after_the_block():
    done = []
    with pytest.raises(KeyboardInterrupt):
        with sigint_deferred():
            os.kill(os.getpid(), signal.SIGINT)
            done.append("rest of the block")
    assert done == ["rest of the block"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_sigint_deferred_changes_nothing_without_a_signal():
    with sigint_deferred():
        pass
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def two_layer(Net, optimizer):
    return Net([3, 4, 2], ["tanh", "identity"], optimizer=optimizer, seed=0)


@pytest.mark.parametrize("optimizer", [lambda: cb.SGD(lr=0.1, momentum=0.9),
                                       lambda: cb.Adam(lr=0.01)], ids=["sgd-momentum", "adam"])
def test_ctrl_c_during_the_reference_update_writes_it_whole(optimizer):
    rng = np.random.default_rng(0)
    X, Y = rng.standard_normal((8, 3)), rng.standard_normal((8, 2))
    net, twin = two_layer(cb.reference.Network, optimizer()), two_layer(cb.reference.Network,
                                                                         optimizer())
    for n in (net, twin):
        n.train_step(X, Y)     # non-zero moments
    twin.train_step(X, Y)
    before = params_of(net)
    with pytest.raises(KeyboardInterrupt):
        with ctrl_c_at(cb.reference.Network._train_step, "vars(self).update("):
            net.train_step(X, Y)
    # The interrupt lands before the new state replaces the old or after,
    # never in the middle: the step is taken whole or not at all.
    if all(np.array_equal(a, b) for a, b in zip(params_of(net), before)):
        net.train_step(X, Y)
    assert_same(params_of(net), params_of(twin))
    # moments and step count too: the next steps agree
    for _ in range(2):
        assert net.train_step(X, Y) == twin.train_step(X, Y)
    assert_same(params_of(net), params_of(twin))


@pytest.mark.parametrize("Net, fragment", [
    (cb.reference.Network, "self._biases = "),
    (cbackprop.network.Network, "view[...] = value"),
], ids=["reference", "compiled"])
def test_ctrl_c_during_set_params_writes_them_whole(Net, fragment):
    net = two_layer(Net, None)
    new = two_layer(Net, None)
    new.set_params([w + 1 for w in new.get_params()[0]], [b + 1 for b in new.get_params()[1]])
    with pytest.raises(KeyboardInterrupt):
        with ctrl_c_at(Net._assign_parameters, fragment):
            net.set_params(*new.get_params())
    assert_same(params_of(net), params_of(new))


def test_ctrl_c_after_the_last_check_of_a_fit_is_not_lost(Net, monkeypatch):
    """A Ctrl-C that lands after the training loop's last look at the flag,
    before fit puts the handler back, still stops fit (interrupted), not
    dropped with a history saying "completed"."""
    import cbackprop._training as training
    guard = training._CtrlCStopsAfterStep
    original, calls = guard.check, []

    def counting(self):
        if sys._getframe(1).f_code.co_name != "__exit__":   # the loop's own looks
            calls.append(1)
        original(self)

    X, Y = np.ones((8, 2)), np.zeros((8, 1))
    monkeypatch.setattr(guard, "check", counting)
    Net([2, 1], ["identity"], seed=0).fit(X, Y, epochs=1)
    checks_in_a_fit = len(calls)
    calls.clear()

    def late_ctrl_c(self):
        original(self)
        if sys._getframe(1).f_code.co_name != "__exit__":
            calls.append(1)
            if len(calls) == checks_in_a_fit:
                signal.raise_signal(signal.SIGINT)

    monkeypatch.setattr(guard, "check", late_ctrl_c)
    history = Net([2, 1], ["identity"], seed=0).fit(X, Y, epochs=1)
    assert history.stop_reason == "interrupted"


@pytest.mark.parametrize("Net, function, fragment", [
    (cb.reference.Network, lambda: cb.reference.Network.optimizer.fset, "self._use_optimizer(optimizer)"),
    (cbackprop.network.Network, lambda: cbackprop.network.Network.optimizer.fset,
     "self._use_optimizer(optimizer)"),
    (cb.reference.Network, lambda: cb.reference.Network._reset_optimizer_state,
     "self._moment1, self._moment2, self._step_count = ("),
    (cbackprop.network.Network, lambda: cbackprop.network.Network._use_optimizer,
     "self._engine.use_optimizer(optimizer)"),
], ids=["reference", "compiled", "reference, inside the reset", "compiled, telling the engine"])
def test_ctrl_c_while_an_optimizer_is_assigned_leaves_no_mix(Net, function, fragment):
    """The new optimizer comes with fresh state, never on the old one's
    velocities and step count: a Ctrl-C inside the assignment is delivered
    after it."""
    rng = np.random.default_rng(0)
    X, Y = rng.standard_normal((8, 3)), rng.standard_normal((8, 2))
    net, twin = (two_layer(Net, cb.SGD(lr=0.1, momentum=0.9)) for _ in range(2))
    for n in (net, twin):
        for _ in range(3):
            n.train_step(X, Y)
    twin.optimizer = cb.Adam(lr=0.01)
    with pytest.raises(KeyboardInterrupt):
        with ctrl_c_at(function(), fragment):
            net.optimizer = cb.Adam(lr=0.01)
    assert isinstance(net.optimizer, cb.Adam)
    for _ in range(2):
        assert net.train_step(X, Y) == twin.train_step(X, Y)
    assert_same(params_of(net), params_of(twin))


@pytest.mark.parametrize("Net, function, fragment", [
    (cb.reference.Network, lambda: record_trace, "net._restore_optimizer_state(state)"),
    (cbackprop.network.Network, lambda: record_trace, "net._restore_optimizer_state(state)"),
    (cbackprop.network.Network, lambda: cbackprop.network.Network._assign_parameters,
     "view[...] = value"),
], ids=["reference", "compiled", "compiled, putting the parameters back"])
def test_ctrl_c_while_a_trial_trace_is_undone_leaves_the_network_as_it_was(Net, function, fragment):
    """trace(apply=False) puts the parameters and the optimizer state back
    whole: a Ctrl-C that lands meanwhile is delivered after."""
    rng = np.random.default_rng(0)
    X, Y = rng.standard_normal((8, 3)), rng.standard_normal((8, 2))
    net, twin = (two_layer(Net, cb.Adam(lr=0.01)) for _ in range(2))
    for n in (net, twin):
        n.train_step(X, Y)
    with pytest.raises(KeyboardInterrupt):
        with ctrl_c_at(function(), fragment):
            net.trace(X, Y)
    assert_same(params_of(net), params_of(twin))
    for _ in range(2):
        assert net.train_step(X, Y) == twin.train_step(X, Y)
    assert_same(params_of(net), params_of(twin))


@pytest.mark.parametrize("Net", [cb.reference.Network, cbackprop.network.Network],
                         ids=["reference", "compiled"])
def test_a_ctrl_c_while_fit_waits_for_the_lock_takes_no_step(Net):
    """Fit looked for a Ctrl-C before taking the network's lock, not after: one
    that came while another thread's call held the lock was honoured only
    after a whole compiled chunk (here the whole epoch) or the next step."""
    import threading
    import time
    X = np.random.default_rng(0).standard_normal((4000, 4))
    net = Net([4, 1], ["identity"], seed=0)
    before = params_of(net)
    held = threading.Event()

    def hold_the_lock_through_a_ctrl_c():
        with net._lock:
            held.set()
            # Once fit's handler is in place (a Ctrl-C before it would not be
            # fit's), while fit waits for the lock or is about to.
            while signal.getsignal(signal.SIGINT) is signal.default_int_handler:
                time.sleep(0.001)
            time.sleep(0.05)
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.2)

    holder = threading.Thread(target=hold_the_lock_through_a_ctrl_c)
    holder.start()
    held.wait()
    try:
        history = net.fit(X, X[:, :1].copy(), epochs=1, batch_size=8)
    finally:
        holder.join()
    assert history.stop_reason == "interrupted"
    assert_same(params_of(net), before)


def test_a_ctrl_c_as_fit_hands_a_chunk_to_the_engine_takes_no_step():
    """A Ctrl-C that Python handles after fit's last look and before the
    engine's own handler is in place (here: as the chunk's arguments are
    evaluated) stops the chunk before its first step; it ran the whole chunk."""
    X = np.random.default_rng(0).standard_normal((4000, 4))
    net = cbackprop.network.Network([4, 1], ["identity"], seed=0)
    before = params_of(net)
    with ctrl_c_at(cbackprop.network.Network._run_epoch, "= self._engine.train_batches("):
        history = net.fit(X, X[:, :1].copy(), epochs=1, batch_size=8)
    assert history.stop_reason == "interrupted"
    assert_same(params_of(net), before)
