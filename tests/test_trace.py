"""net.trace: one training step with every intermediate recorded.

Seed 001's two-layer walk-through must appear in it number for number; with
apply=False the network (parameters and optimizer state) is left exactly as
it was, with apply=True it is exactly as after train_step; the recorded
gradients and loss are the network's own.
"""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from test_seeds import B1, B2, TIGHT, TWO_LAYER_BATCHES, W1, W2, two_layer

import cbackprop as cb

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "trace_seed001.py"
# Recomputed intermediates against the network's own numbers.
CLOSE = {"float64": dict(rtol=1e-10, atol=1e-12), "float32": dict(rtol=1e-4, atol=1e-5)}

# Seed 001, "Extending to Multiple Layers": every number of the walk-through.
SEED_Z1, SEED_A1 = [[1.1, -0.2]], [[1.1, 0.0]]
SEED_Y_HAT = [[0.76]]
SEED_LOSS = 5.017600000000001
SEED_DELTA2 = [[-4.48]]          # dL/dy_hat = 2 (y_hat - y)
SEED_DW2, SEED_DB2 = [[-4.928], [0.0]], [-4.48]
SEED_DELTA1 = [[-2.688, 0.0]]    # dL/dZ1 after the relu mask
SEED_DW1, SEED_DB1 = [[-2.688, 0.0], [-5.376, 0.0]], [-2.688, 0.0]
SEED_W1_NEW, SEED_B1_NEW = [[0.7688, -0.4], [0.8376, 0.1]], [0.2688, 0.0]
SEED_W2_NEW, SEED_B2_NEW = [[1.0928], [-0.2]], [0.548]
# As the trace prints them (4 decimals at most).
SEED_PRINTED = ["1.1", "-0.2", "0.76", "5.0176", "-4.48", "-4.928", "-2.688", "0.896", "-5.376",
                "0.7688", "0.8376", "0.2688", "1.0928", "0.548"]


def recorded_after(trace):
    """The parameters after the step, in get_params order (weights, then biases)."""
    return ([layer.weights_after for layer in trace.layers]
            + [layer.bias_after for layer in trace.layers])


def all_params(net):
    weights, biases = net.get_params()
    return weights + biases


def assert_same_params(net, other):
    for a, b in zip(all_params(net), all_params(other)):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("batch", sorted(TWO_LAYER_BATCHES))
def test_seed001_walkthrough_is_in_the_trace(Net, batch):
    """Z, A, δ, dW, db, the loss and the updated weights of the tutorial, in the arrays."""
    X, Y = TWO_LAYER_BATCHES[batch]
    trace = two_layer(Net).trace(X, Y)
    assert isinstance(trace, cb.Trace) and len(trace.layers) == 2
    first, second = trace.layers
    assert isinstance(first, cb.LayerTrace)
    assert (first.activation, second.activation) == ("relu", "identity")
    np.testing.assert_array_equal(trace.X, [[1.0, 2.0]])
    np.testing.assert_array_equal(trace.Y, [[3.0]])
    assert trace.loss == pytest.approx(SEED_LOSS, rel=1e-12)
    for got, want in [
        (first.z, SEED_Z1), (first.a, SEED_A1), (second.z, SEED_Y_HAT), (second.a, SEED_Y_HAT),
        (second.delta, SEED_DELTA2), (second.grad_weights, SEED_DW2), (second.grad_bias, SEED_DB2),
        (first.delta, SEED_DELTA1), (first.grad_weights, SEED_DW1), (first.grad_bias, SEED_DB1),
        (first.weights_before, W1), (first.bias_before, B1),
        (second.weights_before, W2), (second.bias_before, B2),
        (first.weights_after, SEED_W1_NEW), (first.bias_after, SEED_B1_NEW),
        (second.weights_after, SEED_W2_NEW), (second.bias_after, SEED_B2_NEW),
    ]:
        np.testing.assert_allclose(got, want, **TIGHT)


def test_seed001_walkthrough_is_in_the_text(Net):
    """The rendering names each quantity as the tutorial does and prints its numbers."""
    X, Y = TWO_LAYER_BATCHES["1-D X, 1-D Y"]
    text = str(two_layer(Net).trace(X, Y))
    for line in ["Z1 = A0 @ W1 + b1 = [[ 1.1 -0.2]]", "A1 = relu(Z1) = [[1.1 0. ]]",
                 "Z2 = A1 @ W2 + b2 = [[0.76]]", "L = Σ(A2 − Y)²/N = 5.0176",
                 "δ2 = dL/dZ2 = dL/dA2 ⊙ identity'(Z2) = [[-4.48]]", "dL/dA2 = 2·(A2 − Y)",
                 "dL/dA1 = δ2 @ W2ᵀ = [[-2.688  0.896]]",
                 "δ1 = dL/dZ1 = dL/dA1 ⊙ relu'(Z1) = [[-2.688  0.   ]]",
                 "dW2 = A1ᵀ @ δ2", "dW1 = A0ᵀ @ δ1", "db2 = column sums of δ2 = [-4.48]",
                 "W1 ← W1 − 0.1·dW1", "b1 ← b1 − 0.1·db1 = [0.2688 0.    ]",
                 "W2 ← W2 − 0.1·dW2", "b2 ← b2 − 0.1·db2 = [0.548]",
                 "the step was not applied"]:
        assert line in text, line
    for number in SEED_PRINTED:
        assert number in text, number
    assert text == trace_text_of(Net)  # the same text every time


def trace_text_of(Net):
    X, Y = TWO_LAYER_BATCHES["1-D X, 1-D Y"]
    return two_layer(Net).trace(X, Y).render()


def test_both_implementations_print_the_same_seed001_trace():
    assert trace_text_of(cb.Network) == trace_text_of(cb.reference.Network)


def test_seed001_trace_leaves_or_applies_the_step(Net):
    X, Y = TWO_LAYER_BATCHES["(1,2) X, (1,1) Y"]
    net = two_layer(Net)
    net.trace(X, Y)
    assert_same_params(net, two_layer(Net))
    trace = net.trace(X, Y, apply=True)
    assert trace.applied
    weights, biases = net.get_params()
    for got, want in zip(weights + biases, [SEED_W1_NEW, SEED_W2_NEW, SEED_B1_NEW, SEED_B2_NEW]):
        np.testing.assert_allclose(got, want, **TIGHT)
    assert "the step was applied" in str(trace)


# --------------------------------------------------------------------------
# apply=False leaves everything; apply=True equals train_step
# --------------------------------------------------------------------------

OPTIMIZERS = {
    "adam": lambda: cb.Adam(lr=0.01, weight_decay=0.01),
    "momentum": lambda: cb.SGD(lr=0.05, momentum=0.9),
    "nesterov": lambda: cb.SGD(lr=0.05, momentum=0.8, nesterov=True, weight_decay=0.001),
    "sgd": lambda: cb.SGD(lr=0.1),
}


def problem(Net, dtype, optimizer, seed=4):
    rng = np.random.default_rng(seed)
    net = Net([5, 8, 6, 3], ["tanh", "relu", "softmax"], loss="cross_entropy",
              optimizer=OPTIMIZERS[optimizer](), dtype=dtype, seed=seed)
    X = rng.normal(size=(9, 5))
    labels = rng.integers(0, 3, size=9)
    return net, X, labels


@pytest.mark.parametrize("optimizer", sorted(OPTIMIZERS))
def test_trace_without_apply_changes_nothing(Net, dtype, optimizer):
    """Parameters, moments and step count are restored: the next three steps are
    bit-identical to those of a twin that never traced."""
    net, X, Y = problem(Net, dtype, optimizer)
    twin, _, _ = problem(Net, dtype, optimizer)
    for network in (net, twin):
        for _ in range(2):  # optimizer state that the trace must not disturb
            network.train_step(X, Y)
    X_other = X[::-1] * 0.5   # a different batch, so the trial step's moments differ
    trace = net.trace(X_other, Y[::-1])
    assert not trace.applied
    assert_same_params(net, twin)
    for _ in range(3):
        assert net.train_step(X, Y) == twin.train_step(X, Y)
        assert_same_params(net, twin)


@pytest.mark.parametrize("optimizer", sorted(OPTIMIZERS))
def test_trace_with_apply_equals_train_step(Net, dtype, optimizer):
    net, X, Y = problem(Net, dtype, optimizer)
    twin, _, _ = problem(Net, dtype, optimizer)
    for network in (net, twin):
        network.train_step(X, Y)
    trace = net.trace(X, Y, apply=True)
    loss = twin.train_step(X, Y)
    assert trace.applied and trace.loss == loss
    assert_same_params(net, twin)
    for recorded, param in zip(recorded_after(trace), all_params(twin)):
        np.testing.assert_array_equal(recorded, param)
    for _ in range(3):
        assert net.train_step(X, Y) == twin.train_step(X, Y)
        assert_same_params(net, twin)


def test_after_parameters_are_those_of_train_step_even_without_apply(Net, dtype):
    """apply=False records the same step train_step would take (Adam state included)."""
    net, X, Y = problem(Net, dtype, "adam")
    twin, _, _ = problem(Net, dtype, "adam")
    for network in (net, twin):
        network.train_step(X, Y)
    trace = net.trace(X, Y)
    assert trace.loss == twin.train_step(X, Y)
    for recorded, param in zip(recorded_after(trace), all_params(twin)):
        np.testing.assert_array_equal(recorded, param)


# --------------------------------------------------------------------------
# The recorded numbers are the network's
# --------------------------------------------------------------------------

CASES = {
    "relu/identity, mse": ([4, 6, 2], ["relu", "identity"], cb.MSE(scale=2.0), "real"),
    "tanh/sigmoid, bce": ([4, 6, 2], ["tanh", "sigmoid"], "bce", "unit"),
    "sigmoid/softmax, ce labels": ([4, 6, 3], ["sigmoid", "softmax"], "cross_entropy", "labels"),
    "leaky/softmax, mse sum": ([4, 6, 3], ["leaky_relu", "softmax"], cb.MSE(reduction="sum"), "unit"),
    "identity/tanh/sigmoid, mse": ([4, 5, 6, 2], ["identity", "tanh", "sigmoid"], "mse", "unit"),
}


def case(Net, name, dtype, rng):
    sizes, activations, loss, kind = CASES[name]
    net = Net(sizes, activations, loss=loss, optimizer=cb.Adam(lr=0.01), dtype=dtype, seed=2)
    X = rng.normal(size=(7, sizes[0]))
    k = sizes[-1]
    Y = {"real": lambda: rng.normal(size=(7, k)), "unit": lambda: rng.uniform(size=(7, k)),
         "labels": lambda: rng.integers(0, k, size=7)}[kind]()
    return net, X, Y


@pytest.mark.parametrize("name", sorted(CASES))
def test_recorded_gradients_and_loss_are_the_networks(Net, dtype, name, rng):
    net, X, Y = case(Net, name, dtype, rng)
    net.train_step(X, Y)
    trace = net.trace(X, Y)
    loss, grads = net.loss_and_gradients(X, Y)
    np.testing.assert_allclose(trace.loss, net.loss(X, Y), **CLOSE[dtype])
    np.testing.assert_allclose(trace.loss, loss, **CLOSE[dtype])
    np.testing.assert_allclose(trace.layers[-1].a, net.forward(X), **CLOSE[dtype])
    a_prev = trace.X
    for layer, (dW, db) in zip(trace.layers, grads):
        assert layer.z.dtype == layer.delta.dtype == layer.grad_weights.dtype == np.dtype(dtype)
        np.testing.assert_allclose(layer.grad_weights, dW, **CLOSE[dtype])
        np.testing.assert_allclose(layer.grad_bias, db, **CLOSE[dtype])
        # The recorded deltas give the network's gradients: dW = A_prevᵀ δ, db = Σ δ.
        np.testing.assert_allclose(a_prev.T @ layer.delta, dW, **CLOSE[dtype])
        np.testing.assert_allclose(layer.delta.sum(axis=0), db, **CLOSE[dtype])
        a_prev = layer.a
    text = trace.render()
    assert "δ1 = dL/dZ1" in text and "W1 ← W1 − 0.01·m̂" in text


def test_trace_holds_copies(Net, rng):
    """Training on after the trace does not change what it recorded."""
    net, X, Y = case(Net, "relu/identity, mse", "float64", rng)
    trace = net.trace(X, Y, apply=True)
    recorded = [layer.weights_after.copy() for layer in trace.layers]
    X_copy = trace.X.copy()
    net.train_step(X, Y)
    net.optimizer.lr = 0.5
    for layer, before in zip(trace.layers, recorded):
        np.testing.assert_array_equal(layer.weights_after, before)
    np.testing.assert_array_equal(trace.X, X_copy)
    assert trace.optimizer.lr == 0.01


@pytest.mark.parametrize("targets", ["labels", "one-hot", "soft"])
def test_cross_entropy_text_describes_y_as_printed(Net, targets):
    net, X, labels = problem(Net, "float64", "sgd")
    Y = {"labels": labels, "one-hot": np.eye(3)[labels],
         "soft": 0.8 * np.eye(3)[labels] + 0.2 / 3}[targets]
    text = str(net.trace(X, Y))
    if targets == "labels":
        assert "one-hot" not in text and "class label" in text and "onehot(Y)" in text
    else:   # not called one-hot: soft labels are targets too
        assert "Y rows of class probabilities" in text and "one-hot" not in text
        assert "class label" not in text


def test_large_layers_are_summarised(Net, rng):
    net = Net([40, 50, 3], ["relu", "identity"], dtype="float32", seed=0)
    X, Y = rng.normal(size=(30, 40)), rng.normal(size=(30, 3))
    trace = net.trace(X, Y)
    assert trace.layers[0].z.shape == (30, 50) and trace.layers[0].weights_before.shape == (40, 50)
    text = trace.render()
    assert "..." in text
    assert max(len(line) for line in text.splitlines()) <= 130
    assert len(text.splitlines()) < 200
    # Everything printed in full when asked.
    assert "..." not in trace.render(max_elements=10_000)
    assert repr(trace) == "<Trace of 2 layers, batch of 30, loss %.6g, applied=False>" % trace.loss


# --------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------


def test_bad_arguments_change_nothing(Net):
    net = two_layer(Net)
    X, Y = TWO_LAYER_BATCHES["(1,2) X, (1,1) Y"]
    with pytest.raises(TypeError, match="apply"):
        net.trace(X, Y, apply="yes")
    with pytest.raises(ValueError, match="X must have shape"):
        net.trace(X[:, :1], Y)
    with pytest.raises(ValueError, match="NaN"):
        net.trace(np.array([[np.nan, 1.0]]), Y)
    with pytest.raises(TypeError):
        net.trace(X, np.array([["a"]]))
    assert_same_params(net, two_layer(Net))


@pytest.mark.parametrize("apply", [np.False_, np.True_])
def test_numpy_bool_apply_is_accepted(Net, apply):
    net, twin = two_layer(Net), two_layer(Net)
    X, Y = TWO_LAYER_BATCHES["(1,2) X, (1,1) Y"]
    trace = net.trace(X, Y, apply=apply)
    assert trace.applied is bool(apply)
    if apply:
        twin.train_step(X, Y)
    assert_same_params(net, twin)


@pytest.mark.parametrize("apply", [2, "yes", None])
def test_non_bool_apply_is_a_type_error(Net, apply):
    net = two_layer(Net)
    X, Y = TWO_LAYER_BATCHES["(1,2) X, (1,1) Y"]
    with pytest.raises(TypeError, match="apply"):
        net.trace(X, Y, apply=apply)
    assert_same_params(net, two_layer(Net))


@pytest.mark.parametrize("apply", [False, True])
def test_a_diverging_step_raises_and_changes_nothing(Net, apply):
    """As train_step: FloatingPointError, parameters and optimizer state as before."""
    net = Net([2, 2, 1], ["identity", "identity"], optimizer=cb.Adam(), dtype="float32")
    X, Y = np.array([[1.0, 2.0]]), np.array([[3.0]])
    net.train_step(X, Y)
    net.set_params([np.full((2, 2), 1e30), np.full((2, 1), 1e30)], [np.zeros(2), np.zeros(1)])
    before = all_params(net)
    with pytest.raises(FloatingPointError):
        net.trace(X, Y, apply=apply)
    for a, b in zip(before, all_params(net)):
        np.testing.assert_array_equal(a, b)


# --------------------------------------------------------------------------
# The example script
# --------------------------------------------------------------------------


@pytest.mark.parametrize("flags", [[], ["--reference"]])
def test_example_prints_the_seed001_numbers(flags):
    source_root = str(Path(cb.__file__).resolve().parent.parent)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [source_root] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    result = subprocess.run([sys.executable, str(EXAMPLE), *flags], capture_output=True,
                            text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == trace_text_of(cb.Network)
    for number in SEED_PRINTED:
        assert number in result.stdout, number


# --------------------------------------------------------------------------
# The compiled engine's optimizer-state hooks
# --------------------------------------------------------------------------


def test_engine_optimizer_state_round_trips_and_refuses_wrong_shapes(dtype):
    net, X, Y = problem(cb.Network, dtype, "adam")
    net.train_step(X, Y)
    moment1, moment2, steps = net._engine.optimizer_state()
    assert steps == 1 and moment1.dtype == np.dtype(dtype) and moment1.shape == moment2.shape
    assert np.any(moment1 != 0) and np.any(moment2 != 0)
    net.train_step(X, Y)
    net._engine.restore_optimizer_state(moment1, moment2, steps)
    again = net._engine.optimizer_state()
    assert again[2] == 1
    np.testing.assert_array_equal(again[0], moment1)
    np.testing.assert_array_equal(again[1], moment2)
    with pytest.raises(ValueError, match="moment1"):
        net._engine.restore_optimizer_state(moment1[:-1], moment2, steps)
    with pytest.raises(ValueError, match="moment2"):
        net._engine.restore_optimizer_state(moment1, moment2.astype(np.float16), steps)
    with pytest.raises(ValueError, match="step_count"):
        net._engine.restore_optimizer_state(moment1, moment2, -1)
    with pytest.raises(TypeError):
        net._engine.restore_optimizer_state(None, moment2, steps)


def test_clipped_step_is_described_and_matches_train_step(Net):
    """With clip_norm and clip_value the text says so, and the parameters after
    the step are those of a twin's train_step."""
    optimizer = cb.SGD(lr=0.1, clip_norm=1.0, clip_value=0.5)
    net, twin = two_layer(Net), two_layer(Net)
    net.optimizer, twin.optimizer = optimizer, cb.SGD(lr=0.1, clip_norm=1.0, clip_value=0.5)
    X, Y = np.array([[1.0, 2.0]]), np.array([[3.0]])
    trace = net.trace(X, Y)
    twin.train_step(X, Y)
    for layer, weights, bias in zip(trace.layers, *twin.get_params()):
        np.testing.assert_array_equal(layer.weights_after, weights)
        np.testing.assert_array_equal(layer.bias_after, bias)
    text = str(trace)
    norm = np.sqrt(sum(np.sum(layer.grad_weights ** 2) + np.sum(layer.grad_bias ** 2)
                       for layer in trace.layers))
    assert f"‖g‖ = {norm:.6g}" in text and "clamped to [−0.5, 0.5]" in text
    assert "W1 ← W1 − 0.1·clip(dW1)" in text
    assert max(len(line) for line in text.splitlines()) <= 130
