"""The networks timed: the compiled and reference ``cb.Network``, the same
model in PyTorch, their batches, and the FLOPs of one step's products."""
import numpy as np

import cbackprop as cb

from .settings import POOL_SIZE


def activations_for(sizes):
    return ["relu"] * (len(sizes) - 2) + ["identity"]


def build_networks(sizes, dtype, seed, lr):
    kwargs = dict(loss="mse", dtype=dtype, seed=seed)
    compiled = cb.Network(sizes, activations_for(sizes), optimizer=cb.SGD(lr=lr), **kwargs)
    reference = cb.reference.Network(sizes, activations_for(sizes),
                                     optimizer=cb.SGD(lr=lr), **kwargs)
    return compiled, reference


class TorchNet:
    """The same model in PyTorch, with cbackprop's ``train_step``/``set_params``."""

    def __init__(self, torch, sizes, dtype, lr):
        self.torch = torch
        torch_dtype = getattr(torch, dtype)
        layers = []
        for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            layers.append(torch.nn.Linear(n_in, n_out, dtype=torch_dtype))
            if i < len(sizes) - 2:
                layers.append(torch.nn.ReLU())
        self.model = torch.nn.Sequential(*layers)
        self.linears = [m for m in self.model if isinstance(m, torch.nn.Linear)]
        self.loss_fn = torch.nn.MSELoss(reduction="mean")
        self.opt = torch.optim.SGD(self.model.parameters(), lr=lr)

    def set_params(self, weights, biases):
        """cbackprop's W is (fan_in, fan_out); Linear.weight is (out, in)."""
        torch = self.torch
        with torch.no_grad():
            for linear, W, b in zip(self.linears, weights, biases):
                linear.weight.copy_(torch.from_numpy(np.ascontiguousarray(W.T)))
                linear.bias.copy_(torch.from_numpy(b))

    def train_step(self, X, Y):
        self.opt.zero_grad(set_to_none=True)
        loss = self.loss_fn(self.model(X), Y)
        loss.backward()
        self.opt.step()
        return loss.item()  # synchronous, and a float like cbackprop's

    def convert(self, pool):
        return [(self.torch.from_numpy(X), self.torch.from_numpy(Y)) for X, Y in pool]


def matmul_flops_per_step(sizes, batch):
    """FLOPs of the matrix products of one train_step: X@W and dW = X^T@D for
    every layer, D@W^T (the delta passed back) for every layer but the first;
    2*m*n_in*n_out each."""
    flops = 0
    for layer, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        products = 2 if layer == 0 else 3
        flops += products * 2 * batch * n_in * n_out
    return flops


def add_fma_limit(result, peak_per_core):
    """The time the step's products would take at threads x the per-core FMA
    peak, and the compiled step's multiple of it."""
    flops = matmul_flops_per_step(result["sizes"], result["batch"])
    peak = result["threads"] * peak_per_core[result["dtype"]] * 1e9
    result["fma_limit_us"] = flops / peak * 1e6
    result["step_over_limit"] = result["compiled_us"] / result["fma_limit_us"]
    return result


def make_batch_pool(sizes, batch, dtype, seed):
    """A few fixed batches, C-contiguous and already in ``dtype``."""
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal((batch, sizes[0])).astype(dtype),
             rng.standard_normal((batch, sizes[-1])).astype(dtype))
            for _ in range(POOL_SIZE)]
