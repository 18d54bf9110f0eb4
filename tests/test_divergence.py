"""A diverging train_step (finite inputs, non-finite loss) raises
FloatingPointError and changes nothing: not the parameters, not the optimizer
state (momentum velocities, Adam moments, Adam's step count). A network that
survived a failed step then trains exactly like a twin that never saw it."""
import warnings

import numpy as np
import pytest

import cbackprop as cb

IMPLEMENTATIONS = {"compiled": cb.Network, "reference": cb.reference.Network}

OPTIMIZERS = {
    "adam": lambda: cb.Adam(lr=1e-2),
    "adam-decay": lambda: cb.Adam(lr=5e-3, beta1=0.8, beta2=0.99, eps=1e-6, weight_decay=1e-3),
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
        with pytest.raises(FloatingPointError):
            net.fit(X, Y, epochs=1, batch_size=10, shuffle=False)
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
