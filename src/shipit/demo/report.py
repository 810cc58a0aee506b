"""The demo's report.md: every number, and where it came from."""

from __future__ import annotations

from pathlib import Path

from shipit.registry import lineage_lines, read_manifest


def demo_report(out: Path, summary: dict, transcript: list[dict], times: dict[str, float], preset: str) -> str:
    """Markdown: stage times, each stage's own metrics, the bench table, the decision, the served answers, lineage."""
    from shipit.bench.report import bench_markdown

    lines = [f"# shipit demo report ({preset} preset)\n",
             "Everything below was produced on this machine from the bundled synthetic world; "
             f"artifacts are under `{out}`.\n", "## Time per stage\n", "| stage | seconds |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in times.items()]
    lines += [f"| **total** | {sum(times.values()):.1f} |", "", "## What each stage measured\n"]
    for name in ["base", "cpt-domain", "sft-domain", "dpo-domain", "sft-safety", "dpo-safety", "merged",
                 *[p.name for p in out.glob("merged-*")]]:
        m = read_manifest(out / name)
        if m:
            metrics = ", ".join(f"{k} {v}" for k, v in m["metrics"].items())
            lines.append(f"- **{name}** ({m['stage']}, {m['wall_time_s']}s): {metrics}")
    lines += ["", bench_markdown(summary).replace("# shipit bench", "## Bench"), "## Served by vLLM\n",
              f"The winner was served by vLLM's OpenAI server on 127.0.0.1 and asked {len(transcript)} questions "
              "(temperature 0):\n"]
    for t in transcript:
        lines.append(f"- **{t['prompt']}** → `{t['answer']!r}` ({t['completion_tokens']} tokens, {t['latency_s']}s)")
    lines += ["", "## Lineage of the winner\n", "```", *lineage_lines(summary["winner_path"]), "```", ""]
    return "\n".join(lines)
