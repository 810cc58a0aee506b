"""The Pareto front of merge-search trials, and the plot of trials against it."""

from __future__ import annotations

from pathlib import Path


def _oriented(row: dict, objectives) -> list[float]:
    """Objective values with minimized ones negated, so larger is better on every axis."""
    return [row["values"][o.name] * (1 if o.direction == "maximize" else -1) for o in objectives]


def dominates(a: list[float], b: list[float]) -> bool:
    """True when `a` is at least as good as `b` everywhere and better somewhere (larger is better)."""
    return all(x >= y for x, y in zip(a, b)) and any(x > y for x, y in zip(a, b))


def pareto_front(rows: list[dict], objectives) -> list[dict]:
    """Trials that no other trial dominates (repeated points counted once), in trial order."""
    rows = [r for r in rows if "duplicate_of" not in r]
    points = [_oriented(r, objectives) for r in rows]
    return [r for r, p in zip(rows, points) if not any(dominates(q, p) for q in points)]


def winner_label(winner: dict) -> tuple[str, str]:
    """The winner's legend entry and the plot's title line about it: a winner that misses a constraint was kept only
    because no trial met them all."""
    missed = [k for k, v in winner.get("violations", {}).items() if v]
    if not missed:
        return f"winner (trial {winner['trial']})", ""
    return (f"winner (trial {winner['trial']}; misses a constraint)",
            f"no trial met every constraint: the winner misses {', '.join(missed)}")


def front_legend(objectives) -> tuple[bool, str]:
    """Whether to draw the front as a line, and the legend entry of its points. With more than two objectives the
    plot shows the first two: a trial can be non-dominated by a third alone (run 8: the trial with the best
    retention, below another on both axes), and a line through it read as a front that makes no sense."""
    if len(objectives) <= 2:
        return len(objectives) == 2, "non-dominated"
    others = ", ".join(o.name for o in objectives[2:])
    return False, f"non-dominated on all {len(objectives)} objectives (also {others})"


def plot_search(rows: list[dict], front: list[dict], winner: dict, objectives, path: Path) -> Path:
    """Scatter of every trial (first two objectives, or score per trial for one), each labelled with its number;
    the front, the winner and the trials that miss a constraint marked."""
    import textwrap

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.8))
    methods = list(dict.fromkeys(r["method"] for r in rows))

    def xy(rs):
        if len(objectives) == 1:
            return [r["trial"] for r in rs], [r["values"][objectives[0].name] for r in rs]
        return [r["values"][objectives[0].name] for r in rs], [r["values"][objectives[1].name] for r in rs]

    for method in methods:
        ax.scatter(*xy([r for r in rows if r["method"] == method]), alpha=0.6, label=method)
    draw_line, front_label = front_legend(objectives)
    if draw_line:
        line = sorted(front, key=lambda r: r["values"][objectives[0].name])
        ax.plot(*xy(line), color="black", linewidth=1, label="Pareto front")
    ax.scatter(*xy(front), facecolors="none", edgecolors="black", s=90, label=textwrap.fill(front_label, 40))
    missed = [r for r in rows if any(r.get("violations", {}).values())]
    if missed:  # the constraints, not the objectives, ruled these out
        ax.scatter(*xy(missed), marker="x", color="black", s=40, label="misses a constraint")
    label, caveat = winner_label(winner)
    ax.scatter(*xy([winner]), marker="*", color="red", s=220, label=label)
    for r, x, y in zip(rows, *xy(rows)):
        ax.annotate(str(r["trial"]), (x, y), textcoords="offset points", xytext=(6, 4), fontsize=7)
    arrow = {"maximize": "higher is better", "minimize": "lower is better"}
    if len(objectives) == 1:
        ax.set_xlabel("trial")
        ax.set_ylabel(f"{objectives[0].name} ({arrow[objectives[0].direction]})")
    else:
        ax.set_xlabel(f"{objectives[0].name} ({arrow[objectives[0].direction]})")
        ax.set_ylabel(f"{objectives[1].name} ({arrow[objectives[1].direction]})")
    ax.set_title(f"merge search: {len(rows)} trials" + (f"\n{textwrap.fill(caveat, 90)}" if caveat else ""),
                 fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
