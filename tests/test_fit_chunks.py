"""The compiled Network's fit runs each epoch's steps in compiled chunks
(Engine.train_batches): the same steps as a Python loop of train_step over
the same permutations, to the bit, for every activation, loss, optimizer and
clipping, in both dtypes, however the epoch is cut into chunks; and a
Ctrl-C that lands inside a chunk stops it after the running step."""
import copy
import os
import signal
import threading
import time

import numpy as np
import pytest

import cbackprop as cb
from registry_cases import HIDDEN, optimizer_instances


def params_of(net):
    weights, biases = net.get_params()
    return weights + biases


def train_step_loop(net, X, Y, epochs, batch_size, seed):
    """fit's epochs as a Python loop of train_step: the per-epoch mean losses."""
    rng = np.random.default_rng(seed)
    means = []
    for _ in range(epochs):
        order = rng.permutation(len(X))
        X_epoch, Y_epoch = X[order], Y[order]
        total = 0.0
        for start in range(0, len(X), batch_size):
            stop = min(start + batch_size, len(X))
            total += net.train_step(X_epoch[start:stop], Y_epoch[start:stop]) * (stop - start)
        means.append(total / len(X))
    return means


def problem(loss, dtype, rng):
    X = rng.standard_normal((23, 4)).astype(dtype)
    if loss == "mse":
        return X, np.tanh(X[:, :2] + X[:, 2:]).astype(dtype), "identity", 2
    if loss == "bce":
        return X, (X[:, :2] > 0).astype(dtype), "sigmoid", 2
    labels = (X[:, 0] > 0).astype(np.int64) + (X[:, 1] > 0.5)
    return X, labels, "softmax", 3


OPTIMIZERS = optimizer_instances() + [cb.Adam(lr=0.01, clip_norm=0.5),
                                      cb.SGD(lr=0.05, momentum=0.9, clip_value=0.01)]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("chunk_seconds", [0.0, 10.0], ids=["a step per chunk", "an epoch per chunk"])
@pytest.mark.parametrize("hidden", HIDDEN)
@pytest.mark.parametrize("loss", ["mse", "bce", "cross_entropy"])
def test_chunks_take_the_steps_of_a_train_step_loop(loss, hidden, chunk_seconds, dtype,
                                                    monkeypatch):
    rng = np.random.default_rng(len(hidden) + len(loss))
    X, Y, output, n_out = problem(loss, dtype, rng)
    for optimizer in OPTIMIZERS:
        nets = [cb.Network([4, 5, n_out], [hidden, output], loss=loss,
                           optimizer=copy.deepcopy(optimizer), dtype=dtype, seed=1)
                for _ in range(2)]
        monkeypatch.setattr(nets[0], "_CHUNK_SECONDS", chunk_seconds)
        history = nets[0].fit(X, Y, epochs=3, batch_size=5, seed=11)
        means = train_step_loop(nets[1], X, Y, 3, 5, seed=11)
        assert history["loss"] == means, optimizer
        for ours, theirs in zip(params_of(nets[0]), params_of(nets[1]), strict=True):
            np.testing.assert_array_equal(ours, theirs, err_msg=repr(optimizer))
        for ours, theirs in zip(nets[0]._optimizer_state(), nets[1]._optimizer_state()):
            np.testing.assert_array_equal(ours, theirs)


def test_ctrl_c_inside_a_compiled_chunk_stops_it_after_the_running_step(monkeypatch):
    """A real SIGINT from another thread while one long chunk runs (an epoch
    of 2,000,000 single-row steps, about 1-2.5 s): fit returns interrupted,
    having taken a whole number of steps, the same as that many train_step
    calls, and fit's handler is gone. On a loaded machine the signalling
    thread may wake only after fit has ended, and the signal then lands in
    the join: that attempt says nothing about fit, and is made again."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((2_000_000, 2))
    Y = np.tanh(X[:, :1] - X[:, 1:])
    for _ in range(3):
        net = cb.Network([2, 2, 1], ["tanh", "identity"], optimizer=cb.SGD(lr=0.01), seed=0)
        monkeypatch.setattr(net, "_CHUNK_SECONDS", 60.0)
        timer = threading.Timer(0.05, os.kill, (os.getpid(), signal.SIGINT))
        timer.start()
        started = time.perf_counter()
        history = net.fit(X, Y, epochs=1, batch_size=1, shuffle=False)
        try:
            elapsed = time.perf_counter() - started
            timer.join()
        except KeyboardInterrupt:
            continue
        break
    else:
        pytest.fail("in three attempts the SIGINT never landed while fit ran")
    twin = cb.Network([2, 2, 1], ["tanh", "identity"], optimizer=cb.SGD(lr=0.01), seed=0)
    assert history.interrupted and history["loss"] == []
    steps = net._engine.step_count
    assert 0 <= steps < len(X), steps
    for row in range(steps):
        twin.train_step(X[row:row + 1], Y[row:row + 1])
    for ours, theirs in zip(params_of(net), params_of(twin), strict=True):
        np.testing.assert_array_equal(ours, theirs)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    assert elapsed < 30, "the chunk did not stop at the Ctrl-C"


@pytest.mark.parametrize("failing_batch", [3, 4], ids=["after an even count", "after an odd count"])
@pytest.mark.parametrize("optimizer", [cb.SGD(lr=0.05, momentum=0.9), cb.Adam(lr=0.01),
                                       cb.RMSprop(lr=0.01, momentum=0.5)],
                         ids=["momentum", "adam", "rmsprop"])
def test_a_step_refused_inside_a_chunk_leaves_the_steps_before_it(optimizer, failing_batch,
                                                                   monkeypatch):
    """A batch whose loss overflows (a target of 1e200) ends the chunk: fit
    raises, naming the batch, with parameters and optimizer state as after
    the steps before it (the buffers swapped an odd or even number of
    times), as a train_step loop leaves them."""
    rng = np.random.default_rng(2)
    X = rng.standard_normal((20, 3))
    Y = rng.standard_normal((20, 2))
    Y[(failing_batch - 1) * 4] = 1e200
    nets = [cb.Network([3, 4, 2], ["tanh", "identity"], optimizer=copy.deepcopy(optimizer),
                       seed=0) for _ in range(2)]
    monkeypatch.setattr(nets[0], "_CHUNK_SECONDS", 60.0)
    with pytest.raises(FloatingPointError, match=f"batch {failing_batch} of 5"):
        nets[0].fit(X, Y, epochs=1, batch_size=4, shuffle=False)
    for start in range(0, (failing_batch - 1) * 4, 4):
        nets[1].train_step(X[start:start + 4], Y[start:start + 4])
    with pytest.raises(FloatingPointError):
        nets[1].train_step(X[start + 4:start + 8], Y[start + 4:start + 8])
    assert nets[0]._engine.step_count == nets[1]._engine.step_count == failing_batch - 1
    for ours, theirs in zip(params_of(nets[0]), params_of(nets[1]), strict=True):
        np.testing.assert_array_equal(ours, theirs)
    for ours, theirs in zip(nets[0]._optimizer_state(), nets[1]._optimizer_state()):
        np.testing.assert_array_equal(ours, theirs)
    # and training goes on from there, in step
    for net in nets:
        net.train_step(X[:4], Y[:4])
    for ours, theirs in zip(params_of(nets[0]), params_of(nets[1]), strict=True):
        np.testing.assert_array_equal(ours, theirs)


@pytest.mark.parametrize("shuffle", [True, False])
@pytest.mark.parametrize("batch_size", [10**12, 2**70])
def test_a_batch_size_beyond_the_rows_is_one_batch_of_them(batch_size, shuffle):
    """A batch_size far beyond the sample count trains on one batch of every
    row, as batch_size = m does, bit for bit. The buffer a shuffled epoch
    gathers its batches into was sized by the request (MemoryError for
    10**12, OverflowError for a batch_size beyond a C integer)."""
    rng = np.random.default_rng(5)
    X, Y = rng.standard_normal((8, 3)), rng.standard_normal((8, 2))
    nets = [cb.Network([3, 4, 2], ["tanh", "identity"], seed=1) for _ in range(2)]
    losses = [net.fit(X, Y, epochs=2, batch_size=size, shuffle=shuffle, seed=3)["loss"]
              for net, size in zip(nets, (batch_size, X.shape[0]))]
    assert losses[0] == losses[1] and len(losses[0]) == 2
    for got, want in zip(params_of(nets[0]), params_of(nets[1])):
        np.testing.assert_array_equal(got, want)


def test_engine_hooks_refuse_what_they_cannot_take():
    net = cb.Network([2, 2, 1], ["tanh", "identity"], optimizer=cb.Adam(lr=0.01), seed=0)
    engine = net._engine
    engine.apply_update(net.optimizer)   # before any pass: no workspace yet, and no crash
    assert engine.step_count == 1
    X, Y = np.ones((4, 2)), np.ones((4, 1))
    for order, batch in [(np.arange(4, dtype=np.int32), 2), (np.arange(3), 2), (None, 0),
                         (np.arange(4), 5)]:
        with pytest.raises(ValueError):
            engine.train_batches(X, Y, order, 0, batch, 0.0, net.loss_function, net.optimizer,
                                 1.0, None)


def test_a_float32_momentum_that_rounds_to_zero_still_keeps_velocities():
    """momentum 1e-46 is 0 in float32: the velocity is the gradient, as in the
    reference, and stays so step after step (the spare buffer is written)."""
    rng = np.random.default_rng(3)
    X, Y = rng.standard_normal((6, 3)).astype("float32"), rng.standard_normal((6, 2)).astype("float32")
    nets = [Net([3, 4, 2], ["tanh", "identity"], optimizer=cb.SGD(lr=0.05, momentum=1e-46),
                dtype="float32", seed=0) for Net in (cb.Network, cb.reference.Network)]
    for _ in range(3):
        for net in nets:
            net.train_step(X, Y)
    _, gradients = nets[0].loss_and_gradients(X, Y)
    for net in nets:
        net.train_step(X, Y)
    velocities = nets[0]._optimizer_state()[0]
    np.testing.assert_array_equal(
        velocities, np.concatenate([part.ravel() for pair in gradients for part in pair]))
    for ours, theirs in zip(params_of(nets[0]), params_of(nets[1]), strict=True):
        np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6)
