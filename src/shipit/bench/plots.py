"""Bench plots (matplotlib, Agg): task scores, quality vs size and latency with the Pareto front, stage effects."""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path


def pareto_front(points: dict[str, tuple[float, float]], failed: Collection[str] = ()) -> list[str]:
    """Names not dominated when maximising the first value and minimising the second, ordered by the second. A name in
    `failed` (it failed a gate, so it is no choice) is neither on the front nor dominates a name that is."""
    ok = {n: p for n, p in points.items() if n not in failed}
    front = [n for n, (q, c) in ok.items()
             if not any(q2 >= q and c2 <= c and (q2, c2) != (q, c) for q2, c2 in ok.values())]
    return sorted(front, key=lambda n: points[n][1])


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def scores_plot(summary: dict, path: Path) -> None:
    """Grouped bars: each task's score per candidate, and the weighted score."""
    plt = _plt()
    names, tasks = list(summary["results"]), summary["tasks"] + ["score"]
    fig, ax = plt.subplots(figsize=(max(6, 1.1 * len(names) + 2), 3.6))
    width = 0.8 / len(tasks)
    for j, t in enumerate(tasks):
        vals = [summary["results"][n][t]["score"] if t != "score" else summary["results"][n]["score"] for n in names]
        vals = [float("nan") if v is None else v for v in vals]  # the judge's reference has no bar
        ax.bar([i + j * width for i in range(len(names))], vals, width, label=t,
               color="black" if t == "score" else None)
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(names))], names, rotation=20, ha="right", fontsize=8)
    ax.set_ylabel("score (0-1)")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=7, ncol=4, loc="upper left")
    ax.set_title("Task scores per candidate (black: weighted score)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def tradeoff_plot(summary: dict, path: Path) -> None:
    """Weighted score vs size on disk and vs per-token latency, with the Pareto front; gate failures greyed."""
    plt = _plt()
    res = summary["results"]
    failed = set(summary.get("failed", {}))
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, (metric, label) in zip(axes, [("size_mb", "size on disk (MB)"), ("latency_p50_ms", "latency p50 (ms/token)")]):
        pts = {n: (r["score"], r["efficiency"][metric]) for n, r in res.items()}
        front = pareto_front(pts, failed)
        ax.plot([pts[n][1] for n in front], [pts[n][0] for n in front], "--", color="tab:green", marker="o",
                markerfacecolor="none", markersize=12,
                label="Pareto front" + (" (of those that pass the gates)" if failed else ""))
        for n, (q, c) in pts.items():
            style = dict(marker="x", color="grey") if n in failed else dict(marker="o", color="tab:blue")
            if n == summary.get("winner"):
                style = dict(marker="*", color="tab:red", markersize=14)
            ax.plot(c, q, linestyle="none", **style)
            ax.annotate(n, (c, q), fontsize=7, xytext=(4, 3), textcoords="offset points")
        ax.set_xlabel(label)
        ax.set_ylabel("weighted score")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle("Quality vs cost (red star: winner; grey x: failed a gate)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def stages_plot(rows: list[tuple[str, str, float, float]], path: Path) -> None:
    """Small multiples: before and after bars for each (candidate, metric) a stage reported."""
    plt = _plt()
    cols = 4
    nrows = (len(rows) + cols - 1) // cols
    fig, axes = plt.subplots(nrows, cols, figsize=(12, 2.3 * nrows), squeeze=False)
    for ax, (name, metric, before, after) in zip(axes.flat, rows):
        bars = ax.bar(["before", "after"], [before, after], color=["tab:grey", "tab:blue"])
        ax.bar_label(bars, labels=[f"{before:.3g}", f"{after:.3g}"], fontsize=7)
        if min(before, after) > 0 and max(before, after) / min(before, after) > 20:
            ax.set_yscale("log")  # perplexities that fall by orders of magnitude stay visible
        ax.margins(y=0.2)  # room for the value labels
        ax.set_title(f"{name}\n{metric}", fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(rows):]:
        ax.axis("off")
    fig.suptitle("What each stage changed (from its manifest)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
