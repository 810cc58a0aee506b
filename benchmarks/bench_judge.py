"""How well a model judge tells a good answer from a bad one to the same prompt, by the data engine's three
verdicts: the written "Score: N" parsed (`text`), the probability-weighted mean over the score digits (`expected`,
G-Eval, Liu et al. 2023), and the answer's pointwise mutual information with the prompt (`pmi`).

    PYTHONPATH=src .venv/bin/python benchmarks/bench_judge.py --judge ~/.cache/shipit/models/smollm2-135m-instruct

Labelled answers come from the real demo world's bundled data, each a good answer beside bad ones to the same prompt:
- benign: the reference answer vs a refusal, and vs another prompt's reference answer (off topic);
- harmful: the reference refusal vs a benign prompt's reference answer (an answer, to something else);
- facts: "The capital of France is Paris." vs the same sentence with another question's answer.
For each (good, bad) pair the judge is right when it scores the good answer higher (a tie counts half): 0.5 is a
judge that cannot tell. The A/B experiment's rules judge already decides refusal against answer; what a model judge
adds is the off-topic and wrong-fact rows. The script prints each verdict's accuracy per kind and its time, and
for the PMI verdict how accurate its order is on those rows when the raw gap is at least a margin (the A/B
experiment's `llm_margin`), band by band.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

REFUSAL = "Sorry, but I can't help with this request."


def labelled(data: Path, n: int, seed: int) -> list[dict]:
    """Rows {kind, prompt, good, bad}: one good and one bad answer to the same prompt."""
    rng = random.Random(seed)
    rows = [json.loads(line) for line in (data / "safety_sft.jsonl").read_text().splitlines()]
    benign = rng.sample([r for r in rows if r["kind"] == "benign"], 2 * n)
    harmful = rng.sample([r for r in rows if r["kind"] == "harmful"], n)
    qa = [json.loads(line) for line in (data / "retention.jsonl").read_text().splitlines()]
    qa = rng.sample(qa, min(n, len(qa)))

    def turns(r):
        return r["messages"][0]["content"], r["messages"][1]["content"]

    out = []
    for i, r in enumerate(benign[:n]):
        p, a = turns(r)
        out.append({"kind": "benign vs refusal", "prompt": p, "good": a, "bad": REFUSAL})
        out.append({"kind": "benign vs off-topic", "prompt": p, "good": a, "bad": turns(benign[n + i])[1]})
    for i, r in enumerate(harmful):
        out.append({"kind": "harmful: refusal vs answer", "prompt": turns(r)[0], "good": turns(r)[1],
                    "bad": turns(benign[i])[1]})
    for i, r in enumerate(qa):
        wrong = qa[(i + 1) % len(qa)]["answers"][0]
        out.append({"kind": "fact right vs wrong", "prompt": r["question"],
                    "good": f"The answer is {r['answers'][0].title()}.", "bad": f"The answer is {wrong.title()}."})
    return out


def accuracy(rows: list[dict], good: list[float], bad: list[float]) -> dict[str, float]:
    by: dict[str, list[float]] = {}
    for r, g, b in zip(rows, good, bad):
        by.setdefault(r["kind"], []).append(1.0 if g > b else 0.5 if g == b else 0.0)
    by["all"] = [x for v in list(by.values()) for x in v]
    return {k: round(sum(v) / len(v), 3) for k, v in by.items()}


MARGINS = (0.0, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0)
"""Smallest PMI gaps (nats per token) at which pairs are counted, for the A/B experiment's `llm_margin`."""
RANKED = ("benign vs off-topic", "fact right vs wrong")
"""The kinds the model judge ranks in an A/B experiment; the rules judge decides refusal against answer."""


def by_margin(rows: list[dict], good: list[float], bad: list[float]) -> list[str]:
    """For each band [m, next m) of the raw gap |good - bad| over the RANKED pairs: how many pairs, and how often
    the judge's order is right (the good answer higher). A pair mined at llm_margin m can have any gap >= m, and the
    pairs just above the margin are the least sure: a margin is safe when every band from it up is accurate."""
    gaps = [(g - b) for r, g, b in zip(rows, good, bad) if r["kind"] in RANKED]
    out = []
    for lo, hi in zip(MARGINS, [*MARGINS[1:], float("inf")]):
        band = [x for x in gaps if lo <= abs(x) < hi and x != 0]
        acc = f"right {sum(x > 0 for x in band) / len(band):.2f}" if band else "none"
        out.append(f"[{lo:g}, {hi:g}): {len(band)} pairs, {acc}")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--judge", type=Path, required=True, help="the judge model directory")
    ap.add_argument("--data", type=Path, default=Path(__file__).parents[1] / "src/shipit/demo/data-real")
    ap.add_argument("--n", type=int, default=40, help="prompts per kind")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--verdicts", nargs="+", default=["text", "expected", "pmi"],
                    choices=["text", "expected", "pmi"])
    args = ap.parse_args()

    from shipit.data.generators import GeneratorSettings, make_generator
    from shipit.data.scorers import ScorerSpec, judge_score
    from shipit.ship.experiment import ExperimentConfig

    rows = labelled(args.data, args.n, args.seed)
    prompts = [r["prompt"] for r in rows] * 2
    answers = [r["good"] for r in rows] + [r["bad"] for r in rows]
    rubric = ExperimentConfig.model_fields["rubric"].default
    gen = make_generator(GeneratorSettings(backend="hf", model=args.judge, max_new_tokens=8))
    try:
        for mode in args.verdicts:
            fn = judge_score(ScorerSpec(name="judge", judge=gen.settings, rubric=rubric, verdict=mode), gen)
            t0 = time.perf_counter()
            s = fn(prompts, answers)
            dt = time.perf_counter() - t0
            good, bad = s[:len(rows)], s[len(rows):]
            print(f"verdict={mode}: pairwise accuracy {accuracy(rows, good, bad)}; unparsed {fn.unparsed}; "
                  f"distinct scores {len(set(s))}; {dt:.1f} s for {len(s)} answers")
            if mode == "pmi":
                print("  pmi gap (nats/token) on " + " and ".join(RANKED) + ": "
                      + "; ".join(by_margin(rows, fn.raw[:len(rows)], fn.raw[len(rows):])))
    finally:
        gen.close()


if __name__ == "__main__":
    main()
