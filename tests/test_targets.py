"""Targets of the classification losses (issue 13, items 3 and 5):
cross-entropy rows must be probability vectors, a softmax output needs two
units, boolean targets mean 0/1, and label errors show the value given."""
import numpy as np
import pytest

import cbackprop as cb

SIZES = [4, 5, 3]
M = 6
LABELS = np.array([0, 2, 1, 2, 0, 1])


def ce_net(Net, dtype="float64"):
    return Net(SIZES, ["tanh", "softmax"], loss="cross_entropy", optimizer=cb.SGD(lr=0.1),
               dtype=dtype, seed=3)


def bce_net(Net, dtype="float64", outputs=2):
    return Net([4, 5, outputs], ["tanh", "sigmoid"], loss="bce", optimizer=cb.SGD(lr=0.1),
               dtype=dtype, seed=3)


def batch(rng):
    return rng.normal(size=(M, SIZES[0]))


def params_of(net):
    weights, biases = net.get_params()
    return [p.copy() for p in weights + biases]


def assert_same_params(net, before):
    for got, want in zip(params_of(net), before):
        np.testing.assert_array_equal(got, want)


def every_entry_point(net, X, Y):
    """Each public call that takes targets, called once (one raises, the rest too)."""
    return {
        "loss": lambda: net.loss(X, Y),
        "loss_and_gradients": lambda: net.loss_and_gradients(X, Y),
        "train_step": lambda: net.train_step(X, Y),
        "fit": lambda: net.fit(X, Y, epochs=1, batch_size=2, seed=0),
        "fit validation_data": lambda: net.fit(X, LABELS, epochs=1, batch_size=2, seed=0,
                                               validation_data=(X, Y)),
        "trace": lambda: net.trace(X, Y),
        "check_gradients": lambda: cb.check_gradients(net, X, Y),
    }


# -- cross-entropy targets are probability rows -------------------------------------------

def soft_labels(rng, dtype=np.float64):
    raw = rng.uniform(0.1, 1.0, size=(M, SIZES[-1]))
    return (raw / raw.sum(axis=1, keepdims=True)).astype(dtype)


BAD_ROWS = {
    "negative entry": ([0.5, -0.5, 1.0], "has entry -0.5 outside [0, 1]"),
    "entry above 1": ([1.25, 0.0, -0.25], "has entry 1.25 outside [0, 1]"),
    "sums to 2": ([1.0, 1.0, 0.0], "sums to 2.0"),
    "all zero": ([0.0, 0.0, 0.0], "sums to 0.0"),
    "sums to 0.9": ([0.5, 0.25, 0.15], "sums to 0.9"),
}


@pytest.mark.parametrize("case", sorted(BAD_ROWS))
@pytest.mark.parametrize("entry", sorted(every_entry_point(None, None, None)))
def test_cross_entropy_targets_must_be_probability_rows(Net, dtype, case, entry, rng):
    X = batch(rng)
    Y = np.eye(3)[LABELS]
    row, what = BAD_ROWS[case]
    Y[4] = row
    net = ce_net(Net, dtype)
    before = params_of(net)
    with pytest.raises(ValueError, match="probability rows") as info:
        every_entry_point(net, X, Y)[entry]()
    assert "row 4 of Y" in str(info.value)
    if dtype == "float64" or "outside" in what:
        assert what in str(info.value)
    if entry == "fit validation_data":
        assert str(info.value).startswith("validation_data: ")
    assert_same_params(net, before)


def test_negative_one_hot_no_longer_gives_a_negative_loss(Net, rng):
    """The issue's example: a negated one-hot row used to train on a negative loss."""
    X = batch(rng)
    net = ce_net(Net)
    with pytest.raises(ValueError, match="probability rows"):
        net.train_step(X, -np.eye(3)[LABELS])


@pytest.mark.parametrize("precast", [False, True], ids=["converted", "engine form"])
def test_soft_labels_are_accepted(Net, dtype, precast, rng):
    X, Y = batch(rng), soft_labels(rng)
    if precast:   # the compiled net's fast path: checked in C, not in Python
        X, Y = X.astype(dtype), Y.astype(dtype)
    net = ce_net(Net, dtype)
    loss = net.train_step(X, Y)
    assert np.isfinite(loss) and loss > 0
    net.fit(X, Y, epochs=1, batch_size=4, validation_data=(X, Y))


@pytest.mark.parametrize("precast", [False, True], ids=["converted", "engine form"])
def test_bad_rows_are_caught_on_the_engine_fast_path(Net, dtype, precast, rng):
    X, Y = batch(rng).astype(dtype), np.eye(3, dtype=dtype)[LABELS]
    Y[2] = [0.5, 0.5, 0.5]
    if not precast:
        Y = Y.astype(np.float64 if dtype == "float32" else np.float32)
    net = ce_net(Net, dtype)
    with pytest.raises(ValueError, match=r"row 2 of Y sums to 1\.5"):
        net.train_step(X, Y)


def test_one_hot_and_labels_still_agree(Net, dtype, rng):
    X = batch(rng)
    net = ce_net(Net, dtype)
    assert net.loss(X, LABELS) == pytest.approx(net.loss(X, np.eye(3)[LABELS]), rel=1e-6)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_the_row_sum_tolerance_grows_with_the_classes(Net, dtype):
    """A row off by its base tolerance and half of k roundings passes; one off by
    more than base + k roundings does not."""
    k = 50
    net = Net([2, k], ["softmax"], loss="cross_entropy", dtype=dtype, seed=0)
    eps = float(np.finfo(dtype).eps)
    tolerance = cb._validation.probability_tolerance(dtype, k)
    base = tolerance - k * eps
    X = np.zeros((1, 2))
    for off, accepted in ((base + 0.5 * k * eps, True), (tolerance + 0.5 * k * eps, False)):
        Y = np.full((1, k), 1 / k)
        Y[0, 0] += off
        Y = Y.astype(dtype)
        assert abs(Y.sum(dtype=np.float64) - 1 - off) < 0.1 * k * eps   # the cast kept it
        if accepted:
            net.loss(X, Y)
        else:
            with pytest.raises(ValueError, match="row 0 of Y sums to"):
                net.loss(X, Y)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("k", [8, 9, 17, 50])
def test_rows_at_the_tolerance_are_judged_alike_by_both_implementations(dtype, k):
    """Rows whose sum is off by the tolerance, give or take 2 %: both sum them
    left to right in float64, so both accept or refuse each row alike, with
    the same figure in the message. The reference's np.sum (another order from
    eight values on) judged about 1 in 500 such float64 rows the other way."""
    rng = np.random.default_rng(k)
    tolerance = cb._validation.probability_tolerance(dtype, k)
    rows = rng.dirichlet(np.ones(k), size=400)
    rows[:, -1] += 1 - rows.sum(axis=1) + tolerance * rng.uniform(0.98, 1.02, size=400)
    rows = rows.astype(dtype)
    X = np.ones((1, 3))
    nets = [Net([3, k], ["softmax"], loss="cross_entropy", dtype=dtype, seed=0)
            for Net in (cb.Network, cb.reference.Network)]
    verdicts = {True: 0, False: 0}
    for row in rows:
        outcomes = []
        for net in nets:
            try:
                outcomes.append(net.loss(X, row[np.newaxis]))
            except ValueError as error:
                outcomes.append(str(error))
        compiled, reference = outcomes
        assert type(compiled) is type(reference)
        if isinstance(compiled, str):
            assert compiled == reference
        verdicts[isinstance(compiled, float)] += 1
    assert min(verdicts.values()) >= 100   # both sides of the line are drawn


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_tolerance_of_the_row_sum(Net, dtype, rng):
    """Rows computed in the dtype (k roundings) pass; a visible error does not."""
    k = 50
    net = Net([4, k], ["softmax"], loss="cross_entropy", dtype=dtype, seed=0)
    X = batch(rng)
    z = rng.normal(size=(M, k)).astype(dtype)
    e = np.exp(z - z.max(axis=1, keepdims=True))
    rows = e / e.sum(axis=1, keepdims=True)            # a softmax in the dtype
    net.loss(X, rows)
    tolerance = cb._validation.probability_tolerance(dtype, k)
    assert tolerance < (1e-5 if dtype == "float32" else 1e-11)
    off = rows.astype(np.float64)
    off[1, 0] += 4 * tolerance
    with pytest.raises(ValueError, match="row 1 of Y sums to"):
        net.loss(X, off.astype(dtype) if dtype == "float64" else off)


def test_single_sample_row_is_checked(Net, rng):
    X = batch(rng)[0]
    net = ce_net(Net)
    assert net.loss(X, [0.2, 0.3, 0.5]) > 0
    with pytest.raises(ValueError, match="row 0 of Y sums to"):
        net.loss(X, [0.2, 0.3, 0.6])


def test_softmax_mse_targets_are_not_constrained(Net, rng):
    """Only cross-entropy reads its targets as distributions."""
    net = Net(SIZES, ["tanh", "softmax"], loss="mse", seed=0)
    net.loss(batch(rng), rng.normal(size=(M, 3)))


# -- a softmax output needs at least two units --------------------------------------------

@pytest.mark.parametrize("loss", ["cross_entropy", "mse"])
@pytest.mark.parametrize("sizes", [[3, 1], [3, 4, 1]], ids=str)
def test_softmax_output_of_width_one_is_refused(Net, sizes, loss):
    activations = ["relu"] * (len(sizes) - 2) + ["softmax"]
    with pytest.raises(ValueError, match="softmax output layer needs at least 2 outputs, got 1"):
        Net(sizes, activations, loss=loss)


def test_softmax_output_of_width_two_is_fine(Net, rng):
    net = Net([4, 2], ["softmax"], loss="cross_entropy", seed=0)
    net.train_step(batch(rng), LABELS % 2)


# -- boolean targets -------------------------------------------------------------------------

@pytest.mark.parametrize("entry", ["loss", "loss_and_gradients", "train_step", "fit", "trace"])
def test_boolean_bce_targets_mean_zero_and_one(Net, dtype, entry, rng):
    X = batch(rng)
    Y = rng.normal(size=(M, 2)) > 0
    results = []
    for targets in (Y, Y.astype(dtype)):
        net = bce_net(Net, dtype)
        call = every_entry_point(net, X, targets)[entry]
        result = call()
        results.append((result, params_of(net)))
    if entry == "loss":
        assert results[0][0] == results[1][0]
    for got, want in zip(results[0][1], results[1][1]):
        np.testing.assert_array_equal(got, want)


def test_boolean_bce_targets_of_one_output(Net, rng):
    X = batch(rng)
    y = X[:, 0] > 0
    net = bce_net(Net, outputs=1)
    assert net.loss(X, y) == net.loss(X, y.astype(float))
    assert net.loss(X, y[:, None]) == net.loss(X, y.astype(float))
    assert net.loss(X[0], y[0]) == net.loss(X[0], float(y[0]))
    assert net.loss(X, list(y)) == net.loss(X, y.astype(float))
    net.fit(X, y, epochs=1, validation_data=(X, y))


def test_boolean_one_hot_rows_for_cross_entropy(Net, rng):
    X = batch(rng)
    one_hot = LABELS[:, None] == np.arange(3)
    net = ce_net(Net)
    assert net.loss(X, one_hot) == net.loss(X, one_hot.astype(float))


def test_boolean_x_is_still_a_type_error(Net, rng):
    X = batch(rng)
    with pytest.raises(TypeError, match="X must hold real numbers, got dtype bool"):
        bce_net(Net).loss(X > 0, X[:, :2] > 0)


@pytest.mark.parametrize("case", ["mse", "class labels"])
def test_boolean_targets_elsewhere_are_a_type_error_with_a_hint(Net, case, rng):
    X = batch(rng)
    if case == "mse":
        net, Y = Net(SIZES, ["tanh", "identity"], seed=0), rng.normal(size=(M, 3)) > 0
    else:
        net, Y = ce_net(Net), LABELS > 0
    with pytest.raises(TypeError, match=r"got dtype bool \(boolean Y is read as 0/1 targets only"):
        net.loss(X, Y)


# -- class labels: (m, 1) and the value shown -----------------------------------------------

@pytest.mark.parametrize("dtype_", [np.int64, np.int32, np.float64])
def test_column_of_labels_says_to_pass_a_1d_array(Net, dtype_, rng):
    X = batch(rng)
    with pytest.raises(ValueError, match=r"got \(6, 1\): give class labels as a 1-D array"):
        ce_net(Net).loss(X, LABELS[:, None].astype(dtype_))


@pytest.mark.parametrize("labels, shown", [
    (np.array([0, 1, 2, 2**64 - 1, 0, 1], dtype=np.uint64), "18446744073709551615"),
    (np.array([0, 1, 2, 1e20, 0, 1]), "1e+20"),
    (np.array([0, 1, 2, -1e20, 0, 1]), "-1e+20"),
    (np.array([0, 1, 2, 3.0, 0, 1]), "3.0"),
    (np.array([0, 1, 2, 3, 0, 1]), "3"),
    (np.array([0, 1, 2, -2, 0, 1], dtype=np.int8), "-2"),
    (np.array([0, 1, 2, 2**40, 0, 1]), str(2**40)),
    (np.array([0, 1, 2, 300, 0, 1], dtype=np.uint16), "300"),
], ids=["uint64 max", "float 1e20", "float -1e20", "float 3.0", "int64", "int8", "int 2**40", "uint16"])
def test_label_errors_show_the_value_given(Net, labels, shown, rng):
    X = batch(rng)
    net = ce_net(Net)
    before = params_of(net)
    for call in every_entry_point(net, X, labels).values():
        with pytest.raises(ValueError) as info:
            call()
        assert f"class label {shown} (sample 3) out of range [0, 3)" in str(info.value)
    assert_same_params(net, before)


def test_first_bad_label_is_reported(Net, rng):
    X = batch(rng)
    with pytest.raises(ValueError, match=r"class label 7 \(sample 1\)"):
        ce_net(Net).loss(X, np.array([0, 7, -1, 9, 0, 1]))
