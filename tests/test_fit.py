"""fit as a trainer: validation figures, early stopping, callbacks, the
progress display, Ctrl-C, argument checks; both implementations, both dtypes."""
import functools
import math
import os
import pickle
import signal
import threading

import numpy as np
import pytest

import cbackprop as cb
from cbackprop import _training
from cbackprop._progress import ProgressDisplay


def params_of(net):
    weights, biases = net.get_params()
    return weights + biases


def assert_params_equal(net, expected):
    for actual, wanted in zip(params_of(net), expected, strict=True):
        np.testing.assert_array_equal(actual, wanted)


def regression_problem(Net, dtype, seed=0, lr=0.1):
    rng = np.random.default_rng(seed)
    X, X_val = rng.standard_normal((40, 3)), rng.standard_normal((15, 3))
    W = rng.standard_normal((3, 2))
    Y, Y_val = np.tanh(X @ W), np.tanh(X_val @ W)
    net = Net([3, 5, 2], ["tanh", "identity"], optimizer=cb.SGD(lr=lr), dtype=dtype, seed=1)
    return net, X, Y, X_val, Y_val


CLASSIFICATION = ["labels", "one_hot", "bce"]


def classification_problem(Net, dtype, kind):
    rng = np.random.default_rng(3)
    X, X_val = rng.standard_normal((48, 4)), rng.standard_normal((20, 4))
    if kind == "bce":
        make_targets = lambda X: (X[:, :2] * X[:, 2:] > 0).astype(float)  # two binary outputs
        net = Net([4, 6, 2], ["relu", "sigmoid"], loss="bce", optimizer=cb.Adam(0.02),
                  dtype=dtype, seed=2)
    else:
        labels = lambda X: (X[:, 0] > 0).astype(int) + (X[:, 1] > 0.5).astype(int)
        make_targets = labels if kind == "labels" else (lambda X: np.eye(3)[labels(X)])
        net = Net([4, 6, 3], ["relu", "softmax"], loss="cross_entropy", optimizer=cb.Adam(0.02),
                  dtype=dtype, seed=2)
    return net, X, make_targets(X), X_val, make_targets(X_val)


def accuracy_by_hand(net, X, Y, kind):
    output = net.predict(X)
    if kind == "bce":
        return np.mean((output > 0.5) == (Y > 0.5))
    labels = Y if kind == "labels" else Y.argmax(axis=1)
    return np.mean(output.argmax(axis=1) == labels)


# -- the history and validation figures -------------------------------------------------
def test_plain_fit_history_is_just_the_loss(Net, dtype):
    net, X, Y, _, _ = regression_problem(Net, dtype)
    history = net.fit(X, Y, epochs=3, batch_size=8, seed=0)
    assert isinstance(history, dict) and isinstance(history, cb.History)
    assert list(history) == ["loss"] and len(history["loss"]) == 3
    assert history.monitor == "loss" and history.stop_reason == "completed"
    assert history.stopped_epoch is None and not history.interrupted
    assert history.best_epoch == int(np.argmin(history["loss"])) + 1   # numbered from 1
    again = pickle.loads(pickle.dumps(history))
    assert again == history and again.best_epoch == history.best_epoch


def test_fit_without_shuffling_is_a_train_step_loop(Net, dtype):
    net, X, Y, X_val, Y_val = regression_problem(Net, dtype)
    twin, *_ = regression_problem(Net, dtype)
    history = net.fit(X, Y, epochs=2, batch_size=16, shuffle=False,
                      validation_data=(X_val, Y_val), callbacks=[lambda *args: None])
    for epoch in range(2):
        losses = [twin.train_step(X[i:i + 16], Y[i:i + 16]) * len(X[i:i + 16])
                  for i in range(0, 40, 16)]
        assert history["loss"][epoch] == sum(losses) / 40
    assert_params_equal(net, params_of(twin))


def test_validation_and_display_do_not_change_training(Net, dtype, capsys):
    plain, X, Y, X_val, Y_val = regression_problem(Net, dtype)
    watched, *_ = regression_problem(Net, dtype)
    h_plain = plain.fit(X, Y, epochs=3, batch_size=7, seed=4)
    h_watched = watched.fit(X, Y, epochs=3, batch_size=7, seed=4, verbose=True,
                            validation_data=(X_val, Y_val))
    assert h_watched["loss"] == h_plain["loss"]
    assert_params_equal(watched, params_of(plain))


@pytest.mark.parametrize("kind", CLASSIFICATION + ["mse"])
def test_validation_figures_are_those_of_the_net_after_each_epoch(Net, dtype, kind):
    if kind == "mse":
        net, X, Y, X_val, Y_val = regression_problem(Net, dtype)
    else:
        net, X, Y, X_val, Y_val = classification_problem(Net, dtype, kind)
    seen = []

    def measure(net_in_fit, epoch, logs):
        assert net_in_fit is net
        figures = {"val_loss": net.loss(X_val, Y_val)}
        if kind != "mse":
            figures["val_accuracy"] = accuracy_by_hand(net, X_val, Y_val, kind)
        seen.append((epoch, logs, figures))

    history = net.fit(X, Y, epochs=4, batch_size=10, seed=0, validation_data=(X_val, Y_val),
                      callbacks=[measure])
    expected_keys = ["loss", "val_loss"] + ([] if kind == "mse" else ["val_accuracy"])
    assert list(history) == expected_keys and history.monitor == "val_loss"
    assert [epoch for epoch, _, _ in seen] == [0, 1, 2, 3]
    for epoch, logs, figures in seen:
        assert logs == {key: history[key][epoch] for key in expected_keys}
        for key, value in figures.items():
            assert history[key][epoch] == value
    if kind != "mse":
        assert len(set(history["val_accuracy"])) > 1   # it moves as the net learns
    assert all(type(v) is float for values in history.values() for v in values)


def test_accuracy_of_a_hand_set_softmax_net(Net, dtype):
    """Identity weights and lr 0: the prediction is the argmax of the input row."""
    net = Net([3, 3], ["softmax"], loss="cross_entropy", optimizer=cb.SGD(lr=0.0), dtype=dtype)
    net.set_params([np.eye(3)], [np.zeros(3)])
    X_val = np.array([[3.0, 0, 0], [0, 2, 1], [0, 1, 2], [1, 0, 0], [0, 0, 5]])
    labels = np.array([0, 1, 0, 0, 1])             # rows 2 and 4 are misclassified
    for Y_val in (labels, np.eye(3)[labels]):
        history = net.fit(X_val, labels, epochs=1, validation_data=(X_val, Y_val))
        assert history["val_accuracy"] == [3 / 5]


def test_accuracy_of_a_hand_set_sigmoid_net(Net, dtype):
    """sigmoid(x) > 0.5 exactly when x > 0; targets are thresholded at 0.5 too."""
    net = Net([1, 1], ["sigmoid"], loss="bce", optimizer=cb.SGD(lr=0.0), dtype=dtype)
    net.set_params([np.ones((1, 1))], [np.zeros(1)])
    X_val = np.array([[2.0], [-1.0], [0.5], [-3.0]])
    Y_val = np.array([0.9, 0.2, 0.3, 0.6])          # last two disagree with the sign of x
    history = net.fit(X_val, Y_val, epochs=1, validation_data=(X_val, Y_val))
    assert history["val_accuracy"] == [0.5]


def test_both_implementations_agree_on_validation_and_stopping(dtype):
    histories = []
    for Net in (cb.Network, cb.reference.Network):
        net, X, Y, X_val, Y_val = classification_problem(Net, dtype, "labels")
        histories.append(net.fit(X, Y, epochs=6, batch_size=8, seed=5, patience=2,
                                 validation_data=(X_val, Y_val)))
    compiled, reference = histories
    rtol = 1e-4 if dtype == "float32" else 1e-10
    for key in ("loss", "val_loss"):
        np.testing.assert_allclose(compiled[key], reference[key], rtol=rtol)
    assert compiled["val_accuracy"] == reference["val_accuracy"]
    assert (compiled.best_epoch, compiled.stopped_epoch) == (reference.best_epoch,
                                                             reference.stopped_epoch)


# -- early stopping on a planned sequence of figures ----------------------------------------
# A [1, 1] identity net trained with lr 0 never changes by itself. On X = 0 its
# training loss is b**2; on X = 1, (w + b)**2. A callback sets the parameters
# of the next epoch, so each epoch's figures follow a plan, and w identifies
# the epoch whose parameters the net holds.
PLANNED = [1.0, 0.9, 0.86, 0.7, 0.69, 0.68, 0.67, 0.66, 0.3]


def planned_parameters(loss, val_loss, epoch):
    b = math.sqrt(loss)
    w = math.sqrt(val_loss) - b if val_loss is not None else float(epoch + 1)
    return [np.array([[w]])], [np.array([b])]


def fit_to_plan(Net, dtype, monitor, plan=PLANNED, callbacks=(), **kwargs):
    """Train so that ``history[monitor]`` follows ``plan``; ``callbacks`` run
    before the one that sets the next epoch's parameters. Returns (history,
    net, parameters the net held at the end of each epoch)."""
    net = Net([1, 1], ["identity"], optimizer=cb.SGD(lr=0.0), dtype=dtype)
    if monitor == "val_loss":
        # The training loss keeps falling; only val_loss follows the plan.
        parameters = [planned_parameters(1.0 / (e + 1), v, e) for e, v in enumerate(plan)]
        kwargs["validation_data"] = (np.ones((3, 1)), np.zeros(3))
    else:
        parameters = [planned_parameters(v, None, e) for e, v in enumerate(plan)]
    held = []

    def follow_plan(net, epoch, logs):
        held.append(params_of(net))
        if epoch + 1 < len(plan):
            net.set_params(*parameters[epoch + 1])

    net.set_params(*parameters[0])
    history = net.fit(np.zeros((4, 1)), np.zeros(4), epochs=len(plan), batch_size=2,
                      callbacks=[*callbacks, follow_plan], **kwargs)
    np.testing.assert_allclose(history[monitor], plan[:len(history[monitor])], rtol=1e-5)
    return history, net, held


@pytest.mark.parametrize("monitor", ["loss", "val_loss"])
@pytest.mark.parametrize("patience, min_delta, best_epoch, stopped_epoch", [   # from 1
    (2, 0.0, 9, None),     # every epoch improves: no stop
    (2, 0.05, 4, 6),       # 0.69 and 0.68 are within 0.05 of 0.7
    (3, 0.05, 4, 7),
    (2, 0.2, 1, 3),        # 0.9 and 0.86 are within 0.2 of 1.0
])
def test_early_stopping_on_a_planned_sequence(Net, dtype, monitor, patience, min_delta,
                                              best_epoch, stopped_epoch):
    history, net, held = fit_to_plan(Net, dtype, monitor, patience=patience, min_delta=min_delta)
    assert history.monitor == monitor
    assert history.best_epoch == best_epoch
    assert history.stopped_epoch == stopped_epoch
    ran = len(PLANNED) if stopped_epoch is None else stopped_epoch
    assert len(history["loss"]) == len(held) == ran
    assert history.stop_reason == ("completed" if stopped_epoch is None else "early_stopping")
    assert_params_equal(net, held[best_epoch - 1])     # restored exactly


def test_without_restore_best_the_last_parameters_stay(Net, dtype):
    history, net, held = fit_to_plan(Net, dtype, "val_loss", patience=2, min_delta=0.05,
                                     restore_best=False)
    assert (history.best_epoch, history.stopped_epoch) == (4, 6)
    # What the planning callback set after the last epoch, for an epoch 6 never run.
    weights, biases = planned_parameters(1.0 / 7, PLANNED[6], 6)
    assert_params_equal(net, [p.astype(dtype) for p in weights + biases])


@pytest.mark.parametrize("monitor", ["loss", "val_loss"])
def test_best_parameters_are_restored_when_the_epochs_run_out(Net, dtype, monitor):
    history, net, held = fit_to_plan(Net, dtype, monitor, plan=[1.0, 0.5, 0.7, 0.8], patience=5)
    assert history.stop_reason == "completed" and history.best_epoch == 2
    assert_params_equal(net, held[1])


def test_without_patience_nothing_is_restored(Net, dtype):
    history, net, held = fit_to_plan(Net, dtype, "loss", plan=[1.0, 0.5, 0.7, 0.8])
    assert history.stop_reason == "completed" and history.best_epoch == 2
    assert_params_equal(net, held[3])
    history, net, held = fit_to_plan(Net, dtype, "val_loss", min_delta=0.8)
    assert history.best_epoch == 1            # no later epoch is 0.8 below 1.0
    assert_params_equal(net, held[-1])


def test_early_stopping_announces_itself(Net, capsys):
    history, _, _ = fit_to_plan(Net, "float64", "val_loss", patience=2, min_delta=0.05,
                                verbose=True)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 6 + 1 and lines[5].startswith("epoch 6/9: ")
    assert lines[-1] == ("early stopping: val_loss did not improve by more than 0.05 for "
                         "2 epoch(s); best epoch 4, its parameters restored")


def test_early_stopping_on_a_figure_never_finite(Net, capsys):
    """A validation loss that is inf every epoch never improves: patience
    ends the fit with no best epoch, and the note says so (verbose=True had
    raised a TypeError over the missing best epoch)."""
    rng = np.random.default_rng(0)
    net = Net([3, 4, 1], ["relu", "identity"], seed=0)
    history = net.fit(rng.normal(size=(20, 3)), np.zeros((20, 1)), epochs=10, patience=2,
                      validation_data=(np.full((4, 3), 1e200), np.zeros((4, 1))), verbose=True)
    assert history.stop_reason == "early_stopping" and history.stopped_epoch == 2
    assert history.best_epoch is None and history["val_loss"] == [math.inf, math.inf]
    assert capsys.readouterr().out.splitlines()[-1] == (
        "early stopping: val_loss did not improve for 2 epoch(s); no epoch's was finite")


# -- callbacks ------------------------------------------------------------------------------------
@pytest.mark.parametrize("how", ["return True", "raise StopTraining"])
def test_a_callback_can_stop_training(Net, dtype, how):
    net, X, Y, X_val, Y_val = regression_problem(Net, dtype)
    calls = []

    def stop_after_third(net, epoch, logs):
        calls.append(epoch)
        if epoch == 2:
            if how == "return True":
                return True
            raise cb.StopTraining

    later = []
    history = net.fit(X, Y, epochs=10, batch_size=8, seed=0, validation_data=(X_val, Y_val),
                      callbacks=[stop_after_third, lambda net, epoch, logs: later.append(epoch)])
    assert calls == [0, 1, 2] and len(history["loss"]) == len(history["val_loss"]) == 3
    assert history.stop_reason == "callback" and history.stopped_epoch == 3   # the third
    # Returning True lets the other callbacks of the epoch run; raising does not.
    assert later == ([0, 1, 2] if how == "return True" else [0, 1])


@pytest.mark.parametrize("answer", [None, False, 1, "stop", [True]])
def test_only_true_stops(Net, answer):
    net, X, Y, _, _ = regression_problem(Net, "float64")
    history = net.fit(X, Y, epochs=3, batch_size=8, callbacks=[lambda *args: answer])
    assert len(history["loss"]) == 3 and history.stop_reason == "completed"


def test_a_callback_returning_numpys_true_stops_training(Net):
    """A callback that returns a comparison of arrays' figures gets np.True_,
    which stops as True does."""
    net = Net([2, 1], ["identity"], seed=0)
    history = net.fit(np.ones((8, 2)), np.zeros((8, 1)), epochs=5,
                      callbacks=[lambda net, epoch, logs: np.bool_(True)])
    assert len(history["loss"]) == 1 and history.stop_reason == "callback"


def test_a_floating_point_error_from_a_callback_carries_the_history(Net):
    """Every FloatingPointError out of fit carries err.history (the contract),
    also one from a callback's own diverging train_step: it carried none."""
    net = Net([2, 1], ["identity"], seed=0)
    X, Y = np.ones((8, 2)), np.zeros((8, 1))

    def diverge(net, epoch, logs):
        if epoch == 1:
            net.train_step(X * 1e200, Y)

    with pytest.raises(FloatingPointError) as error:
        net.fit(X, Y, epochs=4, callbacks=[diverge])
    assert len(error.value.history["loss"]) == 2
    assert error.value.history.stop_reason == "diverged"


def test_an_inner_fits_divergence_keeps_its_own_history(Net):
    """A callback's fit that diverges raises with its own history, which its
    message counts; the outer fit used to put its own in its place."""
    net = Net([2, 1], ["identity"], seed=0)
    X, Y = np.ones((8, 2)), np.zeros((8, 1))

    def inner_fit_diverges(net, epoch, logs):
        if epoch == 2:
            net.fit(X * 1e200, Y, epochs=1)

    with pytest.raises(FloatingPointError) as error:
        net.fit(X, Y, epochs=4, callbacks=[inner_fit_diverges])
    assert len(error.value.history["loss"]) == 0
    assert "holds the 0 finished epochs" in str(error.value)


@pytest.mark.parametrize("x, y, expected", [(0.0, 1.0, 0.0), (0.0, 0.0, 1.0),
                                            (-1.0, 0.5, 1.0), (1.0, 0.5, 0.0)],
                         ids=["output 0.5, target 1", "output 0.5, target 0",
                              "target 0.5, output below", "target 0.5, output above"])
def test_bce_accuracy_at_exactly_one_half(Net, x, y, expected):
    """For bce, outputs and targets are class 1 above 0.5 (fit's docstring):
    an output or a target of exactly 0.5 is class 0."""
    net = Net([1, 1], ["sigmoid"], loss="bce", optimizer=cb.SGD(lr=0.0))
    net.set_params([np.ones((1, 1))], [np.zeros(1)])
    X, Y = np.array([[x]]), np.array([[y]])
    history = net.fit(X, Y, epochs=1, validation_data=(X, Y))
    assert history["val_accuracy"] == [expected]


def test_callbacks_get_a_copy_of_the_figures_and_can_change_the_net(Net, dtype):
    net, X, Y, _, _ = regression_problem(Net, dtype)
    rates = []

    def halve_lr(net, epoch, logs):
        rates.append(net.optimizer.lr)
        logs["loss"] = -1.0
        net.optimizer.lr = net.optimizer.lr / 2

    history = net.fit(X, Y, epochs=3, batch_size=8, callbacks=[halve_lr])
    assert rates == [0.1, 0.05, 0.025] and -1.0 not in history["loss"]


# -- the progress display -------------------------------------------------------------------
def test_not_verbose_writes_nothing(Net, capsys):
    net, X, Y, X_val, Y_val = regression_problem(Net, "float64")
    net.fit(X, Y, epochs=4, batch_size=8, validation_data=(X_val, Y_val), patience=1)
    assert capsys.readouterr() == ("", "")


def test_verbose_prints_one_line_per_epoch_to_a_pipe(Net, capsys):
    net, X, Y, X_val, Y_val = classification_problem(Net, "float64", "labels")
    history = net.fit(X, Y, epochs=10, batch_size=8, verbose=True, validation_data=(X_val, Y_val))
    out, err = capsys.readouterr()
    assert err == "" and "\r" not in out   # captured output is no terminal: no rewriting
    lines = out.splitlines()
    assert len(lines) == 10
    for epoch, line in enumerate(lines):
        assert line.startswith(f"epoch {epoch + 1:>2}/10: loss {history['loss'][epoch]:.6g} ")
        assert f"val_loss {history['val_loss'][epoch]:.6g} " in line
        assert f"val_accuracy {history['val_accuracy'][epoch]:.4f}" in line
        assert line.endswith("left]" if epoch < 9 else "in all]")


class FakeClock:
    """Advances by ``tick`` seconds at every reading."""

    def __init__(self, tick):
        self.now, self.tick = 0.0, tick

    def __call__(self):
        self.now += self.tick
        return self.now


def test_verbose_in_a_terminal_rewrites_a_line_per_epoch(Net, capsys, monkeypatch):
    monkeypatch.setattr(_training, "ProgressDisplay",
                        functools.partial(ProgressDisplay, live=True, clock=FakeClock(0.04)))
    net, X, Y, _, _ = regression_problem(Net, "float64")
    if isinstance(net, cb.Network):
        # The line is redrawn between compiled chunks, here of one step each
        # (their 0.05 s would hold a whole epoch of this size).
        monkeypatch.setattr(net, "_CHUNK_SECONDS", 0.0)
    history = net.fit(X, Y, epochs=2, batch_size=4, verbose=True)   # 10 batches an epoch
    out, _ = capsys.readouterr()
    lines = out.split("\n")
    assert len(lines) == 3 and lines[-1] == ""
    for epoch, line in enumerate(lines[:2]):
        prefix = f"epoch {epoch + 1}/2"
        *live, final = line.split("\r")
        assert final.startswith(f"{prefix}: loss {history['loss'][epoch]:.6g}")
        assert live[0] == "" and live[1].startswith(f"{prefix} [>") and " 0/10" in live[1]
        progress = [text for text in live[2:] if "loss" in text]
        assert 2 <= len(progress) <= 9        # throttled: not one redraw per batch
        for text in progress:
            assert text.startswith(f"{prefix} [=") and "/10  loss " in text and "left" in text


# -- Ctrl-C --------------------------------------------------------------------------------------
def interrupting_step(net, monkeypatch, at_call, how):
    """Make the ``at_call``-th training step of ``net.fit`` meet a Ctrl-C. The
    compiled Network runs fit's steps in compiled chunks: here one step per
    chunk, the Ctrl-C pressed while the chunk ran (a SIGINT in the chunk
    itself is tested by test_ctrl_c_inside_a_compiled_chunk)."""
    calls = []

    def around(run_step):
        calls.append(1)
        if len(calls) == at_call and how == "raise before the step":
            raise KeyboardInterrupt
        result = run_step()
        if len(calls) == at_call:   # Ctrl-C pressed while the step ran
            signal.raise_signal(signal.SIGINT)
            if how == "two signals":
                signal.raise_signal(signal.SIGINT)
        return result

    if isinstance(net, cb.reference.Network):
        real_step = net._checked_step
        monkeypatch.setattr(net, "_checked_step", lambda X, Y: around(lambda: real_step(X, Y)))
    else:
        monkeypatch.setattr(net, "_CHUNK_SECONDS", 0.0)
        monkeypatch.setattr(net, "_engine", EngineSpy(net._engine, around))


class EngineSpy:
    """An engine whose train_batches calls go through ``around(run_step)``."""

    def __init__(self, engine, around):
        self._engine, self._around = engine, around

    def train_batches(self, *args):
        return self._around(lambda: self._engine.train_batches(*args))

    def __getattr__(self, name):
        return getattr(self._engine, name)


@pytest.mark.parametrize("how, steps_taken", [("raise before the step", 5), ("signal", 6),
                                              ("two signals", 6)])
def test_ctrl_c_returns_the_history_with_the_last_completed_step(Net, dtype, monkeypatch, capsys,
                                                                 how, steps_taken):
    net, X, Y, X_val, Y_val = regression_problem(Net, dtype)
    twin, *_ = regression_problem(Net, dtype)
    interrupting_step(net, monkeypatch, at_call=6, how=how)   # 2nd batch of the 2nd epoch
    history = net.fit(X, Y, epochs=3, batch_size=8, shuffle=False, verbose=True, patience=1,
                      validation_data=(X_val, Y_val))
    assert history.interrupted and history.stop_reason == "interrupted"
    assert history.stopped_epoch is None
    assert len(history["loss"]) == len(history["val_loss"]) == 1
    for step in range(steps_taken):
        start = step % 5 * 8
        twin.train_step(X[start:start + 8], Y[start:start + 8])
    assert_params_equal(net, params_of(twin))
    assert "interrupted during epoch 2/3: 1 epoch(s) complete" in capsys.readouterr().out
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_ctrl_c_in_a_callback_keeps_the_epoch_and_restores_nothing(Net, dtype):
    at_interrupt = []

    def interrupt_at_third(net, epoch, logs):
        if epoch == 2:
            at_interrupt.extend(params_of(net))
            raise KeyboardInterrupt

    history, net, _ = fit_to_plan(Net, dtype, "loss", plan=[0.5, 1.0, 2.0, 3.0], patience=3,
                                  callbacks=[interrupt_at_third])
    assert history.interrupted and len(history["loss"]) == 3 and history.best_epoch == 1
    assert_params_equal(net, at_interrupt)


def send_ctrl_c_after(at_epoch):
    """A callback that presses Ctrl-C (a real SIGINT) after epoch ``at_epoch``."""
    def callback(net, epoch, logs):
        if epoch == at_epoch:
            os.kill(os.getpid(), signal.SIGINT)
    return callback


@pytest.mark.parametrize("at_epoch", [1, 2], ids=["middle epoch", "last epoch"])
def test_ctrl_c_between_steps_takes_no_further_step(Net, dtype, at_epoch):
    """A SIGINT between two steps (here from a callback) stops fit before the
    next step, also in the last epoch: interrupted, nothing restored."""
    net, X, Y, X_val, Y_val = regression_problem(Net, dtype)
    twin, *_ = regression_problem(Net, dtype)
    history = net.fit(X, Y, epochs=3, batch_size=8, seed=7, patience=5,
                      validation_data=(X_val, Y_val), callbacks=[send_ctrl_c_after(at_epoch)])
    assert history.interrupted and history.stop_reason == "interrupted"
    assert len(history["loss"]) == len(history["val_loss"]) == at_epoch + 1
    shuffle = np.random.default_rng(7)
    for epoch in range(at_epoch + 1):
        order = shuffle.permutation(len(X))
        for start in range(0, len(X), 8):
            twin.train_step(X[order][start:start + 8], Y[order][start:start + 8])
    assert_params_equal(net, params_of(twin))
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_ctrl_c_stops_a_fit_run_by_another_fits_callback_and_then_that_one(Net, dtype):
    """The inner fit finds the outer one's handler installed: it leaves it,
    honours its request (it had trained on through every epoch), and the
    outer fit stops after the callback."""
    net, X, Y, X_val, Y_val = regression_problem(Net, dtype)
    inner, *_ = regression_problem(Net, dtype, seed=1)
    inner_twin, *_ = regression_problem(Net, dtype, seed=1)
    inner_histories = []

    def train_inner(net, epoch, logs):
        inner_histories.append(inner.fit(X, Y, epochs=50, batch_size=8, seed=3,
                                         callbacks=[send_ctrl_c_after(1)]))

    history = net.fit(X, Y, epochs=3, batch_size=8, seed=7, callbacks=[train_inner])
    assert history.interrupted and len(history["loss"]) == 1
    assert len(inner_histories) == 1 and inner_histories[0].interrupted
    assert len(inner_histories[0]["loss"]) == 2
    inner_twin.fit(X, Y, epochs=2, batch_size=8, seed=3)
    assert_params_equal(inner, params_of(inner_twin))
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_ctrl_c_during_validation_keeps_the_epoch_and_skips_the_callbacks(Net, dtype,
                                                                           monkeypatch):
    net, X, Y, X_val, Y_val = regression_problem(Net, dtype)
    twin, *_ = regression_problem(Net, dtype)
    real_loss_value = net._loss_value

    def loss_value(X, Y):
        if X.shape[0] == len(X_val):   # the validation set, not a training batch
            os.kill(os.getpid(), signal.SIGINT)
        return real_loss_value(X, Y)

    monkeypatch.setattr(net, "_loss_value", loss_value)
    called = []
    history = net.fit(X, Y, epochs=3, batch_size=8, shuffle=False,
                      validation_data=(X_val, Y_val), callbacks=[lambda *args: called.append(1)])
    assert history.interrupted and len(history["loss"]) == len(history["val_loss"]) == 1
    assert called == []
    for start in range(0, len(X), 8):
        twin.train_step(X[start:start + 8], Y[start:start + 8])
    assert_params_equal(net, params_of(twin))


def test_ctrl_c_in_the_last_epoch_restores_nothing(Net, dtype):
    history, net, held = fit_to_plan(Net, dtype, "loss", plan=[0.5, 1.0, 2.0], patience=3,
                                     callbacks=[send_ctrl_c_after(2)])
    assert history.interrupted and len(history["loss"]) == 3 and history.best_epoch == 1
    assert_params_equal(net, held[2])


def test_fit_runs_outside_the_main_thread(Net):
    """Only the main thread may install signal handlers: elsewhere fit leaves them alone."""
    net, X, Y, X_val, Y_val = regression_problem(Net, "float64")
    histories = []
    worker = threading.Thread(target=lambda: histories.append(
        net.fit(X, Y, epochs=2, validation_data=(X_val, Y_val), patience=1)))
    worker.start()
    worker.join()
    assert len(histories) == 1 and len(histories[0]["val_loss"]) >= 1


def test_other_errors_still_propagate(Net):
    net, X, Y, _, _ = regression_problem(Net, "float64")

    def broken(net, epoch, logs):
        raise RuntimeError("callback bug")

    with pytest.raises(RuntimeError, match="callback bug"):
        net.fit(X, Y, epochs=2, callbacks=[broken])
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


# -- argument checks ------------------------------------------------------------------------------
X_GOOD, Y_GOOD = np.zeros((6, 3)), np.zeros((6, 2))
BAD_ARGUMENTS = [
    (dict(validation_data=X_GOOD), ValueError, "pair"),
    (dict(validation_data=(X_GOOD,)), ValueError, "pair"),
    (dict(validation_data=(X_GOOD, Y_GOOD, Y_GOOD)), ValueError, "pair"),
    (dict(validation_data=(np.zeros((6, 4)), Y_GOOD)), ValueError, "validation_data.*shape"),
    (dict(validation_data=(X_GOOD, np.zeros((5, 2)))), ValueError, "validation_data.*shape"),
    (dict(validation_data=(np.zeros((0, 3)), np.zeros((0, 2)))), ValueError,
     "validation_data.*empty"),
    (dict(validation_data=(X_GOOD, np.full((6, 2), np.nan))), ValueError, "validation_data.*NaN"),
    (dict(validation_data=(X_GOOD.astype(str), Y_GOOD)), TypeError, "validation_data"),
    (dict(patience=0), ValueError, "patience"),
    (dict(patience=-2), ValueError, "patience"),
    (dict(patience=2.0), TypeError, "patience"),
    (dict(patience=True), TypeError, "patience"),
    (dict(min_delta=-0.1), ValueError, "min_delta"),
    (dict(min_delta=float("nan")), ValueError, "min_delta"),
    (dict(min_delta=float("inf")), ValueError, "min_delta"),
    (dict(min_delta="0.1"), TypeError, "min_delta"),
    (dict(min_delta=10**400), ValueError, "min_delta"),
    (dict(restore_best="yes"), TypeError, "restore_best"),
    (dict(restore_best=None), TypeError, "restore_best"),
    (dict(restore_best=2), TypeError, "restore_best"),
    (dict(shuffle="no"), TypeError, "shuffle"),
    (dict(shuffle=-1), TypeError, "shuffle"),
    (dict(shuffle=0.0), TypeError, "shuffle"),
    (dict(shuffle=None), TypeError, "shuffle"),
    (dict(callbacks=print), TypeError, "list"),
    (dict(callbacks=7), TypeError, "callbacks"),
    (dict(callbacks=[print, "not callable"]), TypeError, "callable"),
]


@pytest.mark.parametrize("verbose", ["yes", 2, None])
def test_verbose_must_be_a_bool(Net, verbose, capsys):
    net, X, Y, _, _ = regression_problem(Net, "float64")
    before = params_of(net)
    with pytest.raises(TypeError, match="verbose"):
        net.fit(X, Y, epochs=2, verbose=verbose)
    assert_params_equal(net, before)
    assert capsys.readouterr().out == ""


def test_zero_and_one_are_bools(Net, capsys):
    """verbose=0 (Keras' and scikit-learn's spelling) and shuffle=1 mean the bools."""
    net, X, Y, X_val, Y_val = regression_problem(Net, "float64")
    twin, *_ = regression_problem(Net, "float64")
    history = net.fit(X, Y, epochs=2, shuffle=1, verbose=0, restore_best=np.int64(1),
                      patience=1, validation_data=(X_val, Y_val), seed=3)
    assert capsys.readouterr().out == ""
    twin_history = twin.fit(X, Y, epochs=2, shuffle=True, verbose=False, restore_best=True,
                            patience=1, validation_data=(X_val, Y_val), seed=3)
    assert history == twin_history
    assert_params_equal(net, params_of(twin))
    net.fit(X, Y, epochs=1, verbose=1)
    assert "epoch" in capsys.readouterr().out.lower()


def test_numpy_bools_are_bools(Net):
    net, X, Y, X_val, Y_val = regression_problem(Net, "float64")
    twin, *_ = regression_problem(Net, "float64")
    history = net.fit(X, Y, epochs=2, shuffle=np.False_, verbose=np.False_,
                      restore_best=np.True_, patience=1, validation_data=(X_val, Y_val))
    twin_history = twin.fit(X, Y, epochs=2, shuffle=False, verbose=False,
                            restore_best=True, patience=1, validation_data=(X_val, Y_val))
    assert history == twin_history
    assert_params_equal(net, params_of(twin))


@pytest.mark.parametrize("kwargs, error, match", BAD_ARGUMENTS,
                         ids=[str(case[0])[:60] for case in BAD_ARGUMENTS])
def test_bad_arguments_are_refused_before_training(Net, kwargs, error, match, capsys):
    net, X, Y, _, _ = regression_problem(Net, "float64")
    before = params_of(net)
    with pytest.raises(error, match=match):
        net.fit(X, Y, epochs=2, verbose=True, **kwargs)
    assert_params_equal(net, before)
    assert capsys.readouterr().out == ""


def test_new_arguments_are_keyword_only(Net):
    net, X, Y, X_val, Y_val = regression_problem(Net, "float64")
    with pytest.raises(TypeError):
        net.fit(X, Y, 1, 8, True, None, False, (X_val, Y_val))


@pytest.mark.parametrize("written", [2**40, -5], ids=["huge", "negative"])
def test_labels_a_callback_overwrites_do_not_reach_the_training(Net, written):
    """fit trains on its own copy of the labels it checked (training and
    validation): labels index memory, and the compiled kernels had read the
    overwritten ones (2**40 crashed the interpreter, -5 gave a loss of -2e232)."""
    rng = np.random.default_rng(3)
    X, X_val = rng.normal(size=(64, 4)), rng.normal(size=(16, 4))
    histories, finals = [], []
    for overwrite in (False, True):
        labels, val_labels = np.arange(64) % 3, np.arange(16) % 3
        net = Net([4, 8, 3], ["tanh", "softmax"], loss="cross_entropy", seed=0)

        def relabel(net, epoch, logs):
            if overwrite:
                labels[:] = written
                val_labels[:] = written

        history = net.fit(X, labels, epochs=3, batch_size=16, seed=1, callbacks=[relabel],
                          validation_data=(X_val, val_labels))
        histories.append(dict(history))
        finals.append(params_of(net))
    assert histories[0] == histories[1]
    for a, b in zip(*finals, strict=True):
        np.testing.assert_array_equal(a, b)


def test_the_cross_entropy_kernel_keeps_a_label_it_is_handed_in_range():
    """Below the boundary's check (which a thread writing the labels could
    outrun), a label out of range makes the loss NaN instead of indexing
    outside the row."""
    net = cb.Network([4, 8, 3], ["tanh", "softmax"], loss="cross_entropy", seed=0)
    X = np.random.default_rng(0).normal(size=(4, 4))
    good = net._engine.loss(X, np.array([0, 1, 2, 1], dtype=np.int64), net._loss)
    assert math.isfinite(good)
    for bad in (3, -1, 2**40, -(2**62)):
        assert math.isnan(net._engine.loss(X, np.array([0, 1, bad, 1], dtype=np.int64), net._loss))


def test_two_fits_continue_as_one(Net, dtype):
    """The optimizer's state (here Adam's moments and step count) carries
    over from one fit to the next, as fit's docstring says."""
    net, X, Y, *_ = regression_problem(Net, dtype)
    whole, *_ = regression_problem(Net, dtype)
    for one in (net, whole):
        one.optimizer = cb.Adam(lr=0.01)
    first = net.fit(X, Y, epochs=2, batch_size=8, shuffle=False)
    second = net.fit(X, Y, epochs=2, batch_size=8, shuffle=False)
    assert first["loss"] + second["loss"] == whole.fit(X, Y, epochs=4, batch_size=8,
                                                       shuffle=False)["loss"]
    assert_params_equal(net, params_of(whole))
