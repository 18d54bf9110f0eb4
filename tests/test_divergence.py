"""A diverging train_step (finite inputs, non-finite loss) raises
FloatingPointError and changes nothing: not the parameters, not the optimizer
state (momentum velocities, Adam moments, Adam's step count). A network that
survived a failed step then trains exactly like a twin that never saw it.

In fit, the error also says where training stopped (epoch and batch, from 1)
and carries the history of the finished epochs as ``err.history``."""
import warnings

import numpy as np
import pytest

import cbackprop as cb

IMPLEMENTATIONS = {"compiled": cb.Network, "reference": cb.reference.Network}

OPTIMIZERS = {
    "adam": lambda: cb.Adam(lr=1e-2),
    "adam-decay": lambda: cb.Adam(lr=5e-3, beta1=0.8, beta2=0.99, eps=1e-6, weight_decay=1e-3),
    "rmsprop": lambda: cb.RMSprop(lr=1e-3),
    "rmsprop-momentum-decay": lambda: cb.RMSprop(lr=1e-3, momentum=0.5, weight_decay=1e-3),
    "sgd-momentum": lambda: cb.SGD(lr=0.01, momentum=0.9),
    "sgd-nesterov": lambda: cb.SGD(lr=0.01, momentum=0.9, nesterov=True, weight_decay=1e-3),
}

# head -> (output activation, loss)
HEADS = {
    "mse": ("identity", "mse"),
    "bce": ("sigmoid", "bce"),
    "cross_entropy": ("softmax", "cross_entropy"),
}

SIZES = [4, 8, 3]


def build(Net, dtype, optimizer, head):
    output, loss = HEADS[head]
    net = Net(SIZES, ["leaky_relu", output], loss=loss, optimizer=OPTIMIZERS[optimizer](),
              dtype=dtype, seed=21)
    # First-layer weights near 1, so that a batch of huge (finite) inputs
    # overflows the first pre-activation for sure, even after some training.
    weights, biases = net.get_params()
    rng = np.random.default_rng(0)
    weights[0] = 1.0 + 0.1 * rng.uniform(-1, 1, size=weights[0].shape)
    net.set_params(weights, biases)
    return net


def good_batches(head, count=12, m=10):
    rng = np.random.default_rng(1)
    k = SIZES[-1]
    batches = []
    for _ in range(count):
        X = rng.standard_normal((m, SIZES[0]))
        if head == "mse":
            Y = rng.standard_normal((m, k))
        elif head == "bce":
            Y = rng.uniform(0, 1, size=(m, k))
        else:
            Y = rng.integers(0, k, size=m)
        batches.append((X, Y))
    return batches


def bad_batch(cause, head, dtype, m=10):
    """A batch of finite numbers on which the loss is not finite."""
    X, Y = good_batches(head, count=1, m=m)[0]
    if cause == "huge-inputs":
        # Every first-layer pre-activation is ~ 4 * (max/2) * 1: +inf.
        return np.full_like(X, np.finfo(dtype).max / 2), Y
    assert cause == "huge-targets" and head == "mse" and dtype == "float64"
    return X, np.full_like(Y, 1e200)  # (A - 1e200)**2 overflows to inf


def snapshot(net):
    return [p.copy() for p in sum(net.get_params(), [])]


def assert_params_equal(net, params):
    now = snapshot(net)
    assert len(now) == len(params)
    for i, (a, b) in enumerate(zip(now, params)):
        assert a.dtype == b.dtype and a.shape == b.shape
        assert np.array_equal(a, b), f"parameter {i} changed"


CASES = [
    ("huge-targets", "mse", "float64"),
    ("huge-inputs", "mse", "float64"),
    ("huge-inputs", "mse", "float32"),
    ("huge-inputs", "bce", "float64"),
    ("huge-inputs", "bce", "float32"),
    ("huge-inputs", "cross_entropy", "float64"),
    ("huge-inputs", "cross_entropy", "float32"),
]


@pytest.mark.parametrize("impl", sorted(IMPLEMENTATIONS))
@pytest.mark.parametrize("optimizer", sorted(OPTIMIZERS))
@pytest.mark.parametrize("cause, head, dtype", CASES, ids=["-".join(c) for c in CASES])
@pytest.mark.parametrize("good_before", [0, 4])
def test_failed_step_changes_nothing(impl, optimizer, cause, head, dtype, good_before):
    Net = IMPLEMENTATIONS[impl]
    net = build(Net, dtype, optimizer, head)
    twin = build(Net, dtype, optimizer, head)
    batches = good_batches(head)
    for X, Y in batches[:good_before]:
        assert net.train_step(X, Y) == twin.train_step(X, Y)

    before = snapshot(net)
    X_bad, Y_bad = bad_batch(cause, head, dtype)
    assert np.isfinite(X_bad).all() and np.isfinite(np.asarray(Y_bad, dtype=np.float64)).all()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no RuntimeWarning (nor any other) from the failing call
        for _ in range(2):  # failing twice in a row changes nothing either
            with pytest.raises(FloatingPointError):
                net.train_step(X_bad, Y_bad)
            assert_params_equal(net, before)
    assert_params_equal(net, before)

    # The optimizer state is untouched too: every later step matches the twin's.
    for step, (X, Y) in enumerate(batches[good_before:]):
        loss, twin_loss = net.train_step(X, Y), twin.train_step(X, Y)
        assert np.isfinite(loss)
        assert loss == twin_loss, f"step {step} after the failure"
    for a, b in zip(snapshot(net), snapshot(twin)):
        assert np.array_equal(a, b)


@pytest.mark.parametrize("impl", sorted(IMPLEMENTATIONS))
def test_failed_step_inside_engine_form_batch(impl):
    """The compiled net's fast path (C-contiguous arrays of its dtype) fails the
    same way as the converting path: same exception, nothing changed."""
    Net = IMPLEMENTATIONS[impl]
    net = build(Net, "float32", "adam", "mse")
    twin = build(Net, "float32", "adam", "mse")
    batches = [(X.astype(np.float32), Y.astype(np.float32)) for X, Y in good_batches("mse")]
    X_bad, Y_bad = bad_batch("huge-inputs", "mse", "float32")
    X_bad, Y_bad = X_bad.astype(np.float32), Y_bad.astype(np.float32)
    for X, Y in batches[:3]:
        net.train_step(X, Y)
        twin.train_step(X, Y)
    before = snapshot(net)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(FloatingPointError):
            net.train_step(X_bad, Y_bad)
    assert_params_equal(net, before)
    for X, Y in batches[3:]:
        assert net.train_step(X, Y) == twin.train_step(X, Y)
    for a, b in zip(snapshot(net), snapshot(twin)):
        assert np.array_equal(a, b)


@pytest.mark.parametrize("impl", sorted(IMPLEMENTATIONS))
@pytest.mark.parametrize("optimizer", sorted(OPTIMIZERS))
def test_failed_step_in_fit(impl, optimizer):
    """fit stops with FloatingPointError at the diverging minibatch; the steps
    before it were taken, the failing one changed nothing."""
    Net = IMPLEMENTATIONS[impl]
    net = build(Net, "float64", optimizer, "mse")
    twin = build(Net, "float64", optimizer, "mse")
    X, Y = good_batches("mse", count=1, m=30)[0]
    Y = Y.copy()
    Y[20:] = 1e200  # the third minibatch of 10 (no shuffling) diverges
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(FloatingPointError) as excinfo:
            net.fit(X, Y, epochs=1, batch_size=10, shuffle=False)
    # train_step's message first, then where fit stopped; no epoch had finished.
    message = str(excinfo.value)
    assert message.startswith("the loss is inf on this batch (training diverged); "
                              "parameters were not updated")
    assert "at epoch 1, batch 3 of 3" in message
    history = excinfo.value.history
    assert isinstance(history, cb.History) and history == {"loss": []}
    assert history.stop_reason == "diverged" and history.best_epoch is None
    twin.train_step(X[:10], Y[:10])
    twin.train_step(X[10:20], Y[10:20])
    for a, b in zip(snapshot(net), snapshot(twin)):
        assert np.array_equal(a, b)
    for X_good, Y_good in good_batches("mse", count=3):
        assert net.train_step(X_good, Y_good) == twin.train_step(X_good, Y_good)


@pytest.mark.parametrize("impl", sorted(IMPLEMENTATIONS))
def test_float32_step_whose_update_overflows(impl):
    """A float32 step whose gradient overflows float32 is a diverging step too:
    it must either raise FloatingPointError with nothing changed, or leave
    finite parameters. (Here the sum-reduced squared error of targets near the
    float32 maximum is ~2e78: finite only because the loss is accumulated in
    double, while the gradient 2 * (A - Y) ~ -6e38 is -inf in float32.)"""
    Net = IMPLEMENTATIONS[impl]
    net = Net([4, 3], ["identity"], loss=cb.MSE(reduction="sum"), optimizer=cb.SGD(lr=0.01),
              dtype="float32", seed=0)
    X = np.ones((8, 4), dtype=np.float32)
    Y = np.full((8, 3), 3e38, dtype=np.float32)  # finite float32 targets
    before = snapshot(net)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            loss = net.train_step(X, Y)
        except FloatingPointError:
            assert_params_equal(net, before)
            return
    params = snapshot(net)
    assert all(np.isfinite(p).all() for p in params), (
        f"train_step returned the finite loss {loss:.3g} but left non-finite parameters")


@pytest.mark.parametrize("impl", sorted(IMPLEMENTATIONS))
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("n_in", [8, 9])
@pytest.mark.parametrize("optimizer", ["adam", "adam-decay", "rmsprop"])
def test_a_second_moment_that_overflows_alone_is_refused(impl, dtype, n_in, optimizer):
    """One weight's gradient is finite but its square is not: its new second
    moment overflows while its new parameter (p - lr m / (sqrt(inf) + eps) =
    p) and first moment stay finite. The step must be refused all the same,
    with nothing changed, and then train as its twin. The weight is each one
    of the 24 or 27 in turn (row-major, the update's index column * 3 +
    output): every lane of the whole vectors of every build, and of a tail
    (27 leaves one in vectors of 2, 4, 8 and 16 lanes; 24 in 16)."""
    Net = IMPLEMENTATIONS[impl]
    big_input, big_target = (1e6, 1e16) if dtype == "float32" else (1e10, 1e150)
    for column in range(n_in):
        for output in range(3):
            net, twin = (Net([n_in, 3], ["identity"], loss="mse",
                             optimizer=OPTIMIZERS[optimizer](), dtype=dtype, seed=3)
                         for _ in range(2))
            X = np.ones((4, n_in), dtype=dtype)
            X[:, column] = big_input          # its weights' gradients ~big_input big_target
            Y = np.zeros((4, 3), dtype=dtype)
            Y[:, output] = big_target         # every other gradient's square finite
            before = snapshot(net)
            with pytest.raises(FloatingPointError):
                net.train_step(X, Y)
            assert_params_equal(net, before)
            X_good, Y_good = np.ones((4, n_in), dtype=dtype), np.zeros((4, 3), dtype=dtype)
            assert net.train_step(X_good, Y_good) == twin.train_step(X_good, Y_good)
            for a, b in zip(snapshot(net), snapshot(twin)):
                assert np.array_equal(a, b)


def with_nan_at(arrays, position):
    """Copies of ``arrays`` (one array, or a list of them) with the value at
    ``position`` of their values in order made NaN."""
    copies = [a.copy() for a in (arrays if isinstance(arrays, list) else [arrays])]
    for copy in copies:
        if position < copy.size:
            copy.flat[position] = np.nan
            break
        position -= copy.size
    return copies if isinstance(arrays, list) else copies[0]


@pytest.mark.parametrize("impl", sorted(IMPLEMENTATIONS))
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("n_in", [8, 9])
def test_a_carried_momentum_buffer_that_is_not_finite_is_refused(impl, dtype, n_in):
    """RMSprop without momentum carries its momentum buffer over unread, so a
    NaN in it (a state restored from a pickle made by hand) never reaches the
    step, whose new parameters stay finite: the step must be refused all the
    same, with nothing changed. The NaN is at each of the 27 or 30 positions
    in turn: every lane of the whole vectors of every build, and of a tail."""
    Net = IMPLEMENTATIONS[impl]
    X, Y = np.ones((4, n_in), dtype=dtype), np.zeros((4, 3), dtype=dtype)
    for position in range(n_in * 3 + 3):
        net = Net([n_in, 3], ["identity"], loss="mse", optimizer=cb.RMSprop(lr=1e-2),
                  dtype=dtype, seed=3)
        net.train_step(X, Y)
        state = net.__getstate__()
        square_avg, buffer, step_count = state["optimizer_state"]
        state["optimizer_state"] = (square_avg, with_nan_at(buffer, position), step_count)
        net.__setstate__(state)
        before = snapshot(net)
        with pytest.raises(FloatingPointError):
            net.train_step(X, Y)
        assert_params_equal(net, before)


# -- fit: where it stopped, and the epochs it finished ------------------------------------
def zeros_but_batch_seven(m=115, batch_size=10):
    """Inputs that are zero except in the 7th of 12 minibatches (the last one
    of 5 rows): once the first-layer weights are huge, only that batch's
    loss overflows."""
    rng = np.random.default_rng(7)
    X = np.zeros((m, SIZES[0]))
    X[6 * batch_size:7 * batch_size] = rng.uniform(0.5, 1.0, size=(batch_size, SIZES[0]))
    Y = rng.standard_normal((m, SIZES[-1]))
    X_val, Y_val = rng.standard_normal((9, SIZES[0])), rng.standard_normal((9, SIZES[-1]))
    return X, Y, (X_val, Y_val)


def huge_first_layer(net):
    """Positive first-layer weights ~1e156: an input of ~1 then gives outputs
    whose squares overflow, while weight decay's 1e-3 * W, squared by Adam,
    stays finite."""
    weights, biases = net.get_params()
    weights[0] = (np.abs(weights[0]) + 1) * 1e156
    net.set_params(weights, biases)


def build_for_fit(Net, optimizer):
    return Net(SIZES, ["leaky_relu", "identity"], loss="mse", optimizer=OPTIMIZERS[optimizer](),
               seed=21)


@pytest.mark.parametrize("impl", sorted(IMPLEMENTATIONS))
@pytest.mark.parametrize("optimizer", sorted(OPTIMIZERS))
def test_fit_error_says_where_and_carries_the_finished_epochs(impl, optimizer):
    """Two epochs train; a callback then makes the first-layer weights huge, so
    the 7th batch of the 3rd epoch diverges. The error names that position,
    carries the two epochs' history (as a fit of two epochs returns it) and
    leaves the parameters as after the 6th batch of epoch 3 (no best epoch
    restored)."""
    Net = IMPLEMENTATIONS[impl]
    X, Y, validation = zeros_but_batch_seven()

    def blow_up_after_epoch_two(net, epoch, logs):
        if epoch == 1:
            huge_first_layer(net)

    net = build_for_fit(Net, optimizer)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(FloatingPointError) as excinfo:
            net.fit(X, Y, epochs=5, batch_size=10, shuffle=False, validation_data=validation,
                    patience=3, restore_best=True, callbacks=[blow_up_after_epoch_two])
    error = excinfo.value
    assert str(error).startswith("the loss is inf on this batch (training diverged)")
    assert "at epoch 3, batch 7 of 12" in str(error)
    assert "2 finished epochs" in str(error)

    twin = build_for_fit(Net, optimizer)
    expected = twin.fit(X, Y, epochs=2, batch_size=10, shuffle=False,
                        validation_data=validation, patience=3)
    history = error.history
    assert isinstance(history, cb.History)
    assert history == expected and list(history) == ["loss", "val_loss"]
    assert len(history["loss"]) == 2
    assert history.best_epoch == expected.best_epoch
    assert history.stop_reason == "diverged" and history.stopped_epoch is None
    assert not history.interrupted

    # Parameters and optimizer state: as after the six good steps of epoch 3.
    huge_first_layer(twin)
    for start in range(0, 60, 10):
        twin.train_step(X[start:start + 10], Y[start:start + 10])
    for a, b in zip(snapshot(net), snapshot(twin)):
        np.testing.assert_array_equal(a, b)
    for start in range(70, 115, 10):
        assert net.train_step(X[start:start + 10], Y[start:start + 10]) == \
            twin.train_step(X[start:start + 10], Y[start:start + 10])


@pytest.mark.parametrize("impl", sorted(IMPLEMENTATIONS))
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_fit_error_in_the_first_epoch(impl, dtype):
    """Huge (finite) inputs in the 4th of 5 batches: epoch 1, batch 4 of 5, an
    empty history, and the parameters of the three good steps."""
    Net = IMPLEMENTATIONS[impl]
    net = build(Net, dtype, "adam", "cross_entropy")
    twin = build(Net, dtype, "adam", "cross_entropy")
    X, Y = good_batches("cross_entropy", count=1, m=45)[0]
    X[30:40] = np.finfo(dtype).max / 2
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(FloatingPointError, match="at epoch 1, batch 4 of 5") as excinfo:
            net.fit(X, Y, epochs=3, batch_size=10, shuffle=False)
    assert excinfo.value.history == {"loss": []}
    assert "0 finished epochs" in str(excinfo.value)
    for start in range(0, 30, 10):
        twin.train_step(X[start:start + 10], Y[start:start + 10])
    for a, b in zip(snapshot(net), snapshot(twin)):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("impl", sorted(IMPLEMENTATIONS))
def test_fit_error_counts_batches_in_the_shuffled_order(impl):
    """With shuffling, the batch number is the position in that epoch's order."""
    Net = IMPLEMENTATIONS[impl]
    net = build(Net, "float64", "sgd-momentum", "mse")
    X, Y = good_batches("mse", count=1, m=40)[0]
    Y = Y.copy()
    Y[17] = 1e200   # one bad row
    order = np.random.default_rng(4).permutation(40)   # fit's first epoch order for seed=4
    batch = int(np.flatnonzero(order == 17)[0]) // 8 + 1
    with pytest.raises(FloatingPointError, match=f"at epoch 1, batch {batch} of 5"):
        net.fit(X, Y, epochs=2, batch_size=8, seed=4)


@pytest.mark.parametrize("impl", sorted(IMPLEMENTATIONS))
def test_fit_verbose_notes_the_divergence(impl, capsys):
    Net = IMPLEMENTATIONS[impl]
    net = build_for_fit(Net, "adam")
    X, Y, _ = zeros_but_batch_seven()
    with pytest.raises(FloatingPointError):
        net.fit(X, Y, epochs=4, batch_size=10, shuffle=False, verbose=True,
                callbacks=[lambda net, epoch, logs: huge_first_layer(net) if epoch == 0 else None])
    out = capsys.readouterr().out
    assert "training diverged at epoch 2, batch 7 of 12" in out
    assert out.count("epoch 1/4") == 1 and out.endswith("\n")


@pytest.mark.parametrize("impl", sorted(IMPLEMENTATIONS))
def test_a_callbacks_own_floating_point_error_keeps_its_message_and_gets_the_history(impl):
    """Only a diverging step of fit gets a position in its message; every
    FloatingPointError out of fit carries err.history (the contract)."""
    Net = IMPLEMENTATIONS[impl]
    net = build_for_fit(Net, "sgd-momentum")
    X, Y = good_batches("mse", count=1, m=20)[0]

    def failing(net, epoch, logs):
        raise FloatingPointError("the callback's own")

    with pytest.raises(FloatingPointError) as excinfo:
        net.fit(X, Y, epochs=2, batch_size=10, callbacks=[failing])
    assert str(excinfo.value) == "the callback's own"
    assert len(excinfo.value.history["loss"]) == 1


@pytest.mark.parametrize("impl", sorted(IMPLEMENTATIONS))
def test_train_step_message_is_unchanged(impl):
    """Outside fit, the message says nothing of epochs and there is no history."""
    Net = IMPLEMENTATIONS[impl]
    net = build(Net, "float64", "adam", "mse")
    X, Y = bad_batch("huge-targets", "mse", "float64")
    with pytest.raises(FloatingPointError) as excinfo:
        net.train_step(X, Y)
    assert "epoch" not in str(excinfo.value) and not hasattr(excinfo.value, "history")


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_a_nan_pre_activation_of_a_relu_layer_diverges(impl, dtype):
    """Finite weights and inputs whose two products overflow with opposite
    signs: the hidden pre-activation is +inf where the second product is
    added to the first inside an FMA, and inf - inf = NaN where both are
    rounded first (the compiled float64 step of this tiny network). relu
    passes either on (as max(z, 0) does), so the loss is not finite and the
    step is refused, in both implementations; the relu that turned NaN into
    0 trained on silently."""
    big = np.finfo(dtype).max / 2
    net = IMPLEMENTATIONS[impl]([2, 3, 1], ["relu", "identity"], optimizer=cb.SGD(lr=0.1),
                                dtype=dtype, seed=0)
    weights, biases = net.get_params()
    weights[0][:, 0] = [big, -big]
    net.set_params(weights, biases)
    before = net.get_params()
    X = np.full((4, 2), 4.0, dtype=dtype)
    Y = np.zeros((4, 1), dtype=dtype)
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        with pytest.raises(FloatingPointError):
            net.train_step(X, Y)
    after = net.get_params()
    for old, new in zip(before[0] + before[1], after[0] + after[1]):
        assert np.array_equal(old, new)
