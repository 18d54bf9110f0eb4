"""The speedup chart (bench/results/speedups.png), when matplotlib is
importable."""
from pathlib import Path

from .report import reference_target
from .settings import CONFIGS


def set_log_ticks(ax, values):
    """Log scale from below 1x to above the largest bar, ticks labelled 0.5x, 1x, 2x..."""
    low = min([0.5] + [v / 1.5 for v in values])
    high = max([2.0] + [v * 1.6 for v in values])
    ax.set_yscale("log")
    ax.set_ylim(low, high)
    ticks = [m * 10.0 ** e for e in range(-3, 5) for m in (1, 2, 5) if low <= m * 10.0 ** e <= high]
    ax.set_yticks(ticks)
    ax.set_yticklabels([f"{t:g}x" for t in ticks])
    ax.minorticks_off()


def plot_speedups(path, results, configs, dtypes, threads, with_torch, title):
    """Grouped bars, log scale: vs reference (and vs torch). None without matplotlib."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    panels = [("speedup", "reference us / compiled us", True)]
    if with_torch:
        panels.append(("speedup_vs_torch", "torch us / compiled us", False))
    fig, axes = plt.subplots(len(panels), 1, figsize=(12, 4.6 * len(panels)), squeeze=False)
    series = [(d, t) for d in dtypes for t in threads]
    colours = {"float64": plt.cm.Blues, "float32": plt.cm.Oranges}
    width = 0.8 / len(series)
    by_key = {(r["config"], r["dtype"], r["threads"]): r for r in results}
    for ax, (field, label, show_targets) in zip(axes[:, 0], panels):
        for i, (dtype, t) in enumerate(series):
            shade = colours[dtype](0.45 + 0.45 * threads.index(t) / max(1, len(threads) - 1))
            xs, ys, goals = [], [], []
            for c, name in enumerate(configs):
                value = by_key.get((name, dtype, t), {}).get(field)
                if value:
                    xs.append(c - 0.4 + width * (i + 0.5))
                    ys.append(value)
                    goals.append(reference_target(name, t))
            bars = ax.bar(xs, ys, width * 0.92, color=shade, label=f"{dtype}, {t} thr")
            ax.bar_label(bars, labels=[f"{y:.2g}" if y < 10 else f"{y:.0f}" for y in ys],
                         fontsize=7, padding=1)
            if show_targets:
                marked = [(x, goal) for x, goal in zip(xs, goals) if goal is not None]
                ax.hlines([goal for _, goal in marked], [x - width * 0.4 for x, _ in marked],
                          [x + width * 0.4 for x, _ in marked], colors="black", linewidth=1.5,
                          label="target" if i == 0 else None)
        ax.axhline(1.0, color="crimson", linewidth=1, linestyle="--", label="1x")
        set_log_ticks(ax, [r[field] for r in results if r.get(field)])
        ax.set_xticks(range(len(configs)))
        ax.set_xticklabels([f"{n}\n{CONFIGS[n][0]} b{CONFIGS[n][1]}" for n in configs],
                           fontsize=8)
        ax.set_ylabel(label)
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=8, ncol=3, loc="upper right")
    axes[0, 0].set_title(title, fontsize=10)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
