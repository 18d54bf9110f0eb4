"""cb.check_gradients: back-propagated gradients against float64 central differences.

It must report tiny errors for correct networks (every activation and loss,
both implementations, both dtypes), a large error for the one layer whose
gradient is wrong, never change the network, and reject bad arguments.
"""
import numpy as np
import pytest
from test_backprop_gradients import HIDDEN_FORWARD

import cbackprop as cb

HIDDEN = sorted(HIDDEN_FORWARD)

# name -> (output activation, loss, target kind)
OUTPUTS = {
    "identity+mse": ("identity", "mse", "real"),
    "sigmoid+mse": ("sigmoid", "mse", "unit"),
    "tanh+mse_sum": ("tanh", cb.MSE(scale=0.5, reduction="sum"), "real"),
    "softmax+mse": ("softmax", "mse", "unit"),
    "sigmoid+bce": ("sigmoid", "bce", "unit"),
    "softmax+ce_onehot": ("softmax", "cross_entropy", "onehot"),
    "softmax+ce_labels": ("softmax", "cross_entropy", "labels"),
}

SIZES = [4, 5, 6, 3]
M = 7
# Worst relative error allowed for a correct network (see check_gradients).
TOLERANCE = {"float64": 1e-6, "float32": 1e-3}


def targets(kind, rng, m=M, k=SIZES[-1]):
    if kind == "real":
        return rng.normal(size=(m, k))
    if kind == "unit":
        return rng.uniform(size=(m, k))
    labels = rng.permutation(np.arange(m) % k)
    return labels.astype(np.int64) if kind == "labels" else np.eye(k)[labels]


def problem(Net, hidden, output, dtype, rng):
    """A small random network with nonzero biases whose relu pre-activations stay
    well away from the kink (so no finite difference straddles it)."""
    out_act, loss, kind = OUTPUTS[output]
    net = Net(SIZES, [hidden, hidden, out_act], loss=loss, dtype=dtype, seed=1)
    for _ in range(200):
        weights = [rng.normal(scale=0.8, size=(a, b)) for a, b in zip(SIZES[:-1], SIZES[1:])]
        biases = [rng.normal(scale=0.3, size=b) for b in SIZES[1:]]
        X = rng.normal(size=(M, SIZES[0]))
        A, closest = X, np.inf
        for W, b in zip(weights[:-1], biases[:-1]):
            Z = A @ W + b
            closest = min(closest, np.abs(Z).min())
            A = HIDDEN_FORWARD[hidden](Z)
        if closest > 1e-2:
            break
    else:  # pragma: no cover - 200 unlucky draws in a row
        pytest.fail("could not draw a problem away from the relu kink")
    net.set_params(weights, biases)
    return net, X, targets(kind, rng)


@pytest.mark.parametrize("output", sorted(OUTPUTS))
@pytest.mark.parametrize("hidden", HIDDEN)
def test_correct_network_has_tiny_errors(Net, hidden, output, dtype, rng):
    """Every layer of a correct network: < 1e-6 in float64, < 1e-3 in float32."""
    net, X, Y = problem(Net, hidden, output, dtype, rng)
    result = cb.check_gradients(net, X, Y)
    assert isinstance(result, cb.GradientCheck)
    assert len(result.per_layer) == len(SIZES) - 1
    assert result.checked == tuple(a * b + b for a, b in zip(SIZES[:-1], SIZES[1:]))
    assert result.max == max(result.per_layer)
    assert result.max < TOLERANCE[dtype], result


def test_one_wrong_layer_is_caught(Net, dtype, rng, monkeypatch):
    """A gradient perturbed in one entry of layer 1's dW shows in layer 1 only."""
    net, X, Y = problem(Net, "tanh", "identity+mse", dtype, rng)
    correct = net.loss_and_gradients

    def perturbed(X, Y):
        loss, grads = correct(X, Y)
        dW, db = grads[1]
        dW = dW.copy()
        dW[2, 3] += 0.05 * np.abs(dW).max()
        grads[1] = (dW, db)
        return loss, grads

    monkeypatch.setattr(net, "loss_and_gradients", perturbed)
    result = cb.check_gradients(net, X, Y)
    assert result.per_layer[1] > 0.01, result
    assert result.per_layer[0] < TOLERANCE[dtype] and result.per_layer[2] < TOLERANCE[dtype], result


def test_a_wrong_bias_gradient_is_caught(Net, rng, monkeypatch):
    """The bias is checked too: a sign flip of the last layer's db is found."""
    net, X, Y = problem(Net, "sigmoid", "sigmoid+bce", "float64", rng)
    correct = net.loss_and_gradients

    def flipped(X, Y):
        loss, grads = correct(X, Y)
        grads[-1] = (grads[-1][0], -grads[-1][1])
        return loss, grads

    monkeypatch.setattr(net, "loss_and_gradients", flipped)
    result = cb.check_gradients(net, X, Y)
    assert result.per_layer[-1] > 0.5, result
    assert max(result.per_layer[:-1]) < 1e-6, result


@pytest.mark.parametrize("scale", [1e-12, 1.0, 1e6])
def test_the_verdict_does_not_depend_on_the_losss_scale(Net, scale, rng, monkeypatch):
    """The rounding floor follows the loss: with MSE's scale at 1e-12 every
    gradient is about 1e-12, and a sign flip of them all scores as at scale 1
    (an absolute floor of 1e-8 had scored it 1e-4), while the correct
    gradients stay tiny."""
    drawn, X, Y = problem(Net, "tanh", "identity+mse", "float64", rng)
    net = Net(SIZES, drawn.activations, loss=cb.MSE(scale=scale), seed=0)
    net.set_params(*drawn.get_params())
    assert cb.check_gradients(net, X, Y).max < 1e-6
    correct = net.loss_and_gradients

    def flipped(X, Y):
        loss, grads = correct(X, Y)
        return loss, [(-dW, -db) for dW, db in grads]

    monkeypatch.setattr(net, "loss_and_gradients", flipped)
    assert min(cb.check_gradients(net, X, Y).per_layer) > 1.9


@pytest.mark.parametrize("hidden", HIDDEN)
def test_a_correct_network_at_an_exact_minimum_scores_small(Net, hidden, rng):
    """At a loss of exactly 0 (targets the network's own outputs) every
    gradient is 0 and every difference a truncation of ~1e-12: each entry's
    floor includes its second difference, so the score stays far below a
    wrong gradient's (a floor of 1e-14 |L| / eps alone, 0 here, scored 1)."""
    drawn, X, _ = problem(Net, hidden, "identity+mse", "float64", rng)
    result = cb.check_gradients(drawn, X, drawn.forward(X))
    assert drawn.loss(X, drawn.forward(X)) == 0
    assert result.max < 1e-4, result


def test_non_finite_gradient_is_infinitely_wrong(Net, rng, monkeypatch):
    net, X, Y = problem(Net, "tanh", "identity+mse", "float64", rng)
    correct = net.loss_and_gradients

    def broken(X, Y):
        loss, grads = correct(X, Y)
        grads[0][0][0, 0] = np.nan
        return loss, grads

    monkeypatch.setattr(net, "loss_and_gradients", broken)
    result = cb.check_gradients(net, X, Y)
    assert result.per_layer[0] == np.inf and result.max == np.inf


def test_network_is_not_changed(Net, dtype):
    """Parameters bit-identical before and after; training continues the same."""
    net, X, Y = problem(Net, "relu", "softmax+ce_labels", dtype, np.random.default_rng(5))
    twin, _, _ = problem(Net, "relu", "softmax+ce_labels", dtype, np.random.default_rng(5))
    for network in (net, twin):  # Adam state that check_gradients must not disturb
        network.optimizer = cb.Adam(lr=1e-2)
        network.train_step(X, Y)
    weights, biases = net.get_params()
    cb.check_gradients(net, X, Y)
    after_w, after_b = net.get_params()
    for before, after in zip(weights + biases, after_w + after_b):
        assert before.dtype == after.dtype
        np.testing.assert_array_equal(after, before)
    # The optimizer state is untouched too: the next steps equal the twin's.
    for _ in range(2):
        assert net.train_step(X, Y) == twin.train_step(X, Y)
    for a, b in zip(sum(net.get_params(), []), sum(twin.get_params(), [])):
        np.testing.assert_array_equal(a, b)


def test_sampling_checks_at_most_k_entries_repeatably(Net, rng):
    net, X, Y = problem(Net, "tanh", "sigmoid+mse", "float64", rng)
    first = cb.check_gradients(net, X, Y, max_checks_per_layer=4, seed=3)
    again = cb.check_gradients(net, X, Y, max_checks_per_layer=4, seed=3)
    assert first.checked == (4, 4, 4)
    assert first.per_layer == again.per_layer
    assert first.max < 1e-6
    # A layer smaller than k is checked whole.
    assert cb.check_gradients(net, X, Y, max_checks_per_layer=25).checked == (25, 25, 21)


def test_sampled_check_still_finds_a_layer_wrong_everywhere(Net, rng, monkeypatch):
    net, X, Y = problem(Net, "tanh", "identity+mse", "float64", rng)
    correct = net.loss_and_gradients

    def doubled(X, Y):
        loss, grads = correct(X, Y)
        grads[0] = (2 * grads[0][0], 2 * grads[0][1])
        return loss, grads

    monkeypatch.setattr(net, "loss_and_gradients", doubled)
    result = cb.check_gradients(net, X, Y, max_checks_per_layer=3, seed=0)
    assert result.per_layer[0] > 0.3 and max(result.per_layer[1:]) < 1e-6, result


def test_seed_001_two_layer_network(Net):
    """The tutorial's 2-2-1 relu network and sample: every gradient right."""
    net = Net([2, 2, 1], ["relu", "identity"], loss="mse", optimizer=cb.SGD(lr=0.1), dtype="float64")
    net.set_params([np.array([[0.5, -0.4], [0.3, 0.1]]), np.array([[0.6], [-0.2]])],
                   [np.zeros(2), np.array([0.1])])
    result = cb.check_gradients(net, np.array([1.0, 2.0]), np.array([3.0]))
    assert result.max < 1e-8, result


def test_repr_names_the_numbers(Net, rng):
    net, X, Y = problem(Net, "tanh", "identity+mse", "float64", rng)
    text = repr(cb.check_gradients(net, X, Y, eps=1e-5))
    assert text.startswith("GradientCheck(max=") and "per_layer=[" in text and "eps=1e-05" in text


@pytest.mark.parametrize("eps", [0.0, -1e-6, float("nan"), float("inf"), 10**400])
def test_bad_eps_is_a_value_error(Net, eps, rng):
    net, X, Y = problem(Net, "tanh", "identity+mse", "float64", rng)
    with pytest.raises(ValueError, match="eps"):
        cb.check_gradients(net, X, Y, eps=eps)


def test_bad_arguments(Net, rng):
    net, X, Y = problem(Net, "tanh", "identity+mse", "float64", rng)
    with pytest.raises(TypeError, match="Network"):
        cb.check_gradients("not a network", X, Y)
    with pytest.raises(TypeError, match="eps"):
        cb.check_gradients(net, X, Y, eps="small")
    with pytest.raises(ValueError, match="max_checks_per_layer"):
        cb.check_gradients(net, X, Y, max_checks_per_layer=0)
    with pytest.raises(TypeError, match="max_checks_per_layer"):
        cb.check_gradients(net, X, Y, max_checks_per_layer=2.5)
    # X and Y go through the network's own checks.
    with pytest.raises(ValueError, match="X must have shape"):
        cb.check_gradients(net, X[:, :2], Y)
    with pytest.raises(ValueError, match="Y must have shape"):
        cb.check_gradients(net, X, Y[:3])
    bad = X.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        cb.check_gradients(net, bad, Y)
    with pytest.raises(TypeError):
        cb.check_gradients(net, X.astype(str), Y)
