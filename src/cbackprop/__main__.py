"""``python -m cbackprop``: what is installed, which kernels run, and a short
self-check of the compiled engine against the NumPy reference."""
import argparse
import sys

import numpy as np

import cbackprop as cb
from cbackprop import _backend

# (sizes, activations, loss, label targets?) small enough to run in a blink.
CHECKS = [
    ([5, 16, 3], ["relu", "identity"], "mse", False),
    ([4, 8, 8, 1], ["tanh", "leaky_relu", "sigmoid"], "bce", False),
    ([6, 12, 4], ["sigmoid", "softmax"], "cross_entropy", True),
]
TOLERANCE = {"float64": 1e-10, "float32": 1e-4}


def self_check():
    """Largest relative difference, compiled vs reference, over forward, loss,
    gradients and ten Adam steps, for each dtype."""
    rng = np.random.default_rng(0)
    worst = {}
    for dtype in TOLERANCE:
        worst[dtype] = 0.0
        for sizes, activations, loss, labels in CHECKS:
            nets = [impl(sizes, activations, loss=loss, optimizer=cb.Adam(lr=1e-2, eps=1e-6),
                         dtype=dtype, seed=1) for impl in (cb.Network, cb.reference.Network)]
            X = rng.standard_normal((33, sizes[0]))
            if labels:
                Y = rng.integers(0, sizes[-1], size=33)
            else:
                Y = rng.uniform(0, 1, size=(33, sizes[-1]))
            results = []
            for net in nets:
                loss_value, grads = net.loss_and_gradients(X, Y)
                steps = [net.train_step(X, Y) for _ in range(10)]
                results.append([net.forward(X), loss_value, *[g for pair in grads for g in pair], steps])
            for ours, theirs in zip(*results):
                ours, theirs = np.asarray(ours, np.float64), np.asarray(theirs, np.float64)
                scale = max(1.0, float(np.abs(theirs).max()))
                worst[dtype] = max(worst[dtype], float(np.abs(ours - theirs).max()) / scale)
    return worst


def main(argv=None):
    argparse.ArgumentParser(prog="python -m cbackprop", description=__doc__).parse_args(argv)
    print(f"cbackprop {cb.__version__} (numpy {np.__version__}, python {sys.version.split()[0]})")
    print(f"kernel path: {cb.kernel_path}")
    features = _backend._engine_baseline.cpu_features()
    print("cpu: " + " ".join(f"{name}={'yes' if present else 'no'}" for name, present in features.items()))
    print(f"engine builds this CPU runs: {', '.join(_backend.available_paths())}")
    table = _backend.engine.tile_table()
    print(f"register tiles: {table['vector_bytes']}-byte vectors, MR x NR = "
          f"{table['mr']} x {table['nr']['float64']} (float64), "
          f"{table['mr']} x {table['nr']['float32']} (float32)")
    if table["halves_512"]:
        # Only a build of 64-byte vectors has 512-bit instructions to split.
        tiles = ": ten-column tiles in half vectors" if table["vector_bytes"] == 64 else ""
        print(f"this CPU runs each 512-bit instruction as two 256-bit halves (AMD Zen 4){tiles}")
    ways = {"newton": "Newton steps on the FMA units", "instruction": "the instruction",
            "one in three by newton": "one vector in three by Newton steps, the rest by the "
                                      "instruction"}
    roots = _backend.engine.update_roots()
    print("square roots (Adam's and RMSprop's updates): " + (
        ways[roots["float64"]] if roots["float64"] == roots["float32"] else
        f"{ways[roots['float64']]} (float64), {ways[roots['float32']]} (float32)"))
    print(f"threads: {cb.get_num_threads()}")
    worst = self_check()
    ok = True
    for dtype, difference in worst.items():
        passed = difference <= TOLERANCE[dtype]
        ok &= passed
        print(f"self-check {dtype}: largest relative difference {difference:.2e} "
              f"(limit {TOLERANCE[dtype]:.0e}) {'ok' if passed else 'FAILED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
