"""The element-wise passes: every activation of the registry, forward and
backward, and the fused loss passes, through ``cb.ops`` against the NumPy
reference's twin of the same op (``cb.reference.ops``) on the same array,
in ns per element (bench/README.md, "Element-wise passes")."""
import numpy as np

from cbackprop import ops
from cbackprop._activations import REGISTRY
from cbackprop.reference import ops as reference_ops

from .gemm import calls_per_sample, time_calls
from .settings import ELEMENTWISE_ROUNDS, ELEMENTWISE_SHAPE


def passes(dtype, rng):
    """{name: (ours, numpy)}: each a call of the pass on fixed arrays."""
    z = (3 * rng.standard_normal(ELEMENTWISE_SHAPE)).astype(dtype)
    grad = rng.standard_normal(ELEMENTWISE_SHAPE).astype(dtype)
    out = np.empty_like(z)
    targets = rng.random(ELEMENTWISE_SHAPE).astype(dtype)
    labels = rng.integers(0, ELEMENTWISE_SHAPE[1], size=ELEMENTWISE_SHAPE[0])
    cases = {}
    for name in REGISTRY:
        a = ops.activation_forward(name, z)
        cases[f"{name} forward"] = (
            lambda name=name: ops.activation_forward(name, z, out=out),
            lambda name=name: reference_ops.activation_forward(name, z))
        cases[f"{name} backward"] = (
            lambda name=name, a=a: ops.activation_backward(name, grad, a, out=out, z=z),
            lambda name=name, a=a: reference_ops.activation_backward(name, grad, a, z=z))
    sigmoid = ops.activation_forward("sigmoid", z)
    cases["mse loss (sigmoid output)"] = (
        lambda: ops.mse(sigmoid, targets, activation="sigmoid", out=out),
        lambda: reference_ops.mse(sigmoid, targets, activation="sigmoid"))
    cases["bce loss"] = (lambda: ops.bce(z, targets, out=out),
                         lambda: reference_ops.bce(z, targets))
    cases["cross_entropy loss"] = (lambda: ops.cross_entropy(z, labels, out=out),
                                   lambda: reference_ops.cross_entropy(z, labels))
    return cases


def bench_elementwise(args):
    """One row per (pass, dtype): ns per element of ours and numpy's, the best
    sample over ELEMENTWISE_ROUNDS alternating rounds."""
    rows = []
    count = ELEMENTWISE_SHAPE[0] * ELEMENTWISE_SHAPE[1]
    for dtype in args.dtypes:
        for name, (ours, theirs) in passes(dtype, np.random.default_rng(args.seed)).items():
            calls = {lib: calls_per_sample(fn, 0.002 if args.quick else 0.01)
                     for lib, fn in (("ours", ours), ("numpy", theirs))}
            best = {"ours": float("inf"), "numpy": float("inf")}
            for _ in range(ELEMENTWISE_ROUNDS):
                best["ours"] = min(best["ours"], time_calls(ours, calls["ours"]))
                best["numpy"] = min(best["numpy"], time_calls(theirs, calls["numpy"]))
            rows.append({"pass": name, "dtype": dtype, "threads": args.threads[0],
                         "shape": list(ELEMENTWISE_SHAPE),
                         "ours_ns": best["ours"] / count * 1e9,
                         "numpy_ns": best["numpy"] / count * 1e9})
    for row in rows:
        row["ratio"] = row["numpy_ns"] / row["ours_ns"]
    return rows
