"""What the parent prints and writes: the header, the train_step and GEMM
tables, the targets as PASS/FAIL, the JSON, and the cross-check verdict.
Imports neither NumPy nor cbackprop: it reads the workers' figures."""
import json
import operator
import statistics
from pathlib import Path

from .settings import (CONFIGS, DTYPES, FMA_LIMIT_CONFIGS, FMA_LIMIT_TARGET, GEMM_CLASSES,
                       GEMM_MEDIAN_TARGET, GEMM_MIN_TARGET, GEMM_PEAK_SIZE, GEMM_PEAK_TARGET,
                       GEMM_ROUNDS, MALLOC_VARS, PAUSE_S, POOL_SIZE, SMALL_PRODUCT, SMALL_PRODUCT_TARGET,
                       SPEEDUP_TARGETS_ALL_THREADS, SPEEDUP_TARGETS_BY_THREADS, TOLERANCE,
                       TORCH_TARGET, WORKLOADS, ELEMENTWISE_TARGET, ADAM_IN_CACHE_NS,
                       ADAM_OVER_MOMENTUM_TARGET, DIGITS_ACCURACY, DIGITS_OVER_SKLEARN,
                       FIT_OVER_REFERENCE, FIT_SAMPLES, FIT_TINY_US, CALL_FLOOR_CONFIG,
                       CALL_FLOOR_US)


# ---------------------------------------------------------------- tables

def fmt(value, spec, missing="-"):
    return missing if value is None else format(value, spec)


def print_header(args, workers):
    first = workers[0]["info"]
    print("cbackprop train_step benchmark: compiled vs reference"
          + (" vs torch" if first["torch"] else "")
          + f" ({'quick' if args.quick else 'thorough'}; {args.repeats} repeats of ~"
          f"{args.target_ms:g} ms blocks per implementation, in alternating phases; "
          f"lr={args.lr:g}; workloads {', '.join(args.workloads)})")
    print(f"cpu: {first['cpu']} ({first['cpu_count']} logical cpus), {first['platform']}")
    print(f"cpu flags: {describe_cpu_features(first['cpu_features'])}")
    print(f"vector ISA: {describe_isa(first)}; {describe_peaks(workers)}")
    blas_core = first.get("blas_core")
    torch_level = first.get("torch_capability")
    print(f"python {first['python']}, numpy {first['numpy']} (BLAS: {first['blas']}"
          + (f", {blas_core} kernels" if blas_core else "") + f"), "
          f"cbackprop {first['cbackprop']}"
          + (f" (checkout {first['commit']})" if first.get("commit") else "")
          + f", torch {first['torch'] or '-'}"
          + (f" ({torch_level})" if torch_level else ""))
    if first.get("isa_env"):
        print("vector levels forced: "
              + ", ".join(f"{k}={v}" for k, v in first["isa_env"].items()))
    if not first["torch"]:
        print(f"torch: {first['torch_skipped']}; torch columns left out")
    for w in workers:
        info = w["info"]
        env = ", ".join(f"{k}={v}" for k, v in info["env"].items())
        print(f"worker threads={w['threads']}: {env}; cb.get_num_threads()="
              f"{info['cb_get_num_threads']}, torch.get_num_threads()="
              f"{fmt(info['torch_get_num_threads'], 'd')}; wall {info['wall_s']:.1f} s, "
              f"other processes kept {fmt(info['other_load_cores'], '.2f', '?')} cores busy")
    if any((w["info"]["other_load_cores"] or 0) > 0.2 for w in workers):
        print("WARNING: other processes were running; at 2 threads on 2 cores a busy core "
              "can slow any library by several times (see bench/README.md)")
    print()


def describe_isa(info):
    """e.g. 'avx512 (64-byte vectors, tiles 12x16 f64 / 12x32 f32)'."""
    table = info["tile_table"]
    tiles = " / ".join(f"{table['mr']}x{nr} {dtype.replace('float', 'f')}"
                       for dtype, nr in table["nr"].items())
    halves = (", 512-bit instructions run as two halves"
              if table.get("halves_512") and table["vector_bytes"] == 64 else "")
    return f"{info['kernel_path']} ({table['vector_bytes']}-byte vectors, tiles {tiles}{halves})"


def describe_cpu_features(features):
    present = [name for name, on in features.items() if on]
    absent = [name for name, on in features.items() if not on]
    return " ".join(present) + (f" (absent: {' '.join(absent)})" if absent else "")


def describe_peaks(workers):
    """The per-core FMA peak each worker measured."""
    parts = []
    for w in workers:
        tiles = w["info"].get("tile_gflops", {})
        peaks = ", ".join(f"{gflops:.1f} GF/s {dtype}"
                          + (f" (register tile alone {tiles[dtype]:.1f}, {tiles[dtype] / gflops:.0%})"
                             if dtype in tiles else "")
                          for dtype, gflops in w["info"]["fma_peak_gflops"].items())
        parts.append(peaks + (f" ({w['threads']}-thread worker)" if len(workers) > 1 else ""))
    return "measured FMA peak per core: " + "; ".join(parts)


def fmt_x(value):
    return "-" if value is None else f"{value:.2f}x"


def train_columns(with_torch):
    columns = [  # (header, width, formatter); the first three left-aligned
        ("config", 6, lambda r: r["config"]),
        ("dtype", 7, lambda r: r["dtype"]),
        ("thr", 3, lambda r: str(r["threads"])),
        ("steps", 8, lambda r: f"{r['repeats']}x{r['block_steps']}"),
        ("compiled us", 11, lambda r: f"{r['compiled_us']:,.1f}"),
        ("reference us", 12, lambda r: f"{r['reference_us']:,.1f}"),
        ("vs ref", 7, lambda r: f"{r['speedup']:.2f}x"),
    ]
    if with_torch:
        columns += [
            ("torch us", 10, lambda r: fmt(r["torch_us"], ",.1f")),
            ("vs torch", 8, lambda r: fmt_x(r["speedup_vs_torch"])),
        ]
    columns += [
        ("FMA-limit us", 12, lambda r: fmt(r.get("fma_limit_us"), ",.1f")),
        ("step / limit", 12, lambda r: fmt_x(r.get("step_over_limit"))),
    ]
    columns.append(("ref |dL|/|L|", 12, lambda r: f"{r['max_rel_dloss']:.1e}"))
    if with_torch:
        columns.append(("torch |dL|/|L|", 14,
                        lambda r: fmt(r["torch_first_step_rel_dloss"], ".1e")
                        + ("*" if (r["torch_first_step_rel_dloss"] or 0) > r["tolerance"]
                           else " ")))
    columns.append(("check", 5, lambda r: "ok" if r["ok"] else "FAIL"))
    return columns


def format_cells(values, columns):
    return "  ".join(f"{v:<{w}}" if i < 3 else f"{v:>{w}}"
                     for i, (v, (_, w, _)) in enumerate(zip(values, columns)))


def describe_workload(workload):
    hidden, output, loss, optimizer, settings, _ = WORKLOADS[workload]
    extra = "".join(f", {k}={v}" for k, v in settings.items())
    return f"{workload}: {hidden} hidden layers, {output} output, {loss}, {optimizer}{extra}"


def print_train_table(results, with_torch):
    columns = train_columns(with_torch)
    header = format_cells([h for h, _, _ in columns], columns)
    previous = previous_workload = None
    for r in results:
        if r["workload"] != previous_workload:
            print(("\n" if previous_workload else "") + describe_workload(r["workload"]))
            print(header)
            print("-" * len(header))
            previous_workload, previous = r["workload"], None
        if previous and previous != r["config"]:
            print()
        previous = r["config"]
        if r.get("error"):
            print(format_cells([r["config"], r["dtype"], str(r["threads"])], columns[:3])
                  + f"  FAIL ({r['error']})")
        else:
            print(format_cells([fmt_fn(r) for _, _, fmt_fn in columns], columns))
    print("\nus = microseconds per train_step (median over repeats); vs ref = reference/compiled"
          + ("; vs torch = torch/compiled" if with_torch else "")
          + f";\nFMA-limit us ({', '.join(FMA_LIMIT_CONFIGS)}) = FLOPs of the step's matrix "
            "products (X@W and X^T@D for every layer, D@W^T for all but the first)\n"
            "  / (threads x the per-core FMA peak); step / limit = compiled us / FMA-limit us"
          + ";\nref |dL|/|L| = max over all timed steps (limit 1e-6 float64, 1e-3 float32)"
          + ("; torch |dL|/|L| = max over first steps of repeats, report only "
             "(* above that limit)" if with_torch else ""))


def print_elementwise(rows):
    """ns per element of every element-wise pass, ours and the reference's NumPy."""
    shape = "x".join(map(str, rows[0]["shape"]))
    print(f"\nElement-wise passes on {shape} arrays: cb.ops vs the NumPy reference's twin, "
          "ns per element (best of the rounds)")
    threads = sorted({r["threads"] for r in rows})
    dtypes = list(dict.fromkeys(r["dtype"] for r in rows))
    by_key = {(r["pass"], r["dtype"], r["threads"]): r for r in rows}
    header = f"{'pass':<28}" + "".join(f" | {d} {t} thr: ours  numpy  ratio"
                                       for d in dtypes for t in threads)
    print(header)
    print("-" * len(header))
    for name in dict.fromkeys(r["pass"] for r in rows):
        cells = []
        for d in dtypes:
            for t in threads:
                r = by_key.get((name, d, t))
                cells.append(" | " + (f"{'':>{len(d) + len(str(t)) + 6}}{r['ours_ns']:6.2f} "
                                      f"{r['numpy_ns']:6.2f} {r['ratio']:5.2f}x" if r else ""))
        print(f"{name:<28}" + "".join(cells))


def print_updates(rows):
    """ns per parameter of each optimizer's update pass, per network and dtype."""
    print("\nOptimizer update passes (Engine.apply_update): ns per parameter, best of the rounds;"
          "\nadam/momentum: the median over the rounds of their ratio within a round")
    optimizers = list(dict.fromkeys(r["optimizer"] for r in rows))
    header = (f"{'network':<10} {'parameters':>10} {'dtype':<8} {'thr':>3} | "
              + " ".join(f"{name:>{max(9, len(name))}}" for name in optimizers)
              + " | adam/momentum")
    print(header)
    print("-" * len(header))
    by_key = {}
    for r in rows:
        by_key.setdefault((r["network"], r["dtype"], r["threads"]), {})[r["optimizer"]] = r
    for (network, dtype, threads), cells in by_key.items():
        first = next(iter(cells.values()))
        ratio = cells["adam"]["adam_over_momentum"]
        print(f"{network:<10} {first['n_params']:>10} {dtype:<8} {threads:>3} | "
              + " ".join(f"{cells[name]['ns_per_param']:{max(9, len(name))}.3f}"
                         for name in optimizers)
              + f" | {ratio:.2f}x")


def print_fit(workers):
    """µs per minibatch step of fit, the reference's fit and a train_step loop;
    the digits comparison with scikit-learn."""
    samples = {r["samples"] for worker in workers for r in worker["configs"]}
    print(f"\nfit: µs per minibatch step of whole epochs on {', '.join(map(str, samples))} "
          "shuffled rows (relu + SGD + MSE, float64; best of 3 runs each)")
    header = (f"{'config':<7} {'thr':>3} | {'fit':>8} {'reference fit':>14} {'vs ref':>7} "
              f"| {'train_step loop':>15} {'vs loop':>7}")
    print(header)
    print("-" * len(header))
    for worker in workers:
        for r in worker["configs"]:
            print(f"{r['config']:<7} {r['threads']:>3} | {r['fit us']:8.3f} "
                  f"{r['reference fit us']:14.2f} {r['reference fit us'] / r['fit us']:6.1f}x "
                  f"| {r['train_step loop us']:15.3f} "
                  f"{r['train_step loop us'] / r['fit us']:6.2f}x")
    for worker in workers:
        d = worker["digits"]
        if d is None:
            print("digits: scikit-learn not installed, skipped")
            continue
        print(f"digits ({d['train_samples']} training samples, {d['epochs']} epochs, "
              f"{d['threads']} thr): cbackprop fit {d['cbackprop s']:.3f} s "
              f"(test accuracy {d['cbackprop accuracy']:.3f}), scikit-learn MLPClassifier "
              f"{d['sklearn s']:.3f} s ({d['sklearn accuracy']:.3f}): "
              f"{d['sklearn s'] / d['cbackprop s']:.1f}x"
              + ("" if d.get("products at peak s") is None else
                 f"; fit's products alone take {d['products at peak s']:.3f} s at the FMA peak"))


def shape_text(row):
    return f"{row['M']}x{row['K']}x{row['N']} {row['form']}"


def print_gemm(gemm, dtypes, threads, workers):
    rounds = len(gemm[0]["ours_s_samples"])
    samples = len(gemm[0]["ours_s_samples"][0])
    print(f"\nGEMM: engine.op_gemm (ours) vs numpy.matmul, {rounds} rounds of one phase per "
          f"library, {samples} samples per phase.\nGF/s = 2*M*K*N / t, best sample over all "
          f"rounds; % = of the FMA peak at T threads, T x the per-core peak;\nratio = ours/numpy, "
          f"the median over the {rounds} rounds of ours best-in-round / numpy best-in-round;\n"
          f"{UNSTEADY_MARK} after a ratio: its rounds' ratios spread more than "
          f"{UNSTEADY_SPREAD:.1f}x (the machine was busy: the GF/s and the ratio may disagree)")
    for dtype in dtypes:
        print_gemm_table([r for r in gemm if r["dtype"] == dtype], dtype, threads)
    print_gemm_summary(gemm, dtypes, threads)
    for line in other_blas_lines(gemm):
        print(line)
    errors = [r["rel_err"] for r in gemm]
    print(f"largest |ours - numpy| / max|numpy| over all products: {max(errors):.1e}")
    for w in workers:
        overhead = w["info"]["gemm_call_overhead_us"]
        print(f"fixed cost per call (1x1x1 float64), {w['threads']} thr: "
              f"ours {overhead['ours']:.2f} us (through cb.ops.gemm {overhead['ops']:.2f} us), "
              f"numpy {overhead['numpy']:.2f} us")


def print_gemm_table(rows, dtype, threads):
    """One dtype: a line per product, a column group per thread count."""
    order = {cls: i for i, cls in enumerate(GEMM_CLASSES)}
    products = {}
    for r in sorted(rows, key=lambda r: order[r["class"]]):
        key = (r["class"], r["form"], r["M"], r["K"], r["N"], r["source"])
        products.setdefault(key, {})[r["threads"]] = r
    peaks = {r["threads"]: r["peak_gflops"] for r in rows}
    cell = 35
    head = f"{'form':<6} {'M x K x N':<16} {'from':<18}"
    titles = "".join(f" | {t} thr, peak {peaks[t]:.1f} GF/s".ljust(cell)
                     for t in threads if t in peaks)
    print(f"\n{dtype:<{len(head)}}{titles}".rstrip())
    print(head + "".join(f" | {'ours':>6} {'%':>5} {'numpy':>6} {'%':>5} {'ratio':>5} "
                         for t in threads if t in peaks).rstrip())
    print("-" * (len(head) + cell * len(peaks)))
    previous = None
    for (cls, form, M, K, N, source), cells in products.items():
        if previous and previous != cls:
            print()
        previous = cls
        line = f"{form:<6} {f'{M}x{K}x{N}':<16} {source[:18]:<18}"
        for t in threads:
            r = cells.get(t)
            if t in peaks:
                line += (f" | {r['ours_gflops']:6.1f} {100 * r['ours_of_peak']:4.0f}% "
                         f"{r['numpy_gflops']:6.1f} {100 * r['numpy_of_peak']:4.0f}% "
                         f"{ratio_text(r)}" if r else " | " + "-".center(cell - 3))
        print(line.rstrip())


UNSTEADY_MARK, UNSTEADY_SPREAD = "~", 1.2


def ratio_text(row):
    """The ratio in 5 characters (no decimals from 100 on), then UNSTEADY_MARK
    when the largest of its rounds' ratios is beyond UNSTEADY_SPREAD times the
    smallest."""
    ratio = row["ratio"]
    text = f"{ratio:5.2f}" if ratio < 100 else f"{ratio:5.0f}"
    rounds = row.get("round_ratios") or [ratio]
    unsteady = max(rounds) > UNSTEADY_SPREAD * min(rounds)
    return text + (UNSTEADY_MARK if unsteady else " ")


def value_span(rows, key, scale=1.0, digits=1):
    """'low-high' of rows' ``key`` (times ``scale``), or one figure where they
    print the same."""
    low, high = (f"{min(r[key] for r in rows) * scale:.{digits}f}",
                 f"{max(r[key] for r in rows) * scale:.{digits}f}")
    return low if low == high else f"{low}-{high}"


def other_blas_lines(gemm):
    """A line per size, dtype and thread count of the squares torch.matmul was
    timed on (GEMM_PEAK_SIZE): its GF/s and share of the FMA peak in the
    three forms beside ours and numpy's (what another BLAS reaches on the
    same machine), and its largest difference from numpy's product."""
    groups = {}
    for r in gemm:
        if r.get("torch_gflops") is not None:
            groups.setdefault((r["M"], r["dtype"], r["threads"]), []).append(r)
    lines = []
    for (n, dtype, threads), rows in groups.items():
        forms = f"{len(rows)} form" + ("s" if len(rows) > 1 else "")
        lines.append(f"torch.matmul {n}x{n}x{n} {dtype} {threads} thr ({forms}): "
                     f"{value_span(rows, 'torch_gflops')} GF/s, "
                     f"{value_span(rows, 'torch_of_peak', 100, 0)} % of the FMA peak (ours "
                     f"{value_span(rows, 'ours_of_peak', 100, 0)} %, numpy "
                     f"{value_span(rows, 'numpy_of_peak', 100, 0)} %); |torch - numpy| / "
                     f"max|numpy| <= {max(r['torch_rel_err'] for r in rows):.1e}")
    return lines


def gemm_class_summary(gemm):
    """{(class, dtype, threads): (median ratio, the row with the smallest ratio)}."""
    groups = {}
    for row in gemm:
        groups.setdefault((row["class"], row["dtype"], row["threads"]), []).append(row)
    return {key: (statistics.median(r["ratio"] for r in rows), min(rows, key=lambda r: r["ratio"]))
            for key, rows in groups.items()}


def print_gemm_summary(gemm, dtypes, threads):
    summary = gemm_class_summary(gemm)
    cell = 38
    print("\nratio ours/numpy per class: median, minimum (at M x K x N form)")
    print((f"{'class':<8} {'dtype':<7}" + "".join(f" | {t} thr".ljust(cell) for t in threads))
          .rstrip())
    for cls in GEMM_CLASSES:
        for dtype in dtypes:
            if not any((cls, dtype, t) in summary for t in threads):
                continue
            line = f"{cls:<8} {dtype:<7}"
            for t in threads:
                median, worst = summary.get((cls, dtype, t), (None, None))
                line += (f" | {median:4.2f}  {worst['ratio']:4.2f} ({shape_text(worst)})"
                         if worst else " | -").ljust(cell)
            print(line.rstrip())


# ------------------------------------------------------------------ targets

COMPARISONS = {">=": operator.ge, ">": operator.gt, "<=": operator.le}
TORCH_TARGET_ALL_THREADS = ("tiny", "small")


def target(what, measured, op, goal, unit="x"):
    """One verdict; a figure that was not measured (None) fails."""
    passed = measured is not None and COMPARISONS[op](measured, goal)
    return {"what": what, "measured": measured, "op": op, "target": goal, "unit": unit,
            "pass": passed}


def reference_target(config, threads):
    """The reference/compiled speedup required, or None where none is set."""
    if config in SPEEDUP_TARGETS_ALL_THREADS:
        return SPEEDUP_TARGETS_ALL_THREADS[config]
    return SPEEDUP_TARGETS_BY_THREADS.get(threads)


def train_targets(results, with_torch=None):
    """``with_torch``: whether the run measured torch (None: whether any row has its figure)."""
    checks = []
    for r in results:
        goal = reference_target(r["config"], r["threads"])
        if goal is not None:
            checks.append(target(f"{r['workload']} {r['config']} {r['dtype']} {r['threads']} thr: "
                                 "reference/compiled", r.get("speedup"), ">=", goal))
    # A config that failed (its row an error) fails its torch target too, in a run with torch.
    if with_torch is None:
        with_torch = any(r.get("speedup_vs_torch") is not None for r in results)
    for r in results:
        if (r.get("speedup_vs_torch") is not None or (with_torch and r.get("error"))) and (
                r["config"] in TORCH_TARGET_ALL_THREADS or r["threads"] == 1):
            checks.append(target(f"{r['workload']} {r['config']} {r['dtype']} {r['threads']} thr: "
                                 "torch/compiled", r.get("speedup_vs_torch"), ">", TORCH_TARGET))
    for r in results:
        if r["config"] == CALL_FLOOR_CONFIG and r["threads"] == 1:
            checks.append(target(f"{r['workload']} {r['config']} {r['dtype']} 1 thr: "
                                 "compiled us per train_step call", r.get("compiled_us"), "<=",
                                 CALL_FLOOR_US, unit="us"))
    for r in results:
        if r["config"] in FMA_LIMIT_CONFIGS and r["threads"] == 1 and r["workload"] == "relu-sgd":
            checks.append(target(f"{r['workload']} {r['config']} {r['dtype']} 1 thr: "
                                 "compiled step / FMA limit",
                                 r.get("step_over_limit"), "<=", FMA_LIMIT_TARGET))
    return checks


def gemm_targets(gemm):
    one_thread = [r for r in gemm if r["threads"] == 1]
    checks = []
    for (cls, dtype, _), (median, worst) in gemm_class_summary(one_thread).items():
        checks.append(target(f"GEMM {cls} {dtype} 1 thr: median ours/numpy", median,
                             ">=", GEMM_MEDIAN_TARGET))
        checks.append(target(f"GEMM {cls} {dtype} 1 thr: min ours/numpy ({shape_text(worst)})",
                             worst["ratio"], ">=", GEMM_MIN_TARGET))
    n = GEMM_PEAK_SIZE
    dtypes = list(dict.fromkeys(r["dtype"] for r in one_thread))
    for dtype in dtypes:
        squares = [r for r in one_thread if r["dtype"] == dtype and r["M"] == r["K"] == r["N"] == n]
        if squares:  # the three forms
            worst = min(squares, key=lambda r: r["ours_of_peak"])
            checks.append(target(f"GEMM {n}x{n}x{n} {dtype} 1 thr: min ours / FMA peak "
                                 f"({worst['form']})", worst["ours_of_peak"], ">=",
                                 GEMM_PEAK_TARGET, unit="%"))
    for dtype in dtypes:
        small = [r for r in one_thread
                 if r["dtype"] == dtype and max(r["M"], r["K"], r["N"]) <= SMALL_PRODUCT]
        if small:
            worst = min(small, key=lambda r: r["ratio"])
            checks.append(target(f"GEMM M,K,N <= {SMALL_PRODUCT} {dtype} 1 thr: min ours/numpy "
                                 f"({shape_text(worst)})", worst["ratio"], ">=",
                                 SMALL_PRODUCT_TARGET))
    return checks


def elementwise_targets(rows):
    """Every element-wise pass at 1 thread no slower than the reference's NumPy."""
    return [target(f"{r['pass']} {r['dtype']} 1 thr: numpy/ours per element", r["ratio"], ">=",
                   ELEMENTWISE_TARGET) for r in rows if r["threads"] == 1]


def update_targets(rows):
    """Adam's update pass at 1 thread: in cache at most ADAM_IN_CACHE_NS per
    parameter; beyond L2 at most ADAM_OVER_MOMENTUM_TARGET x momentum's (the
    median of the rounds' ratios, ``adam_over_momentum``)."""
    checks = []
    adam = {(r["network"], r["dtype"]): r for r in rows
            if r["threads"] == 1 and r["optimizer"] == "adam"}
    for (network, dtype), row in adam.items():
        if network == "in cache":
            checks.append(target(f"Adam update {dtype} in cache 1 thr: ns per parameter",
                                 row["ns_per_param"], "<=", ADAM_IN_CACHE_NS[dtype], unit="ns"))
        else:
            checks.append(target(f"Adam update {dtype} {network} 1 thr: Adam / momentum",
                                 row["adam_over_momentum"], "<=", ADAM_OVER_MOMENTUM_TARGET))
    return checks


def fit_targets(workers):
    """fit at 1 thread: tiny's µs per step, each config against the reference's
    fit, digits against scikit-learn (by the worker's engine build) at an
    accuracy of at least DIGITS_ACCURACY and scikit-learn's."""
    checks = []
    for worker in workers:
        for r in worker["configs"]:
            # The targets are set for the default data (an epoch of
            # FIT_SAMPLES rows); a --fit-samples run is a measurement only.
            if r["threads"] != 1 or r["samples"] != FIT_SAMPLES:
                continue
            if r["config"] == "tiny":
                checks.append(target("fit tiny float64 1 thr: us per minibatch step",
                                     r["fit us"], "<=", FIT_TINY_US, unit="us"))
            if r["config"] in FIT_OVER_REFERENCE:
                checks.append(target(f"fit {r['config']} float64 1 thr: reference fit / fit",
                                     r["reference fit us"] / r["fit us"], ">=",
                                     FIT_OVER_REFERENCE[r["config"]]))
        d = worker["digits"]
        if d is not None and d["threads"] == 1:
            goal = DIGITS_OVER_SKLEARN[worker["kernel_path"]]
            checks.append(target(f"digits 1 thr ({worker['kernel_path']}): MLPClassifier s / fit s",
                                 d["sklearn s"] / d["cbackprop s"], ">=", goal))
            floor = max(DIGITS_ACCURACY, d["sklearn accuracy"])
            checks.append(target("digits 1 thr: fit's test accuracy", d["cbackprop accuracy"],
                                 ">=", floor, unit="accuracy"))
    return checks


def evaluate_targets(results, gemm, elementwise=(), updates=(), fit=(), with_torch=None):
    """The issue's targets, as dicts (what, measured, op, target, unit, pass)."""
    return (train_targets(results, with_torch) + gemm_targets(gemm)
            + elementwise_targets(elementwise)
            + update_targets(updates) + fit_targets(fit))


def format_figure(value, unit):
    if value is None:
        return "n/a"
    if unit in ("ns", "us"):
        return f"{value:.2f} {unit}"
    if unit == "accuracy":
        return f"{value:.3f}"
    return f"{100 * value:.1f}%" if unit == "%" else f"{value:.2f}x"


def format_goal(goal, unit):
    if unit in ("ns", "us"):
        return f"{goal:g} {unit}"
    if unit == "accuracy":
        return f"{goal:.3f}"
    return f"{100 * goal:g}%" if unit == "%" else f"{goal:g}x"


def left_out(args, with_torch, fit):
    """What this run did not measure that a default run does: the targets on
    it are not in the count."""
    parts = [f"{what} {', '.join(map(str, missing))}" for what, missing in (
        ("configs", [c for c in CONFIGS if c not in args.configs]),
        ("workloads", [w for w in WORKLOADS if w not in args.workloads]),
        ("dtypes", [d for d in DTYPES if d not in args.dtypes]),
        ("thread counts", [t for t in (1, 2) if t not in args.threads])) if missing]
    parts += [section for section, skipped in (
        ("the GEMM", args.no_gemm), ("the element-wise passes", args.no_elementwise),
        ("the optimizer updates", args.no_updates), ("fit", args.no_fit),
        ("PyTorch", not with_torch),
        ("the digits comparison (no scikit-learn)",
         not args.no_fit and any(w["digits"] is None for w in fit))) if skipped]
    if not args.no_fit and args.fit_samples != FIT_SAMPLES:
        parts.append(f"fit's targets (--fit-samples {args.fit_samples})")
    return parts


def print_targets(checks, not_measured=()):
    print("\nTargets (informational: they do not change the exit code)")
    if not_measured:
        print(f"  not measured in this run, so not counted: {'; '.join(not_measured)}")
    if not checks:
        print("  none apply (most targets are set for 1 and 2 threads)")
        return
    width = max(len(c["what"]) for c in checks)
    for c in checks:
        goal = f"{c['op']} {format_goal(c['target'], c['unit'])}"
        print(f"  {c['what']:<{width}}  {format_figure(c['measured'], c['unit']):>8}  "
              f"{goal:<8}  {'PASS' if c['pass'] else 'FAIL'}")
    failed = sum(not c["pass"] for c in checks)
    print(f"  {len(checks) - failed} of {len(checks)} targets pass")


# ------------------------------------------------------------------ outputs

def write_json(path, args, workers, results, gemm, checks, elementwise=(), updates=(), fit=()):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    first = workers[0]["info"]
    payload = {
        "machine": {k: first[k] for k in ("cpu", "cpu_count", "machine", "hostname", "platform",
                                          "blas", "kernel_path", "tile_table", "cpu_features")},
        "versions": {k: first[k] for k in ("python", "numpy", "cbackprop", "torch")},
        "threads": [w["threads"] for w in workers],
        "workers": [dict(w["info"], threads=w["threads"]) for w in workers],
        "settings": {"quick": args.quick, "repeats": args.repeats, "target_ms": args.target_ms,
                     "warmup_steps": args.warmup_steps, "seed": args.seed, "lr": args.lr,
                     "workloads": {name: WORKLOADS[name] for name in args.workloads},
                     "pool_size": POOL_SIZE, "pause_s": PAUSE_S,
                     "tolerance": TOLERANCE, "malloc_env": MALLOC_VARS,
                     "gemm_rounds": GEMM_ROUNDS, "gemm_samples": args.gemm_samples,
                     "gemm_target_s": args.gemm_target_s},
        "results": results,
        "gemm": gemm,
        "elementwise": list(elementwise),
        "updates": list(updates),
        "fit": list(fit),
        "targets": checks,
    }
    path.write_text(json.dumps(payload, indent=1) + "\n")
    return path


def report_cross_check(results):
    failed = [r for r in results if not r["ok"]]
    for r in failed:
        reason = r["error"] or (f"max |dloss|/|loss| = {r['max_rel_dloss']:.2e} "
                                f"> {r['tolerance']:g}")
        print(f"CROSS-CHECK FAILED: {r['workload']} {r['config']} {r['dtype']} {r['threads']} thr: "
              f"{reason}")
    return failed
