"""Back-propagated gradients equal central finite differences of the loss.

As scikit-learn's ``test_gradient``: float64, every parameter, every hidden
activation against every output-activation/loss pair, several outputs, two
hidden layers. Since the finite differences are taken of ``net.loss``, a
second group of tests checks that ``net.loss`` and ``net.forward`` compute
the contract's definitions, so the gradient is of the right function.
(``cb.check_gradients``, the checker users call, has its own tests in
test_gradcheck.py.)
"""
import math

import numpy as np
import pytest

import cbackprop as cb
from registry_cases import HIDDEN


# name -> (output activation, loss factory, target kind)
OUTPUTS = {
    "identity+mse": ("identity", lambda: "mse", "real"),
    "sigmoid+mse": ("sigmoid", lambda: "mse", "unit"),
    "tanh+mse": ("tanh", lambda: "mse", "real"),
    "softmax+mse": ("softmax", lambda: "mse", "unit"),
    "sigmoid+bce": ("sigmoid", lambda: "bce", "unit"),
    "softmax+ce_onehot": ("softmax", lambda: "cross_entropy", "onehot"),
    "softmax+ce_labels": ("softmax", lambda: cb.CrossEntropy(), "labels"),
    "identity+mse_scaled_sum": ("identity", lambda: cb.MSE(scale=0.5, reduction="sum"), "real"),
    "sigmoid+mse_scaled_mean": ("sigmoid", lambda: cb.MSE(scale=3.0), "unit"),
}

SIZES = [4, 5, 6, 3]
M = 7
EPS = 1e-6


def make_targets(kind, rng, m=M, k=SIZES[-1]):
    if kind == "real":
        return rng.normal(size=(m, k))
    if kind == "unit":
        return rng.uniform(size=(m, k))
    labels = np.arange(m) % k
    rng.shuffle(labels)
    if kind == "labels":
        return labels.astype(np.int64)
    return np.eye(k)[labels]


# The hidden activations, written out independently of the package.
HIDDEN_FORWARD = {
    "sigmoid": lambda z: 1 / (1 + np.exp(-z)),
    "relu": lambda z: np.maximum(z, 0),
    "tanh": np.tanh,
    "identity": lambda z: z,
    "leaky_relu": lambda z: np.where(z > 0, z, 0.01 * z),
    # Φ(z) from the C library's erf, element by element.
    "gelu": lambda z: z * (1 + np.vectorize(math.erf)(z / math.sqrt(2))) / 2,
    "gelu_tanh": lambda z: z * (1 + np.tanh(math.sqrt(2 / math.pi) * (z + 0.044715 * z**3))) / 2,
    "silu": lambda z: z / (1 + np.exp(-z)),
}


def hidden_preactivations(weights, biases, activations, X):
    """The Z of each hidden layer, computed in plain NumPy."""
    A, out = X, []
    for W, b, name in zip(weights[:-1], biases[:-1], activations[:-1]):
        Z = A @ W + b
        out.append(Z)
        A = HIDDEN_FORWARD[name](Z)
    return out


def random_problem(Net, hidden, output, rng):
    """A small random float64 net with nonzero biases, away from the relu kink."""
    out_act, loss, kind = OUTPUTS[output]
    activations = [hidden, hidden, out_act]
    net = Net(SIZES, activations, loss=loss(), dtype="float64", seed=7)
    for _ in range(100):
        weights = [rng.normal(scale=0.8, size=(a, b)) for a, b in zip(SIZES[:-1], SIZES[1:])]
        biases = [rng.normal(scale=0.3, size=b) for b in SIZES[1:]]
        X = rng.normal(size=(M, SIZES[0]))
        Zs = hidden_preactivations(weights, biases, activations, X)
        if min(np.abs(Z).min() for Z in Zs) > 1e-3:
            break
    else:  # pragma: no cover - would need 100 unlucky draws in a row
        pytest.fail("could not draw a problem away from the relu kink")
    net.set_params(weights, biases)
    return net, X, make_targets(kind, rng)


def numerical_gradients(net, X, Y):
    """Central differences of net.loss over every weight and bias."""
    weights, biases = net.get_params()
    params = weights + biases
    grads = []
    for p in params:
        g = np.zeros_like(p)
        for idx in np.ndindex(p.shape):
            old = p[idx]
            p[idx] = old + EPS
            net.set_params(weights, biases)
            plus = net.loss(X, Y)
            p[idx] = old - EPS
            net.set_params(weights, biases)
            minus = net.loss(X, Y)
            p[idx] = old
            g[idx] = (plus - minus) / (2 * EPS)
        grads.append(g)
    net.set_params(weights, biases)
    n = len(weights)
    return list(zip(grads[:n], grads[n:]))


def assert_gradients_close(analytic, numeric):
    a = np.concatenate([np.ravel(g) for pair in analytic for g in pair])
    n = np.concatenate([np.ravel(g) for pair in numeric for g in pair])
    scale = max(np.linalg.norm(a) + np.linalg.norm(n), 1e-12)
    rel = np.linalg.norm(a - n) / scale
    assert rel < 1e-6, f"relative gradient error {rel:.3g}"
    np.testing.assert_allclose(a, n, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("output", sorted(OUTPUTS))
@pytest.mark.parametrize("hidden", HIDDEN)
def test_gradients_match_finite_differences(Net, hidden, output, rng):
    """loss_and_gradients equals central differences of loss, for all parameters."""
    net, X, Y = random_problem(Net, hidden, output, rng)
    weights, biases = net.get_params()
    loss, grads = net.loss_and_gradients(X, Y)
    assert loss == pytest.approx(net.loss(X, Y), rel=1e-12)
    assert len(grads) == len(weights)
    for (dW, db), W, b in zip(grads, weights, biases):
        assert dW.shape == W.shape and db.shape == b.shape
    assert_gradients_close(grads, numerical_gradients(net, X, Y))


def test_gradient_check_detects_a_wrong_gradient(Net, rng):
    """The checker itself is not vacuous: a perturbed gradient fails it."""
    net, X, Y = random_problem(Net, "tanh", "identity+mse", rng)
    _, grads = net.loss_and_gradients(X, Y)
    numeric = numerical_gradients(net, X, Y)
    grads[1] = (grads[1][0] * 1.001, grads[1][1])
    with pytest.raises(AssertionError):
        assert_gradients_close(grads, numeric)


# --------------------------------------------------------------------------
# The function being differentiated is the contract's.
# --------------------------------------------------------------------------


def np_activation(name, Z):
    if name in HIDDEN_FORWARD:
        return HIDDEN_FORWARD[name](Z)
    if name == "softmax":
        E = np.exp(Z - Z.max(axis=1, keepdims=True))
        return E / E.sum(axis=1, keepdims=True)
    raise AssertionError(name)


def np_forward(weights, biases, activations, X):
    A = X
    for W, b, name in zip(weights, biases, activations):
        A = np_activation(name, A @ W + b)
    return A


@pytest.mark.parametrize("activation", HIDDEN + ["softmax"])
def test_forward_matches_numpy(Net, activation, rng):
    """Each activation (leaky_relu with slope 0.01) as defined, with Z = A_prev @ W + b."""
    sizes = [3, 4, 5]
    acts = ["leaky_relu" if activation != "leaky_relu" else "tanh", activation]
    net = Net(sizes, acts, dtype="float64", seed=3)
    weights = [rng.normal(scale=2.0, size=(3, 4)), rng.normal(scale=2.0, size=(4, 5))]
    biases = [rng.normal(size=4), rng.normal(size=5)]
    net.set_params(weights, biases)
    X = rng.normal(size=(6, 3))
    np.testing.assert_allclose(net.forward(X), np_forward(weights, biases, acts, X), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("output", sorted(OUTPUTS))
def test_loss_matches_contract_definition(Net, output, rng):
    """MSE = scale*sum((A-Y)^2)/N (or /1 with 'sum'), BCE = -sum(Y log A + (1-Y) log(1-A))/N,
    cross-entropy = -sum(Y log softmax(Z))/m, with N = m * sizes[-1]."""
    net, X, Y = random_problem(Net, "tanh", output, rng)
    out_act, loss_factory, kind = OUTPUTS[output]
    weights, biases = net.get_params()
    A = np_forward(weights, biases, ["tanh", "tanh", out_act], X)
    N = A.size
    loss = loss_factory()
    if isinstance(loss, str):
        loss = {"mse": cb.MSE(), "bce": cb.BCE(), "cross_entropy": cb.CrossEntropy()}[loss]
    if isinstance(loss, cb.MSE):
        total = loss.scale * np.sum((A - Y) ** 2)
        expected = total / N if loss.reduction == "mean" else total
    elif isinstance(loss, cb.BCE):
        expected = -np.sum(Y * np.log(A) + (1 - Y) * np.log(1 - A)) / N
    else:
        onehot = np.eye(A.shape[1])[Y] if kind == "labels" else Y
        expected = -np.sum(onehot * np.log(A)) / A.shape[0]
    assert net.loss(X, Y) == pytest.approx(expected, rel=1e-12)


def test_integer_labels_equal_one_hot(Net, rng):
    """Cross-entropy with labels (m,) gives the loss and gradients of the one-hot (m, k) targets."""
    net, X, labels = random_problem(Net, "relu", "softmax+ce_labels", rng)
    onehot = np.eye(SIZES[-1])[labels]
    loss_l, grads_l = net.loss_and_gradients(X, labels)
    loss_o, grads_o = net.loss_and_gradients(X, onehot)
    assert loss_l == pytest.approx(loss_o, rel=1e-12)
    for (dWl, dbl), (dWo, dbo) in zip(grads_l, grads_o):
        np.testing.assert_allclose(dWl, dWo, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(dbl, dbo, rtol=1e-12, atol=1e-15)
