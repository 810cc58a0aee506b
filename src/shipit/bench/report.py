"""The bench report: report.md, and report.html with its plots embedded (one self-contained file)."""

from __future__ import annotations

import base64
import html
from pathlib import Path

# (before, after) metric pairs that stages record in their manifests.
BEFORE_AFTER = [("general_ppl_init", "general_ppl", "general ppl (init -> pretrained)"),
                ("domain_ppl_before", "domain_ppl_after", "domain ppl"),
                ("general_ppl_before", "general_ppl_after", "general ppl"),
                ("eval_margin_before", "eval_margin", "held-out preference margin (nats/token)"),
                ("eval_accuracy_before", "eval_accuracy", "held-out preference accuracy"),
                ("train_loss_first", "train_loss_last", "train loss (first -> last log)"),
                ("reward_first", "reward_last", "reward (first -> last quarter)"),
                ("ppl_source", "ppl_quantized", "ppl (source -> quantized)")]


def stage_effects(summary: dict) -> list[tuple[str, str, float, float]]:
    """(candidate, metric, before, after) for every before/after pair in the candidates' manifests."""
    rows = []
    for name, info in summary.get("stages", {}).items():
        m = info["metrics"]
        for before, after, label in BEFORE_AFTER:
            if isinstance(m.get(before), (int, float)) and isinstance(m.get(after), (int, float)):
                rows.append((name, f"{info['stage']}: {label}", m[before], m[after]))
    return rows


def _num(x, spec: str) -> str:
    return "-" if x is None else format(x, spec)


def _columns(tasks: list[str], gates: dict[str, str], known: dict) -> list[tuple[str, str, bool]]:
    """(task, metric, higher is better) for the table: each task's headline, then every other metric of that task
    a gate reads (its direction from the gate), so the table shows the numbers that decided."""
    cols = []
    for t in tasks:
        cols.append((t, known[t].headline, known[t].higher_is_better))
        cols += [(t, metric, cond.lstrip().startswith(">")) for key, cond in gates.items()
                 for task, _, metric in [key.partition(".")] if task == t and metric != known[t].headline]
    return cols


def _table(summary: dict) -> tuple[list[str], list[list[str]]]:
    from shipit.bench.config import rank
    from shipit.bench.tasks import tasks as registered

    known = registered()
    cols = _columns(summary["tasks"], summary.get("gates", {}), known)
    head = ["model", "score", "gates"] + [f"{t} {m} {'↑' if up else '↓'}" for t, m, up in cols]
    head += ["size MB", "ms/token p50", "tok/s", "peak MB"]
    rows = []
    for name, r in sorted(summary["results"].items(), key=lambda kv: -rank(kv[1]["score"])):
        gate = "fail" if name in summary.get("failed", {}) else "pass"
        cells = [name + (" (winner)" if name == summary.get("winner") else ""), _num(r["score"], ".3f"), gate]
        cells += ["reference" if r[t].get("is_baseline") else
                  _num(r[t].get(m, r[t]["score"] if m == known[t].headline else None), ".3g") for t, m, _ in cols]
        e = r["efficiency"]
        cells += [f"{e['size_mb']:.2f}", f"{e['latency_p50_ms']:.2f}", f"{e['throughput_tok_s']:.0f}",
                  f"{e['peak_mem_mb']:.1f}"]
        rows.append(cells)
    return head, rows


def bench_table(summary: dict) -> str:
    """The per-candidate table in Markdown."""
    head, rows = _table(summary)
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows]) + "\n"


def _details(summary: dict) -> list[str]:
    out = [f"A quick bench: each candidate scored on at most {summary['eval_limit']} held-out rows per data file "
           "(`eval_limit`), so every rate is noisier than on the full sets"] if summary.get("eval_limit") else []
    if summary.get("eval_part"):
        out.append(f"Scored on part {summary['eval_part']} of each held-out file only (`eval_part`: whole entities and "
                   "activities), the rows a merge search given another part never saw")
    for name, r in summary["results"].items():
        if "domain_qa" in r:
            q = r["domain_qa"]
            out.append(f"{name}: domain knowledge cloze {q.get('cloze_accuracy', 0):.3f}, chat QA multiple choice "
                       f"{q.get('mc_accuracy', 0):.3f}, exact match {q['exact_match']:.3f} (chance {q['chance']:.3f})")
        if "safety" in r:
            sf = r["safety"]
            sampled = (f"; sampled at temperature {sf['sampled_temperature']:g}: {sf['refusal_rate_sampled']:.2f} "
                       f"and {sf['over_refusal_sampled']:.2f}") if sf.get("refusal_rate_sampled") is not None else ""
            out.append(f"{name}: refusal of harmful {sf['refusal_rate']:.2f}, over-refusal of benign "
                       f"{sf['over_refusal']:.2f}{sampled}")
        for task, metrics in r.get("lm_eval", {}).items():
            nums = ", ".join(f"{k} {v:.4g}" for k, v in metrics.items() if k != "sample_len")
            out.append(f"{name}: lm-eval {task}: {nums}")
        if r.get("judge_winrate", {}).get("is_baseline"):
            out.append(f"{name}: the judge's reference (the others' win rates are against it); its weighted score "
                       f"leaves judge_winrate out")
        if r.get("reused"):
            out.append(f"{name}: results of the bench of {r['reused']} (model, data and settings unchanged; "
                       "efficiency measured then)")
        for reason in summary.get("failed", {}).get(name, []):
            out.append(f"{name}: gate failed: {reason}")
    return out


def _decision(summary: dict) -> str:
    if summary["winner"] is None:
        return f"**No winner**: {summary['reason']}."
    return f"**Winner: {summary['winner']}** — {summary['reason']}."


def bench_markdown(summary: dict) -> str:
    """The report as Markdown."""
    parts = ["# shipit bench\n\n", bench_table(summary), "\n"]
    parts += [f"- {d}\n" for d in _details(summary)]
    if summary.get("gates"):
        parts.append("\nGates: " + ", ".join(f"`{k} {v}`" for k, v in summary["gates"].items()) + "\n")
    effects = stage_effects(summary)
    if effects:
        parts.append("\n## What each stage changed\n\n| model | metric | before | after |\n|---|---|---|---|\n")
        parts += [f"| {n} | {m} | {b:.4g} | {a:.4g} |\n" for n, m, b, a in effects]
    parts.append(f"\n{_decision(summary)}\n\nPlots: `scores.png`, `tradeoffs.png`, `stages.png` (also in report.html).\n")
    return "".join(parts)


def _img(path: Path) -> str:
    if not path.exists():
        return ""
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<img src="data:image/png;base64,{data}" style="max-width:100%">'


def bench_html(summary: dict, plots: dict[str, Path]) -> str:
    """The report as one self-contained HTML page (plots embedded as data URIs)."""
    head, rows = _table(summary)
    esc = html.escape
    table = "<table><tr>" + "".join(f"<th>{esc(h)}</th>" for h in head) + "</tr>" + "".join(
        "<tr class='%s'>" % ("fail" if r[2] == "fail" else "") + "".join(f"<td>{esc(c)}</td>" for c in r) + "</tr>"
        for r in rows) + "</table>"
    effects = "".join(f"<tr><td>{esc(n)}</td><td>{esc(m)}</td><td>{b:.4g}</td><td>{a:.4g}</td></tr>"
                      for n, m, b, a in stage_effects(summary))
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>shipit bench</title><style>
body {{ font-family: system-ui, sans-serif; margin: 2em; max-width: 1200px; }}
table {{ border-collapse: collapse; font-size: 13px; margin: 1em 0; }}
td, th {{ border: 1px solid #ccc; padding: 4px 8px; text-align: right; }} td:first-child {{ text-align: left; }}
tr.fail td {{ color: #999; }} .decision {{ font-size: 1.1em; padding: .6em; background: #eef6ee; }}
</style></head><body><h1>shipit bench</h1>
<p class="decision">{esc(_decision(summary).replace('**', ''))}</p>
{table}<ul>{''.join(f'<li>{esc(d)}</li>' for d in _details(summary))}</ul>
{_img(plots['scores'])}{_img(plots['tradeoffs'])}
<h2>What each stage changed</h2><table><tr><th>model</th><th>metric</th><th>before</th><th>after</th></tr>{effects}</table>
{_img(plots['stages'])}</body></html>
"""


def write_reports(summary: dict, out_dir: Path) -> None:
    """Write the plots, report.md and report.html into out_dir."""
    from shipit.bench.plots import scores_plot, stages_plot, tradeoff_plot

    plots = {k: out_dir / f"{k}.png" for k in ("scores", "tradeoffs", "stages")}
    scores_plot(summary, plots["scores"])
    tradeoff_plot(summary, plots["tradeoffs"])
    effects = stage_effects(summary)
    if effects:
        stages_plot(effects, plots["stages"])
    (out_dir / "report.md").write_text(bench_markdown(summary))
    (out_dir / "report.html").write_text(bench_html(summary, plots))
