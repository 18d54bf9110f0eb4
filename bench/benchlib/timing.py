"""Timing ``train_step``: blocks of steps in alternating phases per
implementation, with the loss cross-check (bench/README.md, "Phases")."""
import gc
import statistics
import sys
import time

import numpy as np

from .networks import TorchNet, build_networks, make_batch_pool, restore, snapshot
from .settings import CONFIGS, LOSS_SCALE_FLOOR, PAUSE_S, PHASE_REPEATS, TOLERANCE


def log(args, message):
    if args.verbose:
        print(message, file=sys.stderr, flush=True)


def pause():
    """Let the previous library's idle threads stop spinning."""
    time.sleep(PAUSE_S)


def batches_from(pool, start, n):
    return [pool[(start + i) % len(pool)] for i in range(n)]


def time_block(train_step, batches):
    """Run ``batches`` through one network: (seconds, losses)."""
    losses = [0.0] * len(batches)
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        start = time.perf_counter()
        for i, (X, Y) in enumerate(batches):
            losses[i] = train_step(X, Y)
        elapsed = time.perf_counter() - start
    finally:
        if gc_was_enabled:
            gc.enable()
    return elapsed, losses


def warm_up(train_step, pool, min_steps, min_seconds):
    """Warm up; return a rough per-step time (it only sets block lengths)."""
    train_step(*pool[0])  # first call: allocations, page faults
    steps, start = 0, time.perf_counter()
    while steps < min_steps or time.perf_counter() - start < min_seconds:
        train_step(*pool[steps % len(pool)])
        steps += 1
    return (time.perf_counter() - start) / steps


def phase_lengths(repeats):
    """Repeats per phase: at most PHASE_REPEATS, as even as possible (11 -> 4, 4, 3)."""
    phases = -(-repeats // PHASE_REPEATS)
    return [repeats // phases + (1 if i < repeats % phases else 0) for i in range(phases)]


def compiled_phase(net, pool, repeats, n, first_step):
    """Time ``repeats`` blocks of ``n`` steps, saving the parameters and
    optimizer state (and the step index) each block starts from, for the
    other implementations."""
    starts, snapshots, seconds, losses = [], [], [], []
    step = first_step
    for _ in range(repeats):
        starts.append(step)
        snapshots.append(snapshot(net))
        elapsed, block_losses = time_block(net.train_step, batches_from(pool, step, n))
        seconds.append(elapsed)
        losses.append(block_losses)
        step += n
    return starts, snapshots, seconds, losses


def replay_phase(net, pool, starts, snapshots, n):
    """Time the same blocks from the same parameters (and, for the reference,
    the same optimizer state) on another implementation."""
    seconds, losses = [], []
    for start, state in zip(starts, snapshots):
        restore(net, state)
        elapsed, block_losses = time_block(net.train_step, batches_from(pool, start, n))
        seconds.append(elapsed)
        losses.append(block_losses)
    return seconds, losses


def relative_difference(a, b, floor=np.finfo(np.float64).tiny):
    """max |a - b| / max(|a|, |b|, floor) over the paired values."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    scale = np.maximum(np.maximum(np.abs(a), np.abs(b)), floor)
    return float(np.max(np.abs(a - b) / scale))


def microseconds(seconds, n):
    return [s / n * 1e6 for s in seconds]


def block_lengths(implementations, args):
    """Warm every implementation up (no pauses: the rough per-step times only
    set the block lengths). Returns N for compiled and reference together (a
    block of the slower takes ~target_ms) and N for torch alone."""
    target = args.target_ms / 1000
    est = {name: warm_up(net.train_step, pool, args.warmup_steps, args.warmup_s)
           for name, (net, pool) in implementations.items()}
    n = max(1, round(target / max(est["compiled"], est["reference"])))
    n_torch = max(1, round(target / est["torch"])) if "torch" in est else None
    return n, n_torch


def bench_config(workload, name, dtype, args, torch):
    sizes, batch = CONFIGS[name]
    compiled, reference = build_networks(sizes, dtype, args.seed, args.lr, workload)
    pool = make_batch_pool(sizes, batch, dtype, args.seed, workload)
    implementations = {"compiled": (compiled, pool), "reference": (reference, pool)}
    if torch is not None:
        torch_net = TorchNet(torch, sizes, dtype, args.lr, workload)
        torch_net.set_params(*compiled.get_params())
        implementations["torch"] = (torch_net, torch_net.convert(pool))
    n, n_torch = block_lengths(implementations, args)

    c_seconds, c_losses, r_seconds, r_losses, t_seconds, t_losses = [], [], [], [], [], []
    step = 0
    for repeats in phase_lengths(args.repeats):
        pause()
        starts, snapshots, seconds, losses = compiled_phase(compiled, pool, repeats, n, step)
        c_seconds += seconds
        c_losses += losses
        step = starts[-1] + n
        pause()
        seconds, losses = replay_phase(reference, pool, starts, snapshots, n)
        r_seconds += seconds
        r_losses += losses
        if torch is not None:
            pause()
            seconds, losses = replay_phase(*implementations["torch"], starts, snapshots, n_torch)
            t_seconds += seconds
            t_losses += losses
    result = {
        "workload": workload, "config": name, "sizes": sizes, "batch": batch, "dtype": dtype,
        "threads": args.threads[0], "repeats": args.repeats, "block_steps": n,
        "compiled_us_samples": microseconds(c_seconds, n),
        "reference_us_samples": microseconds(r_seconds, n),
        "max_rel_dloss": relative_difference(sum(c_losses, []), sum(r_losses, []),
                                             LOSS_SCALE_FLOOR[dtype]),
        "tolerance": TOLERANCE[dtype],
        "first_loss": c_losses[0][0], "last_loss": c_losses[-1][-1],
        "torch_block_steps": n_torch, "torch_us_samples": None,
        "torch_first_step_rel_dloss": None, "error": None,
    }
    if torch is not None:
        result["torch_us_samples"] = microseconds(t_seconds, n_torch)
        result["torch_first_step_rel_dloss"] = relative_difference(
            [block[0] for block in c_losses], [block[0] for block in t_losses],
            LOSS_SCALE_FLOOR[dtype])
    return summarise(result)


def summarise(result):
    median = statistics.median
    result["compiled_us"] = median(result["compiled_us_samples"])
    result["reference_us"] = median(result["reference_us_samples"])
    result["speedup"] = result["reference_us"] / result["compiled_us"]
    if result["torch_us_samples"]:
        result["torch_us"] = median(result["torch_us_samples"])
        result["speedup_vs_torch"] = result["torch_us"] / result["compiled_us"]
    else:
        result["torch_us"] = result["speedup_vs_torch"] = None
    result["ok"] = result["max_rel_dloss"] <= result["tolerance"]
    return result


def bench_config_safely(workload, name, dtype, args, torch):
    """A diverged or crashing config is a failed cross-check, not a crash."""
    try:
        return bench_config(workload, name, dtype, args, torch)
    except (FloatingPointError, ValueError) as exc:
        sizes, batch = CONFIGS[name]
        return {"workload": workload, "config": name, "sizes": sizes, "batch": batch, "dtype": dtype,
                "threads": args.threads[0], "ok": False,
                "error": f"{type(exc).__name__}: {exc}"}
