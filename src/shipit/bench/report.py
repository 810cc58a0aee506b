"""Markdown tables of bench results."""

from __future__ import annotations


def bench_table(summary: dict) -> str:
    """One row per candidate: weighted score, each task's headline metric and score, size and load time."""
    from shipit.bench.run import HEADLINE

    tasks = summary["tasks"]
    head = ["model", "score"] + [f"{t} {HEADLINE[t][0]} ({'↑' if HEADLINE[t][1] else '↓'})" for t in tasks]
    head += ["size MB", "load s"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, r in sorted(summary["results"].items(), key=lambda kv: -kv[1]["score"]):
        mark = " **(winner)**" if name == summary["winner"] else ""
        cells = [f"{name}{mark}", f"{r['score']:.3f}"]
        for t in tasks:
            metric = r[t][HEADLINE[t][0]]
            cells.append(f"{metric:.3g}")
        cells += [f"{r['efficiency']['size_mb']:.2f}", f"{r['efficiency']['load_s']:.2f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def bench_markdown(summary: dict) -> str:
    """The bench report: table, extra per-task numbers, and the decision."""
    parts = ["# shipit bench\n\n", bench_table(summary)]
    extras = []
    for name, r in summary["results"].items():
        if "domain_qa" in r:
            extras.append(f"- {name}: domain QA exact match {r['domain_qa']['exact_match']:.3f} "
                          f"(chance {r['domain_qa']['chance']:.3f})")
        if "safety" in r:
            extras.append(f"- {name}: refusal of harmful {r['safety']['refusal_rate']:.2f}, "
                          f"over-refusal of benign {r['safety']['over_refusal']:.2f}")
    if extras:
        parts.append("\n" + "\n".join(extras) + "\n")
    parts.append(f"\n**Winner: {summary['winner']}** — {summary['reason']}.\n")
    return "".join(parts)
