"""The optimizer's update pass alone (``Engine.apply_update``: the last part
of a training step, from gradients already computed), in ns per parameter:
SGD, SGD with momentum, Adam and RMSprop on a network whose parameters fit
in cache and on one whose arrays are far beyond L2 (bench/README.md,
"Optimizer updates")."""
import statistics

import numpy as np

import cbackprop as cb

from .gemm import calls_per_sample, time_calls
from .settings import UPDATE_NETWORKS, UPDATE_ROUNDS

OPTIMIZERS = {
    "sgd": lambda: cb.SGD(lr=1e-6),
    "momentum": lambda: cb.SGD(lr=1e-6, momentum=0.9),
    "adam": lambda: cb.Adam(lr=1e-6),
    "rmsprop": lambda: cb.RMSprop(lr=1e-6),
    # Adam through the spare buffers even where the engine would write its
    # moments in place (_kernels/state_bounds.pxi): what that choice gains.
    "adam/spares": lambda: cb.Adam(lr=1e-6),
}
ENGINE_SETTINGS = {"adam/spares": {"moments_in_place": False}}


def update_call(sizes, dtype, optimizer, **engine_settings):
    """A network with gradients in place and the call that applies one update
    (``engine_settings``: Engine attributes to set first). Each update
    leaves the old parameters where the gradients were, so the next one
    steps along them: tiny steps (lr 1e-6), all finite."""
    net = cb.Network(sizes, ["relu", "identity"], optimizer=optimizer, dtype=dtype, seed=0)
    for name, value in engine_settings.items():
        setattr(net._engine, name, value)
    X = np.ones((4, sizes[0]), dtype)
    Y = np.ones((4, sizes[-1]), dtype)
    net.train_step(X, Y)
    engine = net._engine
    for _ in range(3):
        # Until every buffer has been written once, writes still fault in
        # pages (the state starts as calloc'd zeros) and swaps bring new ones.
        engine.apply_update(optimizer)

    def update():
        engine.apply_update(optimizer)
    update.engine = engine   # (for the tests)
    return update


def bench_updates(args):
    """One row per (network, dtype, optimizer): ns per parameter, the best
    sample over UPDATE_ROUNDS rounds that alternate the optimizers. Adam's
    row also has ``adam_over_momentum``: the median over the rounds of the
    two optimizers' ratio within a round. Beyond L2 the passes stream from
    memory, whose speed drifts with the other cores' traffic; a ratio of
    samples taken side by side follows that drift less than one of two
    bests taken at different moments."""
    rows = []
    for label, sizes in UPDATE_NETWORKS.items():
        n_params = sum(a * b + b for a, b in zip(sizes, sizes[1:]))
        for dtype in args.dtypes:
            calls = {name: update_call(sizes, dtype, make(), **ENGINE_SETTINGS.get(name, {}))
                     for name, make in OPTIMIZERS.items()}
            counts = {name: calls_per_sample(fn, 0.002 if args.quick else 0.01)
                      for name, fn in calls.items()}
            rounds = {name: [] for name in calls}
            for _ in range(UPDATE_ROUNDS):
                for name, fn in calls.items():
                    rounds[name].append(time_calls(fn, counts[name]))
            for name in calls:
                row = {"network": label, "sizes": list(sizes), "n_params": n_params,
                       "dtype": dtype, "threads": args.threads[0], "optimizer": name,
                       "ns_per_param": min(rounds[name]) / n_params * 1e9}
                if name == "adam":
                    row["adam_over_momentum"] = statistics.median(
                        adam / momentum for adam, momentum in zip(rounds["adam"], rounds["momentum"]))
                rows.append(row)
    return rows
