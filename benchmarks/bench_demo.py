"""The default demo (SmolLM2-135M-Instruct) over several seeds: each seed's targets table and time per stage.

    PYTHONPATH=src .venv/bin/python benchmarks/bench_demo.py --seeds 0 1 2 --out bench-demo

Each seed is a fresh `shipit demo --out OUT/seed-N` whose training stages, merge search and experiments take that
seed (seed 0: the recipe as shipped); the script then reruns seed 0 to time the fully cached second run. It prints, per seed, the report's targets
table (read from its report.md) and the stage times, then a summary with the machine's load average, since the
stage times are only comparable on a quiet machine.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

TRAIN = ("cpt-domain", "sft-domain", "dpo-domain", "sft-safety", "dpo-safety", "healed", "dpo-ab")


def seed_overrides(seed: int) -> list[str]:
    """Every random choice of the recipe follows `seed`. Seed 0 is the recipe as shipped (its trainers, merge search
    and first experiment take seed 0, the second experiment seed 1): no overrides, so seed 0's run is `shipit demo`
    itself and reuses a plain demo's cache in the same output directory (a `--set` of a default value changes the
    stage's cache key)."""
    if seed == 0:
        return []
    sets = [f"stages.{s}.config.trainer.seed={seed}" for s in TRAIN]
    sets += [f"stages.merged.config.seed={seed}", f"stages.experiment.config.seed={seed}",
             f"stages.experiment-round2.config.seed={seed + 1}"]
    return sets


def run(out: Path, seed: int, preset: str) -> tuple[float, str]:
    cmd = [sys.executable, "-m", "shipit", "demo", "--preset", preset, "--out", str(out)]
    for s in seed_overrides(seed):
        cmd += ["--set", s]
    t0 = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    stopped = r.returncode == 1 and "no candidate passed" in r.stdout + r.stderr  # the bench's gates: a result
    if r.returncode != 0 and not stopped:
        print(r.stdout[-3000:], r.stderr[-3000:], sep="\n")
        raise SystemExit(f"seed {seed}: shipit demo exited {r.returncode}")
    return wall, r.stdout


def section(report: str, title: str) -> str:
    m = re.search(rf"## {title}\n(.*?)(?=\n## |\Z)", report, re.S)
    return m.group(1).strip() if m else "(missing)"


def numbers(out: Path) -> dict[str, float | str]:
    """One seed's headline numbers, read from its bench results, merge search and experiments."""
    res = json.loads((out / "bench" / "results.json").read_text())
    r = res["results"]
    dom, safe, merged, quant = r["dpo-domain"], r["dpo-safety"], r["merged"], r["merged-w4a16"]
    search = json.loads((out / "merged" / "search.json").read_text())["winner"]
    # no experiments when no candidate passed the bench's gates (the demo stops there)
    ab, r2 = (json.loads(f.read_text()) if (f := out / e / "experiment.json").is_file() else None
              for e in ("experiment", "experiment-round2"))
    other = next(a for a in r2["arms"] if a != r2["control"]) if r2 else None
    state = json.loads((out / ".ship" / "state.json").read_text())["done"]
    from shipit.ship.report import source_name, worst_task_change

    # the winner's own quantized twins (a quantized candidate's manifest names the model it came from)
    twins = [n for n in r if n != res["winner"] and source_name(out / n) == res["winner"]]
    return {
        "domain QA multiple choice": dom["domain_qa"]["mc_accuracy"],
        "domain QA answer contains the fact": dom["domain_qa"]["contains"],
        "domain specialist retention": dom["retention"]["retention_rate"],
        "safety: never-seen harmful refused": safe["safety"].get("refusal_activity", safe["safety"]["refusal_rate"]),
        "safety: look-alikes over-refused": safe["safety"]["over_refusal"],
        "safety specialist retention": safe["retention"]["retention_rate"],
        "merge (search winner)": f"{search['method']} " + " ".join(f"{v:g}" for v in search["params"].values()),
        "merge keeps of the domain QA": round(merged["domain_qa"]["mc_accuracy"] / dom["domain_qa"]["mc_accuracy"], 3),
        "merge keeps of the refusals": round(merged["safety"]["refusal_rate"] / safe["safety"]["refusal_rate"], 3),
        "merge over-refuses": merged["safety"]["over_refusal"],
        "merge score minus the better parent's": merged["score"] - max(dom["score"], safe["score"]),
        **({"healed merge keeps of the domain QA":
            round(healed["domain_qa"]["mc_accuracy"] / dom["domain_qa"]["mc_accuracy"], 3),
            "healed merge keeps of the refusals":
            round(healed["safety"]["refusal_rate"] / safe["safety"]["refusal_rate"], 3),
            "healed merge over-refuses": healed["safety"]["over_refusal"],
            "healed merge retention": healed["retention"]["retention_rate"],
            "healed score minus the better parent's": healed["score"] - max(dom["score"], safe["score"])}
           if (healed := r.get("healed")) else {}),
        "w4a16 worst task change": worst_task_change(quant, merged)[0],
        **{f"{n} (the winner quantized) worst task change": worst_task_change(r[n], r[res["winner"]])[0]
           for n in twins},
        "bench winner": res["winner"] or "none",
        "A/B preference pairs": ab["pairs"] if ab else "not run",
        "A/B decision": ab["decision"]["kind"] if ab else "not run",
        "DPO round minus winner, judged score": r2["arms"][other]["feedback_score"]
        - r2["arms"][r2["control"]]["feedback_score"] if r2 else "not run",
        "stage time, min": sum(d["seconds"] for d in state.values()) / 60,
    }


def table(dirs: list[Path]) -> str:
    """A markdown table: one column per output directory, then the mean and spread of each numeric row."""
    import statistics

    def fmt(key: str, v) -> str:
        if not isinstance(v, float):
            return str(v)
        return f"{v:.1%}" if "keeps" in key else f"{v:+.1%}" if "change" in key else f"{v:.3f}"

    cols = [numbers(d) for d in dirs]
    lines = ["| | " + " | ".join(d.name for d in dirs) + " | mean (sd) |", "|---" * (len(dirs) + 2) + "|"]
    for key in dict.fromkeys(k for c in cols for k in c):  # a run before a stage existed has no row for it
        vals = [c.get(key, "-") for c in cols]
        shown = [fmt(key, v) for v in vals]
        numeric = all(isinstance(v, (int, float)) for v in vals) and len(vals) > 1
        spread = f"{fmt(key, float(statistics.mean(vals)))} ({fmt(key, statistics.stdev(vals)).lstrip('+')})" if numeric else ""
        lines.append(f"| {key} | " + " | ".join(shown) + f" | {spread} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--out", type=Path, default=Path("bench-demo"))
    ap.add_argument("--preset", default="default", help="default, or smoke to check the script itself")
    ap.add_argument("--table", type=Path, nargs="+", metavar="DIR",
                    help="run nothing: print the seed table of these finished demo output directories")
    args = ap.parse_args()
    if args.table:
        print(table(args.table))
        return
    summary = {}
    for seed in args.seeds:
        out = args.out / f"seed-{seed}"
        load0 = os.getloadavg()[0]
        wall, _ = run(out, seed, args.preset)
        report_md = out / "report" / "report.md"
        report = report_md.read_text() if report_md.is_file() else (
            "## Targets\n(no report: no candidate passed the bench's gates, so the demo stopped after the bench; "
            f"see {out / 'bench' / 'report.md'})\n")
        state = json.loads((out / ".ship" / "state.json").read_text())["done"]
        stage_s = sum(d["seconds"] for d in state.values())
        summary[seed] = {"wall_s": round(wall, 1), "stage_s": round(stage_s, 1), "load_before": round(load0, 2),
                         "load_after": round(os.getloadavg()[0], 2)}
        print(f"\n### seed {seed}: wall {wall / 60:.1f} min, stage time {stage_s / 60:.1f} min, "
              f"load average {load0:.1f} -> {os.getloadavg()[0]:.1f}\n")
        print(section(report, "Targets"))
        print()
        print(section(report, "Time per stage"))
    first = args.seeds[0]
    wall, stdout = run(args.out / f"seed-{first}", first, args.preset)
    cached = sum(line.split(": ")[1].startswith("cached") for line in stdout.splitlines() if line.startswith("["))
    print(f"\nsecond run of seed {first}: {wall:.1f} s wall, {cached} stages cached")
    print(json.dumps(summary, indent=2))
    print(table([args.out / f"seed-{seed}" for seed in args.seeds]))


if __name__ == "__main__":
    main()
