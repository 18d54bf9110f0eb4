"""The processes: ``worker_main`` times everything at one thread count;
``parent_main`` starts one worker per thread count, merges their figures and
reports them."""
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .chart import plot_speedups
from .elementwise import bench_elementwise
from .updates import bench_updates
from .fit import bench_fit
from .gemm import bench_gemm, call_overhead_us
from .machine import load_torch, measure_fma_peak, measure_tile_gflops, worker_info
from .networks import add_fma_limit
from .report import (evaluate_targets, left_out, print_elementwise, print_fit, print_gemm,
                     print_header, print_updates,
                     print_targets, print_train_table, report_cross_check, write_json)
from .settings import FMA_LIMIT_CONFIGS, MALLOC_VARS, RUN_SCRIPT, THREAD_VARS, WORKLOADS
from .timing import bench_config_safely, log


def worker_main(args):
    start = time.perf_counter()
    torch, torch_skipped = load_torch(args)
    info = worker_info(torch, torch_skipped)
    info["fma_peak_gflops"] = measure_fma_peak(args.dtypes)
    info["tile_gflops"] = measure_tile_gflops(args.dtypes)
    tag = f"[{args.threads[0]} thr]"
    peaks = ", ".join(f"{gflops:.1f} GF/s {dtype}" for dtype, gflops in info["fma_peak_gflops"].items())
    log(args, f"{tag} FMA peak per core: {peaks}")
    results = []
    for workload, name in workload_configs(args):
        for dtype in args.dtypes:
            result = bench_config_safely(workload, name, dtype, args, torch)
            if name in FMA_LIMIT_CONFIGS and not result.get("error"):
                add_fma_limit(result, info["fma_peak_gflops"])
            results.append(result)
            log(args, f"{tag} {workload} {name} {dtype} done at "
                      f"{time.perf_counter() - start:.1f} s")

    def section(name, skipped, measure, nothing):
        if skipped:
            return nothing
        figures = measure()
        log(args, f"{tag} {name} done at {time.perf_counter() - start:.1f} s")
        return figures

    elementwise = section("element-wise passes", args.no_elementwise,
                          lambda: bench_elementwise(args), [])
    updates = section("optimizer updates", args.no_updates, lambda: bench_updates(args), [])
    fit = section("fit", args.no_fit, lambda: bench_fit(args, info["fma_peak_gflops"]), None)
    gemm = section("GEMM", args.no_gemm, lambda: bench_gemm(args, info["fma_peak_gflops"], torch),
                   [])
    info["gemm_call_overhead_us"] = None if args.no_gemm else call_overhead_us(args)
    info["wall_s"] = time.perf_counter() - start
    Path(args.out).write_text(json.dumps({"info": info, "results": results, "gemm": gemm,
                                          "elementwise": elementwise, "updates": updates,
                                          "fit": fit}))
    return 0


def workload_configs(args):
    """(workload, config) pairs to time, in report order: each workload on the
    chosen configs it runs on."""
    return [(workload, name) for workload in args.workloads for name in args.configs
            if WORKLOADS[workload][5] is None or name in WORKLOADS[workload][5]]


def worker_command(args, threads, out):
    cmd = [sys.executable, str(RUN_SCRIPT), "--worker", "--threads", str(threads),
           "--out", out, "--configs", *args.configs, "--workloads", *args.workloads,
           "--dtypes", *args.dtypes,
           "--repeats", str(args.repeats), "--target-ms", str(args.target_ms),
           "--lr", repr(args.lr), "--seed", str(args.seed),
           "--fit-samples", str(args.fit_samples)]
    for flag in ("quick", "no_torch", "no_gemm", "no_elementwise", "no_updates", "no_fit",
                 "verbose"):
        if getattr(args, flag):
            cmd.append("--" + flag.replace("_", "-"))
    return cmd


def worker_env(threads):
    env = dict(os.environ, **MALLOC_VARS)
    env.update({name: str(threads) for name in THREAD_VARS})
    return env


def busy_cpu_seconds():
    """CPU time used by the whole machine so far (None where /proc is missing)."""
    try:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def children_cpu_seconds():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_worker(args, threads):
    """Run one worker process; its figures, or None if it failed. Also
    measures how many cores other processes kept busy meanwhile."""
    with tempfile.TemporaryDirectory(prefix="cbackprop-bench-") as tmp:
        out = os.path.join(tmp, f"threads{threads}.json")
        busy0, ours0, start = busy_cpu_seconds(), children_cpu_seconds(), time.perf_counter()
        proc = subprocess.run(worker_command(args, threads, out), env=worker_env(threads))
        busy1, ours1, wall = busy_cpu_seconds(), children_cpu_seconds(), time.perf_counter() - start
        if proc.returncode != 0 or not os.path.exists(out):
            print(f"worker for {threads} thread(s) failed (exit code {proc.returncode})")
            return None
        figures = json.loads(Path(out).read_text())
    other = None
    if busy0 is not None:
        other = max(0.0, (busy1 - busy0) - (ours1 - ours0)) / wall
    figures["info"]["other_load_cores"] = other
    return figures


def parent_main(args):
    workers = []
    for threads in args.threads:
        figures = run_worker(args, threads)
        if figures is None:
            return 1
        workers.append(dict(figures, threads=threads))
    order = {key: i for i, key in enumerate(
        (w, n, d, t) for w, n in workload_configs(args) for d in args.dtypes
        for t in args.threads)}
    results = sorted((r for w in workers for r in w["results"]),
                     key=lambda r: order[(r["workload"], r["config"], r["dtype"], r["threads"])])
    gemm = [row for w in workers for row in w["gemm"]]
    elementwise = [row for w in workers for row in w["elementwise"]]
    updates = [row for w in workers for row in w["updates"]]
    fit = [dict(w["fit"], kernel_path=w["info"]["kernel_path"]) for w in workers if w["fit"]]
    with_torch = workers[0]["info"]["torch"] is not None

    print_header(args, workers)
    print_train_table(results, with_torch)
    if elementwise:
        print_elementwise(elementwise)
    if updates:
        print_updates(updates)
    if fit:
        print_fit(fit)
    if gemm:
        print_gemm(gemm, args.dtypes, args.threads, workers)
    checks = evaluate_targets(results, gemm, elementwise, updates, fit, with_torch)
    print_targets(checks, left_out(args, with_torch, fit))

    written = write_json(args.json_path, args, workers, results, gemm, checks, elementwise,
                         updates, fit)
    print(f"\nfigures written to {written}")
    charted = [r for r in results if r["workload"] == "relu-sgd"]
    if not charted:
        print("no chart: it shows relu-sgd, which this run left out")
    else:
        first = workers[0]["info"]
        title = (f"cbackprop train_step speedups (relu-sgd), {first['cpu']}, "
                 f"kernel {first['kernel_path']}, "
                 f"{time.strftime('%Y-%m-%d')}" + (" (quick)" if args.quick else ""))
        drawn = plot_speedups(args.png_path, charted, args.configs, args.dtypes, args.threads,
                              with_torch, title)
        print(f"chart drawn to {drawn}" if drawn else "matplotlib not importable: no chart")
    return 1 if report_cross_check(results) else 0
