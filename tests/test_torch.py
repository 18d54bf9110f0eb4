"""Cross-checks against PyTorch (torch==2.13.0, CPU): the activations of the
registry against torch.nn's (forward and autograd derivative), whole
networks' losses and gradients, and optimizer trajectories against
torch.optim — the compiled Network and the NumPy reference alike.

CI installs torch, and sets CBACKPROP_REQUIRE_EXTRAS=1 so that a missing
torch fails these tests instead of skipping them."""
import os

import numpy as np
import pytest

import cbackprop as cb
from cbackprop import ops
from cbackprop.reference import ops as ref
from registry_cases import ACTIVATION_NAMES, HIDDEN

if os.environ.get("CBACKPROP_REQUIRE_EXTRAS"):
    import torch
else:
    torch = pytest.importorskip("torch")

IMPLEMENTATIONS = {"compiled": cb.Network, "reference": cb.reference.Network}

# How torch.nn writes each activation of the registry.
TORCH_ACTIVATIONS = {
    "sigmoid": lambda: torch.nn.Sigmoid(),
    "relu": lambda: torch.nn.ReLU(),
    "tanh": lambda: torch.nn.Tanh(),
    "identity": lambda: torch.nn.Identity(),
    "linear": lambda: torch.nn.Identity(),
    "leaky_relu": lambda: torch.nn.LeakyReLU(0.01),
    "softmax": lambda: torch.nn.Softmax(dim=1),
    "gelu": lambda: torch.nn.GELU(),
    "gelu_tanh": lambda: torch.nn.GELU(approximate="tanh"),
    "silu": lambda: torch.nn.SiLU(),
}
TOL = {"float32": 2e-6, "float64": 1e-12}


def test_every_activation_has_its_torch_twin():
    assert set(TORCH_ACTIVATIONS) == set(ACTIVATION_NAMES)


@pytest.mark.parametrize("name", ACTIVATION_NAMES)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_activations_match_torch(name, dtype):
    rng = np.random.default_rng(3)
    # Values around the kinks and the tails: [-12, 12] and a band near 0.
    z = np.concatenate([np.linspace(-12, 12, 97), 0.01 * rng.standard_normal(35)]).reshape(12, 11)
    z = z.astype(dtype)
    grad_a = rng.standard_normal(z.shape).astype(dtype)
    zt = torch.tensor(z, requires_grad=True)
    at = TORCH_ACTIVATIONS[name]()(zt)
    at.backward(torch.tensor(grad_a))
    expected_a, expected_grad = at.detach().numpy(), zt.grad.numpy()
    for impl in (ops, ref):
        a = impl.activation_forward(name, z)
        np.testing.assert_allclose(a, expected_a, rtol=TOL[dtype], atol=TOL[dtype])
        np.testing.assert_allclose(impl.activation_backward(name, grad_a, a, z=z), expected_grad,
                                   rtol=TOL[dtype], atol=TOL[dtype] * 10)


def torch_model(weights, biases, activations):
    layers = []
    for W, b, name in zip(weights, biases, activations):
        linear = torch.nn.Linear(*W.shape, dtype=torch.float64)
        with torch.no_grad():
            linear.weight.copy_(torch.tensor(W.T))
            linear.bias.copy_(torch.tensor(b))
        layers += [linear, TORCH_ACTIVATIONS[name]()]
    return torch.nn.Sequential(*layers)


@pytest.mark.parametrize("impl", sorted(IMPLEMENTATIONS))
@pytest.mark.parametrize("hidden", HIDDEN)
@pytest.mark.parametrize("output", ["identity", "gelu", "silu", "gelu_tanh", "sigmoid"])
def test_network_loss_and_gradients_match_torch(impl, hidden, output):
    """MSE of a [4, 6, 5, 3] net, float64: loss and every gradient as torch's
    autograd gives them (the output layer's delta goes through its f'(Z))."""
    rng = np.random.default_rng(11)
    activations = [hidden, hidden, output]
    net = IMPLEMENTATIONS[impl]([4, 6, 5, 3], activations, seed=5)
    weights, biases = net.get_params()
    biases = [rng.normal(scale=0.5, size=b.shape) for b in biases]
    net.set_params(weights, biases)
    X, Y = rng.standard_normal((9, 4)), rng.standard_normal((9, 3))
    loss, grads = net.loss_and_gradients(X, Y)
    model = torch_model(weights, biases, activations)
    torch_loss = torch.nn.functional.mse_loss(model(torch.tensor(X)), torch.tensor(Y))
    torch_loss.backward()
    assert loss == pytest.approx(torch_loss.item(), rel=1e-12)
    linears = [layer for layer in model if isinstance(layer, torch.nn.Linear)]
    for (dW, db), linear in zip(grads, linears):
        np.testing.assert_allclose(dW, linear.weight.grad.numpy().T, rtol=1e-10, atol=1e-13)
        np.testing.assert_allclose(db, linear.bias.grad.numpy(), rtol=1e-10, atol=1e-13)


# (cbackprop optimizer, torch optimizer class, torch keyword arguments)
OPTIMIZERS = {
    "rmsprop": (cb.RMSprop(lr=0.01), torch.optim.RMSprop, dict(lr=0.01, alpha=0.99, eps=1e-8)),
    "rmsprop momentum decay": (
        cb.RMSprop(lr=0.005, alpha=0.9, eps=1e-6, momentum=0.9, weight_decay=0.01),
        torch.optim.RMSprop, dict(lr=0.005, alpha=0.9, eps=1e-6, momentum=0.9, weight_decay=0.01)),
    "rmsprop no smoothing": (cb.RMSprop(lr=0.001, alpha=0.0, momentum=0.5),
                             torch.optim.RMSprop, dict(lr=0.001, alpha=0.0, momentum=0.5)),
    "adam decay": (cb.Adam(lr=0.01, beta1=0.8, beta2=0.99, eps=1e-6, weight_decay=0.01),
                   torch.optim.Adam, dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.01)),
    "sgd nesterov decay": (cb.SGD(lr=0.05, momentum=0.8, nesterov=True, weight_decay=0.01),
                           torch.optim.SGD, dict(lr=0.05, momentum=0.8, nesterov=True,
                                                 weight_decay=0.01)),
}


@pytest.mark.parametrize("impl", sorted(IMPLEMENTATIONS))
@pytest.mark.parametrize("case", sorted(OPTIMIZERS))
def test_optimizer_trajectories_match_torch(impl, case):
    """30 steps on changing batches, float64: every parameter equal to
    torch.optim's to 1e-9. Weight decay applies to weights only, so torch's
    biases are a parameter group with weight_decay=0."""
    optimizer, torch_class, torch_kwargs = OPTIMIZERS[case]
    activations = ["gelu", "silu", "identity"]
    net = IMPLEMENTATIONS[impl]([4, 7, 5, 2], activations, optimizer=optimizer, seed=2)
    weights, biases = net.get_params()
    model = torch_model(weights, biases, activations)
    linears = [layer for layer in model if isinstance(layer, torch.nn.Linear)]
    kwargs = dict(torch_kwargs)
    decay = kwargs.pop("weight_decay", 0.0)
    torch_optimizer = torch_class([
        {"params": [linear.weight for linear in linears], "weight_decay": decay},
        {"params": [linear.bias for linear in linears], "weight_decay": 0.0}], **kwargs)
    rng = np.random.default_rng(8)
    for _ in range(30):
        X, Y = rng.standard_normal((6, 4)), rng.standard_normal((6, 2))
        loss = net.train_step(X, Y)
        torch_optimizer.zero_grad()
        torch_loss = torch.nn.functional.mse_loss(model(torch.tensor(X)), torch.tensor(Y))
        torch_loss.backward()
        torch_optimizer.step()
        assert loss == pytest.approx(torch_loss.item(), rel=1e-9)
    weights, biases = net.get_params()
    for W, b, linear in zip(weights, biases, linears):
        np.testing.assert_allclose(W, linear.weight.detach().numpy().T, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(b, linear.bias.detach().numpy(), rtol=1e-9, atol=1e-12)
