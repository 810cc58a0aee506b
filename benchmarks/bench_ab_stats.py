"""Error rates of the A/B statistics under continuous monitoring, by simulation through shipit.serve.stats.

    PYTHONPATH=src .venv/bin/python benchmarks/bench_ab_stats.py --runs 2000 --requests 5000 --append
    PYTHONPATH=src .venv/bin/python benchmarks/bench_ab_stats.py --grid --runs 1000 --requests 10000 --append

For the success-rate and the feedback metric, at 50/50 and 90/10: simulated A/A experiments with the decision read
after every request give the mSPRT's type-I error (checked against alpha + 2 Monte-Carlo s.e.), the SRM and the
guardrail false alarms; two effect sizes give the power within the horizon and the median requests to a decision.
The "stress" rows read SRM at p < 0.05 and the guardrails at margin 0, where a false alarm is most likely.
`--grid`: the mSPRT's type-I error over success rates 0.5 to 0.99 and splits down to 99/1, the check of the burn-in.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

from shipit.serve.simulate_stats import DEFAULT_BASE, Setting, simulate

EFFECTS = {"success": (0.02, 0.05), "feedback": (0.05, 0.10)}


def pct(r: dict | None) -> str:
    return "-" if r is None else f"{100 * r['p']:.2f} ± {100 * r['se']:.2f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=2000)
    ap.add_argument("--requests", type=int, default=5000)
    ap.add_argument("--append", action="store_true", help="Append the table to benchmarks/RESULTS.md.")
    ap.add_argument("--grid", action="store_true", help="Type-I error over success rates and extreme splits.")
    args = ap.parse_args()
    command = "PYTHONPATH=src .venv/bin/python benchmarks/bench_ab_stats.py " + " ".join(sys.argv[1:])
    if args.grid:
        return grid(args, command)
    head = ("| metric | split | case | mSPRT rejects % | ≤ α + 2 s.e. | SRM alarm % (always-valid) | "
            "SRM alarm % (chi-square, every look) | primary breach % | error breach % | median requests |")
    rows, failures, t0 = [], [], time.perf_counter()
    for m, metric in enumerate(("success", "feedback")):
        base = DEFAULT_BASE[metric]
        for split in (50, 10):
            common = dict(weights={"a": 100 - split, "b": split}, control="a", metric=metric, runs=args.runs,
                          requests=args.requests)
            cases = [("A/A", {}), ("A/A stress (SRM p<0.05, margins 0)",
                                   {"srm_p": 0.05, "primary_margin": 0.0, "error_margin": 0.0})]
            cases += [(f"effect {e:+g}", {"means": {"a": base, "b": base + e}}) for e in EFFECTS[metric]]
            for seed, (case, kw) in enumerate(cases):
                s = Setting(**common, seed=100_000 * m + 1000 * split + seed, **kw)
                res = simulate(s)
                b = res["arms"]["b"]
                aa = case.startswith("A/A")
                limit = s.alpha + 2 * math.sqrt(s.alpha * (1 - s.alpha) / s.runs)
                ok = "" if not aa else ("yes" if b["reject"]["p"] <= limit else "**NO**")
                if ok == "**NO**":
                    failures.append(f"{metric} {split}% {case}")
                med = "-" if b["median_requests"] is None else f"{b['median_requests']:.0f}"
                rows.append(f"| {metric} (mean {base:g}) | {100 - split}/{split} | {case} | {pct(b['reject'])} | "
                            f"{ok or '(power)'} | {pct(res['srm_seq'])} | {pct(res['srm_chi2_every_look'])} | "
                            f"{pct(b['primary_breach'])} | {pct(b['error_breach'])} | {med} |")
                print(rows[-1], flush=True)
    wall = time.perf_counter() - t0
    text = "\n".join([
        f"{args.runs} simulated experiments per row, {args.requests} requests each, decision read after every "
        f"request; alpha 0.05, tau 0.1, burn-in 20, SRM p < 0.001, margins 0.05 (primary) and 0.02 (errors), "
        f"guardrails judged from 200 requests per arm. Feedback: 30% of requests give a Beta(m, 1-m) score. "
        f"± is one Monte-Carlo standard error. Wall time {wall:.0f} s.", "", head, "|" + "---|" * 10, *rows])
    print(f"\n{command}\n\n{text}")
    if args.append:
        with open(Path(__file__).parent / "RESULTS.md", "a") as f:
            f.write(f"\n## A/B statistics under continuous monitoring (simulated)\n\n```\n{command}\n```\n\n{text}\n")
    if failures:
        sys.exit(f"type-I error above alpha + 2 s.e.: {', '.join(failures)}")


def grid(args, command: str) -> None:
    """A/A type-I error of the mSPRT (success rate) at rates 0.5-0.99 and splits 50/50, 90/10, 99/1."""
    rows, worst, t0 = [], 0.0, time.perf_counter()
    for i, base in enumerate((0.5, 0.9, 0.99)):
        cells = []
        for split in (50, 10, 1):
            s = Setting(weights={"a": 100 - split, "b": split}, control="a", means={"a": base}, runs=args.runs,
                        requests=args.requests, seed=7000 + 100 * i + split)
            r = simulate(s)["arms"]["b"]["reject"]
            worst = max(worst, r["p"])
            cells.append(pct(r))
            print(base, split, cells[-1], flush=True)
        rows.append(f"| {base:g} | " + " | ".join(cells) + " |")
    text = "\n".join([
        f"mSPRT false rejections (%) of A/A experiments on the success rate, {args.runs} runs x {args.requests} "
        f"requests per cell, read after every request; alpha 0.05, tau 0.1, burn-in 20. Worst cell "
        f"{100 * worst:.2f}%. Wall time {time.perf_counter() - t0:.0f} s.", "",
        "| success rate | 50/50 | 90/10 | 99/1 |", "|---|---|---|---|", *rows])
    print(f"\n{command}\n\n{text}")
    if args.append:
        with open(Path(__file__).parent / "RESULTS.md", "a") as f:
            f.write(f"\n### mSPRT type-I error across success rates and splits\n\n```\n{command}\n```\n\n{text}\n")


if __name__ == "__main__":
    main()
