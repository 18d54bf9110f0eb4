"""Numerics that are part of the API: extreme pre-activations, seeded
initialisation, initialisation scales, and the dtype of every result.

RuntimeWarnings are errors in this test suite (pyproject.toml); the extreme
input tests run under ``np.errstate(all="raise")``, as a user debugging
with ``np.seterr(all="raise")`` would: the networks' own arithmetic (an
exp(-1e4) underflowing to 0 included) is IEEE whatever NumPy is set to.
"""
import numpy as np
import pytest

import cbackprop as cb
from registry_cases import HIDDEN

OUTPUT_LOSSES = {
    "identity+mse": ("identity", lambda: "mse"),
    "sigmoid+mse": ("sigmoid", lambda: "mse"),
    "tanh+mse": ("tanh", lambda: "mse"),
    "softmax+mse": ("softmax", lambda: "mse"),
    "identity+mse_sum": ("identity", lambda: cb.MSE(scale=0.5, reduction="sum")),
    "sigmoid+bce": ("sigmoid", lambda: "bce"),
    "softmax+ce_onehot": ("softmax", lambda: "cross_entropy"),
    "softmax+ce_labels": ("softmax", lambda: cb.CrossEntropy()),
}
RAISE = dict(all="raise")


def targets(output, m, k):
    labels = np.arange(m) % k
    if output == "softmax+ce_labels":
        return labels
    if output in ("softmax+ce_onehot", "softmax+mse"):
        return np.eye(k)[labels]
    if output in ("sigmoid+bce", "sigmoid+mse"):
        return (np.arange(m * k).reshape(m, k) % 2).astype(float)
    return np.linspace(-3, 3, m * k).reshape(m, k)


def all_finite(*arrays):
    return all(np.all(np.isfinite(a)) for a in arrays)


# --------------------------------------------------------------------------
# Extreme pre-activations: finite, silent, and (single layer) exact
# --------------------------------------------------------------------------

# Rows of X pick rows of W1, so Z1 spans [-1e4, 1e4] exactly.
EXTREME_X = np.array([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5], [-1.0, 0.0]])
EXTREME_W1 = np.array([[1e4, -1e4, 30.0, -700.0], [-1e4, 1e4, -30.0, 700.0]])
W2_PATTERN = np.array([[1.0, -1.0, 0.5], [-1.0, 1.0, -0.5], [0.25, -0.75, 1.0], [-0.5, 0.5, -1.0]])


@pytest.mark.parametrize("output", sorted(OUTPUT_LOSSES))
@pytest.mark.parametrize("hidden", HIDDEN)
def test_extreme_preactivations_are_finite_and_silent(Net, dtype, hidden, output):
    """Pre-activations of +-1e4 in both layers: forward, loss, gradients and a step are finite."""
    out_act, loss = OUTPUT_LOSSES[output]
    net = Net([2, 4, 3], [hidden, out_act], loss=loss(), optimizer=cb.SGD(lr=1e-6), dtype=dtype)
    bounded = hidden in ("sigmoid", "tanh")  # |A1| <= 1, else up to 1e4
    W2 = W2_PATTERN * (1e4 if bounded else 1.0)
    net.set_params([EXTREME_W1, W2], [np.zeros(4), np.array([0.0, 5.0, -5.0])])
    X, Y = EXTREME_X, targets(output, 4, 3)
    with np.errstate(**RAISE):
        out = net.forward(X)
        loss_value = net.loss(X, Y)
        loss2, grads = net.loss_and_gradients(X, Y)
        before = net.train_step(X, Y)
    assert out.dtype == np.dtype(dtype) and all_finite(out)
    assert np.isfinite(loss_value) and np.isfinite(loss2) and np.isfinite(before)
    for dW, db in grads:
        assert dW.dtype == db.dtype == np.dtype(dtype)
        assert all_finite(dW, db)
    assert all_finite(*sum(net.get_params(), []))


def np_truth(out_act, loss, X, W, b, Y):
    """Loss and gradients of a one-layer net in float64, with overflow-free formulas."""
    Z = X @ W + b
    m, k = Z.shape
    N = Z.size
    e = np.exp(-np.abs(Z))
    if out_act == "sigmoid":
        A = np.where(Z >= 0, 1 / (1 + e), e / (1 + e))
        dA = e / (1 + e) ** 2
    elif out_act == "tanh":
        A = np.tanh(Z)
        dA = 1 - A**2
    elif out_act == "identity":
        A, dA = Z, np.ones_like(Z)
    else:  # softmax
        shifted = Z - Z.max(axis=1, keepdims=True)
        A = np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True)
        lse = Z.max(axis=1) + np.log(np.exp(shifted).sum(axis=1))
    if isinstance(loss, str):
        loss = {"mse": cb.MSE(), "bce": cb.BCE(), "cross_entropy": cb.CrossEntropy()}[loss]
    if isinstance(loss, cb.MSE):
        div = N if loss.reduction == "mean" else 1
        L = loss.scale * np.sum((A - Y) ** 2) / div
        g = 2 * loss.scale * (A - Y) / div
        if out_act == "softmax":
            delta = A * (g - np.sum(g * A, axis=1, keepdims=True))
        else:
            delta = g * dA
    elif isinstance(loss, cb.BCE):
        L = np.sum(np.maximum(Z, 0) - Z * Y + np.log1p(e)) / N
        delta = (A - Y) / N
    else:
        onehot = np.eye(k)[Y] if Y.ndim == 1 else Y
        L = np.sum(lse - np.sum(onehot * Z, axis=1)) / m
        delta = (A - onehot) / m
    return L, X.T @ delta, delta.sum(axis=0)


@pytest.mark.parametrize("output", sorted(OUTPUT_LOSSES))
def test_extreme_loss_and_gradients_are_exact(Net, dtype, output):
    """At |z| up to 1e4 the loss and gradients are the true ones (no clipping, no log(0)):
    e.g. BCE of sigmoid(-1e4) against target 1 is 1e4, not -log(1e-7)."""
    out_act, loss = OUTPUT_LOSSES[output]
    X = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    W = np.array([[1e4, -1e4, 20.0], [-1e4, 9e3, -40.0]])
    b = np.array([0.0, 0.5, 1.0])
    Y = targets(output, 3, 3)
    if output == "sigmoid+bce":
        Y = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 1.0], [1.0, 1.0, 0.25]])  # the far-wrong side
    if output == "softmax+ce_labels":
        Y = np.array([1, 0, 2])
    if output == "softmax+ce_onehot":
        Y = np.eye(3)[[1, 0, 2]]
    net = Net([2, 3], [out_act], loss=loss(), dtype=dtype)
    net.set_params([W], [b])
    L, dW, db = np_truth(out_act, loss(), X, W, b, Y)
    with np.errstate(**RAISE):
        got_L, [(got_dW, got_db)] = net.loss_and_gradients(X, Y)
    rtol = 1e-10 if dtype == "float64" else 1e-4
    # Errors are relative to the largest gradient, or to 1/N where every gradient
    # is a tiny difference of saturated values that float32 cannot resolve.
    scale = max(np.abs(dW).max(), np.abs(db).max(), 1.0 / 9)
    assert got_L == pytest.approx(L, rel=rtol)
    np.testing.assert_allclose(got_dW, dW, rtol=rtol, atol=rtol * scale)
    np.testing.assert_allclose(got_db, db, rtol=rtol, atol=rtol * scale)


@pytest.mark.parametrize("activation", HIDDEN + ["softmax"])
def test_extreme_forward_values(Net, dtype, activation):
    """Saturated activations take their limits: sigmoid(+-1e4) = 1, 0; tanh = +-1; softmax one-hot."""
    net = Net([1, 3], [activation], dtype=dtype)
    net.set_params([np.array([[1e4, -1e4, 0.0]])], [np.zeros(3)])
    with np.errstate(**RAISE):
        out = net.forward(np.array([[1.0], [-1.0]]))
    expected = {
        "sigmoid": [[1, 0, 0.5], [0, 1, 0.5]],
        "tanh": [[1, -1, 0], [-1, 1, 0]],
        "relu": [[1e4, 0, 0], [0, 1e4, 0]],
        "identity": [[1e4, -1e4, 0], [-1e4, 1e4, 0]],
        "leaky_relu": [[1e4, -100, 0], [-100, 1e4, 0]],
        "softmax": [[1, 0, 0], [0, 1, 0]],
        # z Φ(z), z (1 + tanh(...)) / 2 and z σ(z) all tend to relu's limits.
        "gelu": [[1e4, 0, 0], [0, 1e4, 0]],
        "gelu_tanh": [[1e4, 0, 0], [0, 1e4, 0]],
        "silu": [[1e4, 0, 0], [0, 1e4, 0]],
    }[activation]
    assert out.dtype == np.dtype(dtype)
    np.testing.assert_allclose(out, expected, rtol=1e-6, atol=1e-30)


def test_adam_steps_by_lr_on_gradients_near_the_dtype_limit(Net, dtype):
    """Adam's first step moves a parameter by lr whatever its gradient's size
    (m̂ / sqrt(v̂) = ±1), also where v / (1 - β2^t) is past the dtype's largest
    value (gradients of 4e20 in float32, 4e154 in float64): the reference once
    formed that v̂, divided by its infinite root and left the parameters as
    they were."""
    x = 1e10 if dtype == "float32" else 1e77
    net = Net([1, 1], ["identity"], optimizer=cb.Adam(lr=0.01), dtype=dtype)
    net.set_params([np.ones((1, 1))], [np.zeros(1)])
    with np.errstate(**RAISE):
        net.train_step(np.array([[x]]), np.array([[-x]]))
    [W], [b] = net.get_params()
    assert W[0, 0] == pytest.approx(0.99, rel=1e-6)
    assert b[0] == pytest.approx(-0.01, rel=1e-5)


@pytest.mark.parametrize("gradient", [0.5, 0.0])
def test_adam_with_a_learning_rate_near_the_dtype_limit(dtype, gradient):
    """lr / (1 - β1^t) is past the dtype's largest value (lr = 1e38 in
    float32, 1e308 in float64): the compiled step once formed that factor,
    got inf (inf x 0 = NaN for a zero gradient) and refused a step whose
    result is finite. Both implementations take it, to rounding."""
    lr = 1e38 if dtype == "float32" else 1e308
    results = []
    for Net in (cb.Network, cb.reference.Network):
        net = Net([1, 1], ["identity"], optimizer=cb.Adam(lr=lr), dtype=dtype)
        net.set_params([np.ones((1, 1))], [np.zeros(1)])
        net.train_step(np.array([[1.0]]), np.array([[1.0 - gradient]]))
        results.append(np.concatenate([p.ravel() for p in sum(net.get_params(), [])]))
    compiled, reference = results
    assert np.isfinite(compiled).all()
    np.testing.assert_allclose(compiled, reference, rtol=1e-6)
    if gradient:
        assert compiled[0] == pytest.approx(1 - lr, rel=1e-6)


@pytest.mark.parametrize("targets", ["labels", "one-hot rows", "soft rows"])
def test_cross_entropy_of_logits_further_apart_than_float64s_range(targets):
    """Logits -1e308 and 1e308 with the target on the larger: the loss is 0 in
    both implementations, whether the targets are labels or rows (which take
    another path: the target-weighted gap, whose overflow to NaN falls back to
    the rows' terms one by one) (the reference once multiplied the other
    class's zero target by its infinite -log softmax: NaN, and refused the step)."""
    Y = {"labels": np.array([1]), "one-hot rows": np.array([[0.0, 1.0, 0.0]]),
         "soft rows": np.array([[0.0, 0.5, 0.5]])}[targets]
    # Soft: half the mass on the logit 0, whose -log softmax is 1e308.
    loss_wanted, delta_wanted = ((5e307, [[0.0, 0.5, -0.5]]) if targets == "soft rows"
                                 else (0.0, [[0.0, 0.0, 0.0]]))
    for Net in (cb.Network, cb.reference.Network):
        net = Net([1, 3], ["softmax"], loss="cross_entropy", optimizer=cb.SGD(lr=0.1))
        net.set_params([np.array([[1.0, -1.0, 0.0]])], [np.zeros(3)])
        X = np.array([[-1e308]])
        assert net.loss(X, Y) == loss_wanted
        assert net.train_step(X, Y) == loss_wanted
    for ops in (cb.ops, cb.reference.ops):
        with np.errstate(over="ignore"):   # the reference's z - max(z), as its Network runs it
            loss, delta = ops.cross_entropy(np.array([[-1e308, 1e308, 0.0]]), Y)
        assert loss == loss_wanted and np.array_equal(delta, delta_wanted)


CONFIDENT_GAPS = [50.0, 86.9, 87.5, 95.0, 103.0, 111.0, 300.0]


def confident_losses(implementation, gap):
    """float32 losses whose outputs are right by a margin of ``gap``: cross-
    entropy with labels, one-hot and soft targets (through ``ops``, and in
    place for the compiled one), a Network's cross-entropy and BCE."""
    ops = cb.ops if implementation is cb else cb.reference.ops
    logits = np.array([[gap, 0.0, -1.0], [-2.0, gap + 0.5, 1.0]], dtype=np.float32)
    targets = [np.array([0, 1]), np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], dtype=np.float32),
               np.array([[0.75, 0.25, 0.0], [0.0, 1.0, 0.0]], dtype=np.float32)]
    losses = [ops.cross_entropy(logits, Y)[0] for Y in targets]
    if implementation is cb:   # delta written over the logits
        in_place = logits.copy()
        losses.append(ops.cross_entropy(in_place, targets[0], out=in_place)[0])
        bce_logits = np.array([[gap, -gap, 1.0]], dtype=np.float32)
        bce_targets = np.array([[1.0, 0.0, 0.5]], dtype=np.float32)
        in_place = bce_logits.copy()
        losses.append(ops.bce(in_place, bce_targets, out=in_place)[0]
                      - ops.bce(bce_logits, bce_targets)[0])
    ce = implementation.Network([1, 3], ["softmax"], loss="cross_entropy", dtype="float32")
    ce.set_params([np.zeros((1, 3))], [np.array([gap, 0.0, -1.0])])
    bce = implementation.Network([1, 2], ["sigmoid"], loss="bce", dtype="float32")
    bce.set_params([np.zeros((1, 2))], [np.array([gap, -gap])])
    return losses + [ce.loss(np.zeros((1, 1)), np.array([0])),
                     bce.loss(np.zeros((1, 1)), np.array([[1.0, 0.0]]))]


@pytest.mark.parametrize("gap", CONFIDENT_GAPS)
def test_float32_losses_of_confident_outputs_keep_their_digits(gap):
    """Below float32's normal range (margins of 87 and more) the loss is all
    in exp(-margin), which float32's exp rounds to a few digits, and to 0
    beyond 103: the compiled losses take it in double there, to the
    reference's digits (it works in float64)."""
    compiled, reference = confident_losses(cb, gap), confident_losses(cb.reference, gap)
    bce_in_place_difference = compiled.pop(4)
    assert bce_in_place_difference == 0
    assert min(compiled) > 0
    in_place = compiled.pop(3)
    assert in_place == compiled[0]
    np.testing.assert_allclose(compiled, reference, rtol=1e-5)


@pytest.mark.parametrize("second", [-60.0, -86.9, -87.5])
def test_a_wide_float32_row_of_tiny_terms_sums_them_to_float32s_digits(second):
    """10,000 classes, the label's logit 100 above all but one other: the
    thousands of subnormal terms (each rounded by up to all its digits in
    float32) are summed in double until one term is large enough to carry
    the sum (it had been 3.4e-4 off with that term at -86.9)."""
    biases = np.full(10000, -100.0)
    biases[0], biases[1] = 0.0, second
    losses = []
    for Net in (cb.Network, cb.reference.Network):
        net = Net([1, 10000], ["softmax"], loss="cross_entropy", dtype="float32")
        net.set_params([np.zeros((1, 10000))], [biases])
        losses.append(net.loss(np.zeros((1, 1)), np.array([0])))
    assert losses[0] == pytest.approx(losses[1], rel=1e-6, abs=0)


@pytest.mark.parametrize("gap", [300.37, 600.61, 744.9])
def test_float32_confident_gaps_are_taken_exactly(gap):
    """The double sum starts from each gap z - max in double, not rounded to
    float32 (which cost 3e-5 of the loss at a gap of 600.61)."""
    logits = np.array([[gap, 0.7, -1.3]], dtype=np.float32)
    compiled = cb.ops.cross_entropy(logits, np.array([0]))[0]
    assert compiled == pytest.approx(cb.reference.ops.cross_entropy(logits, np.array([0]))[0],
                                     rel=1e-12, abs=0)


def test_an_infinite_logit_gives_the_same_float32_and_float64_loss():
    """+inf beside finite logits: NaN in both dtypes (a float32 row with it
    once took the double sum, which left the max's own NaN gap out: inf)."""
    with np.errstate(invalid="ignore"):
        for dtype in (np.float32, np.float64):
            logits = np.array([[np.inf, 0.0, 1.0]], dtype=dtype)
            assert np.isnan(cb.ops.cross_entropy(logits, np.array([2]))[0])


@pytest.mark.parametrize("row", [[0.0, np.nan], [0.0, -100.0, np.nan, -200.0], [np.nan, -100.0, 0.0]],
                         ids=["beside the maximum", "among confident gaps", "first"])
def test_a_nan_logit_makes_the_float32_cross_entropy_nan(row):
    """Also in a row whose other gaps are beyond float32's normal range (the
    sum taken in double must not skip the NaN)."""
    logits = np.array([row], dtype=np.float32)
    one_hot = np.eye(len(row), dtype=np.float32)[[1 if np.isnan(row[0]) else 0]]
    for ops in (cb.ops, cb.reference.ops):
        with np.errstate(invalid="ignore"):
            for targets in (one_hot.argmax(axis=1), one_hot):
                assert np.isnan(ops.cross_entropy(logits, targets)[0])


def test_float32_mse_whose_difference_overflows_float32():
    """a - y beyond float32's range while its square is within float64's:
    the same finite loss in both implementations (the reference once took
    the difference in float32: inf), and the same refusal of the step."""
    errors = []
    for Net in (cb.Network, cb.reference.Network):
        net = Net([1, 1], ["identity"], dtype="float32")
        net.set_params([np.ones((1, 1))], [np.zeros(1)])
        X, Y = np.array([[3e38]]), np.array([[-3e38]])
        assert net.loss(X, Y) == pytest.approx(np.float64(np.float32(3e38)) ** 2 * 4)
        with pytest.raises(FloatingPointError) as error:
            net.train_step(X, Y)
        errors.append(str(error.value))
    assert errors[0] == errors[1]


# --------------------------------------------------------------------------
# Seeded initialisation
# --------------------------------------------------------------------------

ARCH = ([5, 7, 4, 3], ["relu", "tanh", "softmax"])


def params_of(Net, seed, dtype="float64", init="auto"):
    return sum(Net(*ARCH, loss="cross_entropy", dtype=dtype, seed=seed, init=init).get_params(), [])


def test_same_seed_same_parameters(Net, dtype):
    for a, b in zip(params_of(Net, 42, dtype), params_of(Net, 42, dtype), strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("init", ["auto", "he", "xavier"])
def test_same_seed_same_parameters_in_both_implementations(dtype, init):
    """The contract: the same seed gives the same initial parameters, in both implementations."""
    compiled = params_of(cb.Network, 2024, dtype, init)
    reference = params_of(cb.reference.Network, 2024, dtype, init)
    for a, b in zip(compiled, reference, strict=True):
        assert a.dtype == b.dtype == np.dtype(dtype)
        np.testing.assert_array_equal(a, b)


def test_different_seeds_differ(Net):
    a, b = params_of(Net, 1), params_of(Net, 2)
    for wa, wb in zip(a[:3], b[:3]):
        assert not np.array_equal(wa, wb)


def test_biases_start_at_zero(Net, dtype):
    net = Net(*ARCH, dtype=dtype, seed=5)
    weights, biases = net.get_params()
    for b, width in zip(biases, ARCH[0][1:]):
        assert b.shape == (width,)
        np.testing.assert_array_equal(b, 0)
    for W in weights:
        assert np.all(np.isfinite(W)) and np.any(W != 0)


FAN_IN, FAN_OUT = 100, 900  # He and Xavier scales differ by a factor sqrt(10) here
HE_STD = np.sqrt(2.0 / FAN_IN)
XAVIER_STD = np.sqrt(2.0 / (FAN_IN + FAN_OUT))


@pytest.mark.parametrize(
    "activation, init, expected",
    [
        ("sigmoid", "he", HE_STD),
        ("relu", "xavier", XAVIER_STD),
        ("relu", "auto", HE_STD),
        ("leaky_relu", "auto", HE_STD),
        ("tanh", "auto", XAVIER_STD),
        ("sigmoid", "auto", XAVIER_STD),
        ("identity", "auto", XAVIER_STD),
    ],
)
def test_init_scale(Net, activation, init, expected):
    """He: Var(W) = 2 / fan_in; Xavier/Glorot: Var(W) = 2 / (fan_in + fan_out); zero mean."""
    net = Net([FAN_IN, FAN_OUT], [activation], init=init, seed=3)
    W = net.get_params()[0][0]
    assert W.shape == (FAN_IN, FAN_OUT)
    assert abs(W.std() / expected - 1) < 0.1
    assert abs(W.mean()) < 0.05 * expected


def test_auto_init_is_per_layer(Net):
    """'auto' chooses He or Xavier for each layer by that layer's activation."""
    net = Net([FAN_IN, FAN_OUT, FAN_IN, FAN_OUT], ["relu", "tanh", "leaky_relu"], seed=4)
    W1, W2, W3 = net.get_params()[0]
    assert abs(W1.std() / HE_STD - 1) < 0.1
    assert abs(W2.std() / XAVIER_STD - 1) < 0.1
    assert abs(W3.std() / HE_STD - 1) < 0.1


# --------------------------------------------------------------------------
# dtypes of results, and copies in and out
# --------------------------------------------------------------------------


@pytest.mark.parametrize("spelling", ["name", "numpy"])
def test_every_result_has_the_net_dtype(Net, dtype, spelling, rng):
    """Parameters, outputs and gradients are arrays of net.dtype; losses are Python floats."""
    given = dtype if spelling == "name" else np.dtype(dtype).type
    net = Net([3, 4, 2], ["relu", "sigmoid"], loss="bce", dtype=given, seed=0)
    assert net.dtype == np.dtype(dtype)
    other = np.float32 if dtype == "float64" else np.float64
    X = rng.normal(size=(5, 3)).astype(other)
    Y = rng.uniform(size=(5, 2)).astype(other)
    for p in sum(net.get_params(), []):
        assert p.dtype == np.dtype(dtype)
    assert net.forward(X).dtype == np.dtype(dtype)
    assert net.predict(X[0]).dtype == np.dtype(dtype)
    assert type(net.loss(X, Y)) is float
    loss, grads = net.loss_and_gradients(X, Y)
    assert type(loss) is float
    for dW, db in grads:
        assert dW.dtype == db.dtype == np.dtype(dtype)
    assert type(net.train_step(X, Y)) is float
    history = net.fit(X, Y, epochs=2, batch_size=2, seed=0)
    assert len(history["loss"]) == 2 and all(np.isfinite(history["loss"]))
    for p in sum(net.get_params(), []):
        assert p.dtype == np.dtype(dtype)


def test_set_params_casts_to_the_net_dtype(Net, dtype):
    net = Net([2, 2], ["identity"], dtype=dtype)
    net.set_params([np.array([[1, 2], [3, 4]])], [np.array([0.5, -0.5], dtype=np.float32)])
    W, b = net.get_params()[0][0], net.get_params()[1][0]
    assert W.dtype == b.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(W, [[1, 2], [3, 4]])
    np.testing.assert_array_equal(net.forward(np.array([[1.0, 1.0]])), [[4.5, 5.5]])


def test_params_are_copied_in_and_out(Net):
    """get_params returns copies, and set_params copies: later mutation changes nothing."""
    net = Net([2, 2], ["identity"], seed=0)
    W = np.array([[1.0, 0.0], [0.0, 1.0]])
    b = np.zeros(2)
    net.set_params([W], [b])
    W[0, 0] = 99.0
    b[1] = 99.0
    got_W, got_b = net.get_params()
    got_W[0][1, 1] = -5.0
    got_b[0][0] = -5.0
    np.testing.assert_array_equal(net.forward(np.array([[2.0, 3.0]])), [[2.0, 3.0]])


# --------------------------------------------------------------------------
# The two implementations agree (float64: 1e-10 relative, float32: 1e-4)
# --------------------------------------------------------------------------


@pytest.mark.parametrize("output", sorted(OUTPUT_LOSSES))
def test_implementations_agree(dtype, output, rng):
    out_act, loss = OUTPUT_LOSSES[output]
    arch = ([6, 9, 7, 3], ["leaky_relu", "tanh", out_act])
    X = rng.normal(size=(10, 6))
    Y = targets(output, 10, 3)
    opt = lambda: cb.SGD(lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-3)
    nets = [Net(*arch, loss=loss(), optimizer=opt(), dtype=dtype, seed=9)
            for Net in (cb.Network, cb.reference.Network)]
    assert_implementations_agree(nets, X, Y, dtype, steps=3)


@pytest.mark.parametrize("m", [1, 3, 97, 300])
def test_implementations_agree_on_odd_larger_shapes(dtype, m, rng):
    """Shapes that are not multiples of any tile size (GEMM edges, 1-row batches) agree too."""
    arch = ([67, 130, 33, 5], ["relu", "sigmoid", "softmax"])
    X = rng.normal(size=(m, 67))
    Y = rng.integers(0, 5, size=m)
    nets = [Net(*arch, loss="cross_entropy", optimizer=cb.SGD(lr=0.05, momentum=0.5), dtype=dtype, seed=21)
            for Net in (cb.Network, cb.reference.Network)]
    assert_implementations_agree(nets, X, Y, dtype, steps=2)


def assert_implementations_agree(nets, X, Y, dtype, steps):
    """Compiled and reference nets agree on forward, loss, gradients and ``steps`` steps."""
    rtol = 1e-10 if dtype == "float64" else 1e-4
    np.testing.assert_allclose(nets[0].forward(X), nets[1].forward(X), rtol=rtol, atol=rtol * 1e-2)
    (la, ga), (lb, gb) = (n.loss_and_gradients(X, Y) for n in nets)
    assert la == pytest.approx(lb, rel=rtol)
    for (dWa, dba), (dWb, dbb) in zip(ga, gb):
        scale = max(np.abs(dWb).max(), np.abs(dbb).max())
        np.testing.assert_allclose(dWa, dWb, rtol=rtol, atol=rtol * scale)
        np.testing.assert_allclose(dba, dbb, rtol=rtol, atol=rtol * scale)
    for _ in range(steps):
        la, lb = (n.train_step(X, Y) for n in nets)
        assert la == pytest.approx(lb, rel=rtol)
    for pa, pb in zip(sum(nets[0].get_params(), []), sum(nets[1].get_params(), [])):
        np.testing.assert_allclose(pa, pb, rtol=rtol, atol=rtol * np.abs(pb).max())


@pytest.mark.parametrize("optimizer, state", [
    # After the first step from zero state: Adam's m = (1 - beta1) g and
    # v = (1 - beta2) g g; RMSprop's square average (1 - alpha) g g.
    (cb.Adam(lr=1e-3), lambda g: ((np.float32(1 - 0.9) * g, (np.float32(1 - 0.999) * g) * g))),
    (cb.RMSprop(lr=1e-3), lambda g: ((np.float32(1 - 0.99) * g) * g, None)),
])
def test_float32_optimizer_state_is_float32_arithmetic(optimizer, state, rng):
    """The moments of a float32 step bit for bit against float32 NumPy, with
    1 - beta rounded to float32 as NumPy rounds it. Cython writes a literal 1
    as 1.0: the kernels once computed (1.0 - beta) g in double."""
    net = cb.Network([5, 4, 3], ["relu", "identity"], optimizer=optimizer, dtype="float32",
                     seed=0)
    X = rng.standard_normal((6, 5)).astype(np.float32)
    Y = rng.standard_normal((6, 3)).astype(np.float32)
    _, grads = net.loss_and_gradients(X, Y)
    net.train_step(X, Y)
    moment1, moment2, _ = net._optimizer_state()
    views = net._engine._views(moment1), net._engine._views(moment2)
    for layer, (grad_weights, grad_bias) in enumerate(grads):
        for which, (weights, biases) in enumerate(views):
            expected = state(grad_weights)[which], state(grad_bias)[which]
            if expected[0] is None:
                continue
            np.testing.assert_array_equal(weights[layer], expected[0])
            np.testing.assert_array_equal(biases[layer], expected[1])


def test_numpy_set_to_raise_does_not_turn_underflow_into_divergence(Net, dtype):
    """A sigmoid output at z = ±800 underflows exp to 0 on the way to a loss of
    exactly 0: a finite step, whatever np.seterr says. The reference's NumPy
    expressions raised "underflow encountered in exp" from predict, loss and
    train_step, and fit reported it as a divergence."""
    X, Y = np.array([[40.0], [-40.0]]), np.array([[1.0], [0.0]])
    net = Net([1, 1], ["sigmoid"], loss="bce", dtype=dtype)
    net.set_params([np.array([[20.0]])], [np.zeros(1)])
    with np.errstate(all="raise"):
        out = net.predict(X)
        assert net.loss(X, Y) == 0.0
        assert net.train_step(X, Y) == 0.0
        history = net.fit(X, Y, epochs=2, batch_size=2)
    np.testing.assert_array_equal(out, [[1.0], [0.0]])
    assert history["loss"] == [0.0, 0.0] and history.stop_reason == "completed"


def test_numpy_set_to_raise_leaves_trace_and_check_gradients_quiet(Net, dtype):
    """trace and check_gradients recompute the step with the reference maths:
    under np.seterr(all="raise") its exp(-1000) underflowing to 0 raised
    FloatingPointError ("underflow encountered in exp", the error the contract
    keeps for a diverging step) where train_step on the same batch succeeds."""
    X = np.random.default_rng(0).standard_normal((4, 3)) * 1000
    Y = np.array([[0.0], [1.0], [1.0], [0.0]])
    net = Net([3, 4, 1], ["sigmoid", "sigmoid"], loss="bce", dtype=dtype, seed=0)
    with np.errstate(all="raise"):
        trace = net.trace(X, Y)
        check = cb.check_gradients(net, X, Y, max_checks_per_layer=3, seed=0)
        loss = net.loss(X, Y)
    assert trace.loss == pytest.approx(loss, rel=1e-5)
    assert len(check.per_layer) == 2
    # A loss that overflows (an output of 4e200, squared): inf - inf in the
    # finite difference is a result too.
    net = Net([2, 2, 1], ["tanh", "identity"], seed=0)
    net.set_params([np.full((2, 2), 1e200), np.full((2, 1), 1e200)], [np.zeros(2), np.zeros(1)])
    with np.errstate(all="raise"):
        check = cb.check_gradients(net, np.ones((2, 2)), np.ones((2, 1)))
    assert check.max == np.inf


def test_numpy_set_to_raise_casts_values_below_float32s_range_to_zero(Net):
    """1e-50 is 0 in float32, as NumPy casts it by default: under
    np.seterr(all="raise") the cast's underflow was reported as a value
    "beyond float32's range" (an overflow) for X, Y and the parameters."""
    net = Net([3, 1], ["identity"], dtype="float32", seed=0)
    tiny = np.full((2, 3), 1e-50)
    expected = net.forward(np.zeros((2, 3)))
    with np.errstate(all="raise"):
        np.testing.assert_array_equal(net.forward(tiny), expected)
        assert net.loss(tiny, np.full((2, 1), 1e-50)) == net.loss(np.zeros((2, 3)),
                                                                  np.zeros((2, 1)))
        net.set_params([np.full((3, 1), 1e-50)], [np.full(1, 1e-50)])
    weights, biases = net.get_params()
    assert not weights[0].any() and not biases[0].any()


def test_adam_at_a_huge_learning_rate_with_a_gradient_the_size_of_eps(dtype):
    """The compiled step rescales lr / (1 - β1^t), which overflows, and eps
    with it: a gradient of 1e-8, as large as eps, shows whether eps was
    rescaled too (the tests above had gradients far above eps)."""
    lr = 1e38 if dtype == "float32" else 1e308
    results = []
    for Net in (cb.Network, cb.reference.Network):
        net = Net([1, 1], ["identity"], optimizer=cb.Adam(lr=lr), dtype=dtype)
        net.set_params([np.full((1, 1), 5e-9)], [np.zeros(1)])
        net.train_step(np.array([[1.0]]), np.array([[0.0]]))    # dL/dA = 2 x 5e-9
        results.append(np.concatenate([p.ravel() for p in sum(net.get_params(), [])]))
    compiled, reference = results
    assert np.isfinite(compiled).all()
    np.testing.assert_allclose(compiled, reference, rtol=1e-5)
    assert compiled[1] == pytest.approx(-lr / 2, rel=1e-5)   # m / (sqrt(v) + eps), g = eps


def test_a_float32_rmsprop_momentum_that_rounds_to_zero_keeps_the_reference_buffer():
    """momentum = 1e-50 is 0 in float32: the step is the one without momentum,
    and the buffer becomes 0 x buf + step, as the reference's (the compiled
    step kept the old buffer, so a later momentum of 0.9 stepped elsewhere)."""
    nets = [Net([1, 1], ["identity"], optimizer=cb.RMSprop(lr=0.01, momentum=1e-50),
                dtype="float32") for Net in (cb.Network, cb.reference.Network)]
    X, Y = np.array([[1.0]]), np.array([[0.0]])
    for net in nets:
        net.set_params([np.ones((1, 1))], [np.zeros(1)])
        net.train_step(X, Y)
    compiled, reference = (net.__getstate__()["optimizer_state"] for net in nets)
    for a, b in zip(compiled[:2], reference[:2]):
        for x, y in zip(a, b):
            np.testing.assert_allclose(x, y, rtol=1e-6)
    for net in nets:
        net.optimizer.momentum = 0.9
        net.train_step(X, Y)
    np.testing.assert_allclose(nets[0].get_params()[0][0], nets[1].get_params()[0][0], rtol=1e-6)


@pytest.mark.parametrize("weight_decay", [0.0, 1e-50], ids=["one-block", "block-per-array"])
@pytest.mark.parametrize("optimizer", [lambda **kw: cb.Adam(lr=0.01, eps=1e-50, **kw),
                                       lambda **kw: cb.RMSprop(lr=0.01, eps=1e-50, **kw),
                                       lambda **kw: cb.RMSprop(lr=0.01, eps=1e-50, momentum=0.5,
                                                               **kw)],
                         ids=["adam", "rmsprop", "rmsprop-momentum"])
def test_an_eps_that_rounds_to_zero_in_float32_steps_every_block_length(optimizer, weight_decay):
    """eps = 1e-50 is 0 in float32: Adam's and RMSprop's division is then
    0 / 0 wherever a second moment is 0. The compiled update runs whole
    vectors and pads the rest of a block with zeros, whose lanes must not
    count as a NaN step. Blocks of every length past a multiple of 16
    (without weight decay the update takes W and b as one block) and of 1
    to 70 (with one, W and b apart; 1e-50 is 0 in float32 and changes
    nothing), every gradient nonzero: each step is taken (the reference
    agrees), none refused."""
    rng = np.random.default_rng(3)
    # [2, n] for n = 1 ... 16: W and b together are 3n parameters, every
    # remainder past a multiple of 16 (and of 8); W and b apart, 2n and n.
    shapes = [(1, 1), (3, 2), (5, 3), (7, 5), (1, 17), (2, 35)] + [(2, n) for n in range(1, 17)]
    for n_in, n_out in shapes:
        X = rng.normal(size=(9, n_in))
        Y = rng.normal(size=(9, n_out))
        results = []
        for Net in (cb.Network, cb.reference.Network):
            net = Net([n_in, n_out], ["identity"], optimizer=optimizer(weight_decay=weight_decay),
                      dtype="float32", seed=0)
            for _ in range(3):
                net.train_step(X, Y)
            results.append(np.concatenate([p.ravel() for p in sum(net.get_params(), [])]))
        compiled, reference = results
        assert np.isfinite(compiled).all()
        np.testing.assert_allclose(compiled, reference, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("optimizer", [
    lambda **kw: cb.SGD(lr=0.05, **kw),
    lambda **kw: cb.SGD(lr=0.05, momentum=0.9, **kw),
    lambda **kw: cb.SGD(lr=0.05, momentum=0.9, nesterov=True, clip_value=0.02, **kw),
    lambda **kw: cb.Adam(lr=0.01, **kw),
    lambda **kw: cb.Adam(lr=0.01, clip_norm=0.05, **kw),
    lambda **kw: cb.RMSprop(lr=0.01, **kw),
    lambda **kw: cb.RMSprop(lr=0.01, momentum=0.5, **kw)],
    ids=["sgd", "momentum", "nesterov-clip-value", "adam", "adam-clip-norm", "rmsprop",
         "rmsprop-momentum"])
def test_an_update_without_weight_decay_is_the_one_layer_by_layer(optimizer, dtype):
    """Without weight decay the compiled step updates every parameter in one
    pass over the flat arrays; with it, layer by layer, each bias block
    apart (biases take no decay). A decay of 1e-300 changes no value here
    (every gradient is far above 1e-300 times its weight; in float32 the
    decay is 0), so both ways must give the same bits, parameters and
    optimizer state, step after step: the one pass covers every parameter
    of every layer, each with its own state."""
    assert_one_pass_is_layer_by_layer(optimizer, dtype, [5, 7, 3, 2], steps=4)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("optimizer", [lambda **kw: cb.SGD(lr=0.05, momentum=0.9, **kw),
                                       lambda **kw: cb.Adam(lr=0.01, **kw),
                                       lambda **kw: cb.RMSprop(lr=0.01, momentum=0.5, **kw)],
                         ids=["momentum", "adam", "rmsprop-momentum"])
def test_a_one_pass_update_over_chunks_and_in_place_is_the_one_layer_by_layer(optimizer,
                                                                             threads):
    """As above on 36,542 parameters: beyond one thread chunk of the update
    (32,768), its chunks split over two threads, and with Adam's and
    RMSprop's moments written in place where the bounds allow it (both
    nets)."""
    before = cb.get_num_threads()
    cb.set_num_threads(threads)
    try:
        assert_one_pass_is_layer_by_layer(optimizer, "float64", [200, 180, 2], steps=5,
                                          moments_in_place=True)
    finally:
        cb.set_num_threads(before)


def assert_one_pass_is_layer_by_layer(optimizer, dtype, sizes, steps, moments_in_place=None):
    rng = np.random.default_rng(5)
    batches = [(rng.normal(size=(6, sizes[0])), rng.normal(size=(6, sizes[-1])))
               for _ in range(steps)]
    hidden = ["tanh", "sigmoid"] * len(sizes)
    nets = [cb.Network(sizes, hidden[:len(sizes) - 2] + ["identity"], dtype=dtype, seed=4,
                       optimizer=optimizer(weight_decay=weight_decay))
            for weight_decay in (0.0, 1e-300)]
    if moments_in_place is not None:
        for net in nets:
            net._engine.moments_in_place = moments_in_place
    for step, (X, Y) in enumerate(batches, 1):
        for net in nets:
            net.train_step(X, Y)
        # (Reading the state makes an engine forget its bounds: with moments
        # in place, only after the last step.)
        if step == steps or not moments_in_place:
            one_pass, by_layer = ([*sum(net.get_params(), []),
                                   *net.__getstate__()["optimizer_state"][:2]] for net in nets)
            for a, b in zip(one_pass, by_layer, strict=True):
                assert a is None and b is None or a.tobytes() == b.tobytes()
    if moments_in_place and isinstance(nets[0].optimizer, (cb.Adam, cb.RMSprop)):
        assert nets[0]._engine.steps_in_place == nets[1]._engine.steps_in_place == steps - 1
