"""The networks timed: the compiled and reference ``cb.Network``, the same
model in PyTorch, their batches, and the FLOPs of one step's products."""
import numpy as np

import cbackprop as cb

from .settings import POOL_SIZE, WORKLOADS


def activations_for(sizes, workload="relu-sgd"):
    hidden, output = WORKLOADS[workload][:2]
    return [hidden] * (len(sizes) - 2) + [output]


def make_optimizer(workload, lr):
    _, _, _, name, settings, _ = WORKLOADS[workload]
    return cb.optimizers.OPTIMIZERS[name](lr=lr, **settings)


def build_networks(sizes, dtype, seed, lr, workload="relu-sgd"):
    kwargs = dict(loss=WORKLOADS[workload][2], dtype=dtype, seed=seed)
    return tuple(Net(sizes, activations_for(sizes, workload), optimizer=make_optimizer(workload, lr),
                     **kwargs) for Net in (cb.Network, cb.reference.Network))


def snapshot(net):
    """The compiled network's parameters and optimizer state, the state in the
    reference's layout (one array per parameter, weights then biases), so
    that either implementation can start a block from it. Reads private
    parts of both: the bench is the package's own tool."""
    weights, biases = net.get_params()
    moment1, moment2, steps = net._optimizer_state()
    (w1, b1), (w2, b2) = net._engine._views(moment1), net._engine._views(moment2)
    return weights, biases, ([m.copy() for m in w1 + b1], [m.copy() for m in w2 + b2], steps)


def restore(net, state):
    """Start ``net`` (reference or torch) from a ``snapshot``: torch takes the
    parameters alone (its optimizer state stays its own)."""
    weights, biases, optimizer_state = state
    net.set_params(weights, biases)
    if isinstance(net, cb.reference.Network):
        net._restore_optimizer_state(optimizer_state)


class TorchNet:
    """The same model in PyTorch, with cbackprop's ``train_step``/``set_params``
    (the softmax output is left to CrossEntropyLoss, which takes logits)."""

    ACTIVATIONS = {"relu": "ReLU", "sigmoid": "Sigmoid", "tanh": "Tanh"}

    def __init__(self, torch, sizes, dtype, lr, workload="relu-sgd"):
        self.torch = torch
        hidden, _, loss, optimizer, settings, _ = WORKLOADS[workload]
        torch_dtype = getattr(torch, dtype)
        layers = []
        for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            layers.append(torch.nn.Linear(n_in, n_out, dtype=torch_dtype))
            if i < len(sizes) - 2:
                layers.append(getattr(torch.nn, self.ACTIVATIONS[hidden])())
        self.model = torch.nn.Sequential(*layers)
        self.linears = [m for m in self.model if isinstance(m, torch.nn.Linear)]
        self.loss_fn = (torch.nn.CrossEntropyLoss() if loss == "cross_entropy"
                        else torch.nn.MSELoss(reduction="mean"))
        optimizer_class = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam}[optimizer]
        self.opt = optimizer_class(self.model.parameters(), lr=lr, **settings)

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


def make_batch_pool(sizes, batch, dtype, seed, workload="relu-sgd"):
    """A few fixed batches, C-contiguous and already in ``dtype`` (class labels,
    int64, for a cross-entropy workload)."""
    rng = np.random.default_rng(seed)
    labels = WORKLOADS[workload][2] == "cross_entropy"
    return [(rng.standard_normal((batch, sizes[0])).astype(dtype),
             rng.integers(0, sizes[-1], size=batch) if labels
             else rng.standard_normal((batch, sizes[-1])).astype(dtype))
            for _ in range(POOL_SIZE)]
