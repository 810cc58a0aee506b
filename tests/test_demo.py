"""The whole loop as a user runs it: `shipit demo --preset smoke` (the default recipe on SmolLM2 cut to 2 layers: the
real tokenizer, chat template, attention shape and tied embeddings), twice."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from shipit.config import read_jsonl
from shipit.conventions import is_refusal
from shipit.demo.run import RECIPE
from shipit.registry import lineage_lines, read_manifest

pytestmark = [pytest.mark.slow, pytest.mark.vllm]

STAGES = {"base": "cut", "replay": "data/synth", "cpt-domain": "train/cpt", "sft-domain": "train/sft",
          "dpo-domain": "train/dpo", "cai-safety": "data/cai", "sft-safety": "train/sft",
          "onpolicy-safety": "data/onpolicy", "dpo-safety": "train/dpo", "merged": "merge/search",
          "onpolicy-merged": "data/onpolicy", "replay-merged": "data/onpolicy", "healed": "train/dpo",
          "merged-w4a16": "quantize/w4a16",
          "merged-w8a8": "quantize/w8a8", "healed-w8a8": "quantize/w8a8", "bench": "bench",
          "experiment": "serve/experiment", "dpo-ab": "train/dpo", "experiment-round2": "serve/experiment",
          "report": "report"}
KINDS = {"base": "base/import", "merged-w4a16": "quantize", "merged-w8a8": "quantize", "healed-w8a8": "quantize"}


def weights(model) -> dict:
    from safetensors.torch import load_file

    return load_file(str(model / "model.safetensors"))


def changed_tensors(base, model) -> set[str]:
    """Names of the tensors that differ between two checkpoints of one shape."""
    a, b = weights(base), weights(model)
    assert a.keys() == b.keys()
    return {k for k in a if not a[k].equal(b[k])}


def demo(out):
    return subprocess.run([sys.executable, "-m", "shipit", "demo", "--preset", "smoke", "--out", str(out)],
                          capture_output=True, text=True, timeout=2400)


def test_demo_smoke_end_to_end_then_fully_cached(vllm_python, tmp_path):
    out = tmp_path / "demo"
    r = demo(out)
    assert r.returncode == 0, r.stderr[-3000:]
    progress = [ln for ln in r.stdout.splitlines() if ln.startswith("[")]
    n = len(STAGES)
    assert [ln.split(": ")[0] for ln in progress] == [
        f"[{i}/{n}] {name} ({KINDS.get(name, kind)})" for i, (name, kind) in enumerate(STAGES.items(), 1)]
    assert all(ln.split(": ")[1].startswith("run (new)") for ln in progress)
    assert r.stdout.strip().splitlines()[-1] == f"report: {out / 'report' / 'report.md'}"
    assert {name: read_manifest(out / name)["stage"] for name in STAGES} == STAGES
    base = json.loads((out / "base" / "config.json").read_text())
    assert base["num_hidden_layers"] == 2 and base["hidden_size"] == 576 and base["tie_word_embeddings"]

    # The quality gate keeps exactly the revisions that refuse a harmful request or answer a harmless one.
    data = RECIPE.parent / "data-real"
    harmful = {" ".join(r["prompt"].split()) for r in read_jsonl(data / "harmful_prompts.jsonl")}
    generated = read_jsonl(out / "cai-safety" / "sl.jsonl")
    passing = [g for g in generated if g["messages"][-1]["content"].strip() and
               (" ".join(g["messages"][0]["content"].split()) in harmful) == is_refusal(g["messages"][-1]["content"])]
    kept = [r for r in read_jsonl(out / "cai-safety" / "sft.jsonl") if r["provenance"].get("source") == "sl-cai"]
    assert len(generated) == 6 and [r["messages"] for r in kept] == [r["messages"] for r in passing]

    # The safety SFT's own answers, paired against the bundled answers, reach the safety DPO.
    onpolicy = read_jsonl(out / "onpolicy-safety" / "pairs.jsonl")
    answered = {r["prompt"]: r["completion"] for r in read_jsonl(out / "onpolicy-safety" / "answers.jsonl")}
    assert len(answered) == 6 and len(onpolicy) == 2
    assert all(p["rejected"][0]["content"] == answered[p["prompt"][0]["content"]] for p in onpolicy)
    assert str(out / "onpolicy-safety" / "pairs.jsonl") in json.dumps(read_manifest(out / "dpo-safety")["config"])
    # The specialists train disjoint weights: the domain its MLP, safety its attention; nothing else moves.
    for name, part in (("dpo-domain", ".mlp."), ("sft-safety", ".self_attn."), ("dpo-safety", ".self_attn.")):
        assert changed_tensors(out / "base", out / name) == {k for k in weights(out / "base") if part in k}, name
    # Merge, then heal: the merge's own answers become pairs for a safety DPO of the merge, on its attention only.
    healing = read_jsonl(out / "onpolicy-merged" / "pairs.jsonl")
    assert read_manifest(out / "onpolicy-merged")["config"]["generator"]["model"] == str(out / "merged")
    assert len(healing) == 2 and str(out / "onpolicy-merged" / "pairs.jsonl") in json.dumps(
        read_manifest(out / "healed")["config"]["datasets"])
    assert changed_tensors(out / "merged", out / "healed") == {k for k in weights(out / "base") if ".self_attn." in k}
    # ...and so do its answers to the replay's requests, each under the instruct model's own answer.
    anchor = read_jsonl(out / "replay-merged" / "pairs.jsonl", allow_empty=True)
    own = {r["messages"][0]["content"]: r["messages"][1:] for r in read_jsonl(out / "replay" / "sft.jsonl")}
    merged_answers = read_jsonl(out / "replay-merged" / "answers.jsonl")
    assert read_manifest(out / "replay-merged")["config"]["generator"]["model"] == str(out / "merged")
    assert len(merged_answers) == len(own) == 4
    assert [(p["prompt"][0]["content"], p["chosen"], p["rejected"][0]["content"]) for p in anchor] == [
        (a["prompt"], own[a["prompt"]], a["completion"]) for a in merged_answers
        if a["completion"].split() != own[a["prompt"]][0]["content"].split()]
    assert str(out / "replay-merged" / "pairs.jsonl") in json.dumps(read_manifest(out / "healed")["config"]["datasets"])

    search = json.loads((out / "merged" / "search.json").read_text())
    assert search["trials"] == 2 and (out / "merged" / "search.png").is_file()
    # each trial is scored by the worst share it keeps of a parent's behaviour (the parents benched once, first)
    assert search["combine"] == "min" and set(search["references"]) == {"domain_qa.mc_accuracy", "safety.refusal_rate"}
    winner = search["winner"]
    assert winner["score"] == min([*winner["shares"].values(), winner["values"]["retention.score"]])
    # The base model's own answers to the replay requests go into both specialists' SFT.
    replay = read_jsonl(out / "replay" / "sft.jsonl")
    assert len(replay) == 4 and all(r["provenance"]["generator"]["model"] == str(out / "base") for r in replay)
    for sft in ("sft-domain", "sft-safety"):
        assert str(out / "replay" / "sft.jsonl") in json.dumps(read_manifest(out / sft)["config"]["datasets"])
    tree = [ln.split("  [")[0].lstrip("│├└─ ") for ln in lineage_lines(out / "merged-w4a16")]
    assert tree[:3] == ["merged-w4a16", "merged", "base"] and {"dpo-domain", "dpo-safety"} <= set(tree)

    summary = json.loads((out / "bench" / "results.json").read_text())
    candidates = {"base", "dpo-domain", "sft-safety", "dpo-safety", "merged", "healed", "merged-w4a16", "merged-w8a8",
                  "healed-w8a8"}
    assert set(summary["results"]) == candidates
    assert {"domain_qa", "safety", "retention", "general_ppl"} <= set(summary["results"]["base"])
    # The smoke's quick bench: 8 rows per file, evenly spread; every held-out safety prompt it asks is answered
    # again, sampled at 0.8.
    assert summary["eval_limit"] == 8 and summary["results"]["base"]["retention"]["n"] == 8
    sampled = summary["results"]["base"]["safety"]
    assert sampled["sampled_temperature"] == 0.8 and sampled["sampled_answers"] == 8 + 8

    # The loop closes: the experiment's pairs train the DPO round, which meets the winner in a second experiment.
    e = json.loads((out / "experiment" / "experiment.json").read_text())
    assert e["answered"] == e["requests_sent"] == 40 and e["feedback_posted"] == 40
    assert e["pairs"] == len(read_jsonl(out / "experiment" / "pairs.jsonl", allow_empty=True))
    dpo_ab = read_manifest(out / "dpo-ab")
    assert str(out / "experiment" / "pairs.jsonl") in json.dumps(dpo_ab["config"]["datasets"])
    assert dpo_ab["config"]["model"] == read_manifest(out / "bench")["config"]["models"][summary["winner"]]
    e2 = json.loads((out / "experiment-round2" / "experiment.json").read_text())
    assert set(e2["arms"]) == {"winner", "dpo-ab"} and e2["answered"] == 40
    assert set(e2["by_kind"]["arms"]) == {"winner", "dpo-ab"}
    assert e["judge"] == e2["judge"] == "0.5 x rules judge + 0.5 x base's pmi verdict"
    # Pairs by the judges' own verdicts (the recipe's llm_margin), each judge's verdict kept per answer.
    pm, judged = e["pair_metrics"], read_jsonl(out / "experiment" / "judged.jsonl")
    assert pm["by_rules"] + pm["by_llm"] == e["pairs"] and pm["llm_margin"] == 0.0
    # The answers met their verdicts (a row without them is left out of the pairing), and balanced draws asked each
    # of the pool's 20 prompts twice (40 random draws would miss some: 17.4 of 20 on average).
    assert pm["prompts"] == 20
    assert len(judged) == 40 and all(j["rules"] in (0.0, 1.0) and isinstance(j["llm"], float) for j in judged)
    # The effect paired by prompt is over the prompts both arms answered: those the pairs were mined from too.
    assert e["by_prompt"]["incumbent"]["prompts"] == pm["prompts_both_arms"] and all(j["prompt"] for j in judged)

    report = (out / "report" / "report.md").read_text()
    for section in ("## What happened", "## Time per stage", "## Targets", "## Bench", "## A/B experiment `demo-ab`",
                    "## A/B experiment `demo-round2`", "## Lineage of the winner"):
        assert section in report
    for name in ("merged-w4a16", "merged-w8a8", "healed-w8a8"):  # kept over its bound (over_bound: keep), and said so
        q = read_manifest(out / name)
        line = next(ln for ln in report.splitlines() if ln.startswith(f"- Quantization ({name}, quantize/"))
        assert q["metrics"]["over_bound"] == (q["metrics"]["ppl_delta_pct"] > 5)
        assert ("over its 5% bound (kept for the bench to measure)" in line) == q["metrics"]["over_bound"]
        assert ("not served on this machine: it has 4-bit weights" in line) == (not q["servable"])  # no AVX-512
        assert f"unquantized on every task ({name} vs {name.split('-')[0]}; worst:" in report  # against its source
    assert read_manifest(out / "merged-w8a8")["servable"]  # vLLM's CPU build serves 8-bit weights without AVX-512
    assert "rated by the judge: 0.5 x rules judge + 0.5 x base's pmi verdict) through the router" in report
    assert f"{pm['by_rules']} where the rules judge accepted one answer and rejected the other" in report
    assert "sampled at temperature 0.8, as served:" in report
    assert "Baseline (base, before any training)" in report and "Next round (dpo-ab" in report
    assert "On-policy pairs (onpolicy-safety): the model got 6 of 6 training prompts wrong" in report
    assert "; 2 of those answers became the rejected side" in report
    assert "Merge, then heal (healed): a safety DPO on the merge itself (the merge got 6 of 6 training prompts " \
           f"wrong by its scorers (100%); 2 became DPO pairs; and {len(anchor)} pairs of its 4 answers to everyday " \
           f"requests, each under the instruct model's own answer ({len(anchor)} differed)): over-refusal " in report
    assert "(healed: the merge, then its own safety DPO) |" in report
    assert "| stage | kind | seconds | finished (UTC) |" in report and "| base | base/import |" in report
    assert f"Bench decision: {summary['winner']}" in report and f"**Decision: {e['decision']['kind']}**" in report

    again = demo(out)  # unchanged recipe and inputs: every stage is skipped
    assert again.returncode == 0, again.stderr[-3000:]
    assert [ln.split(": ")[1].split(" (")[0] for ln in again.stdout.splitlines() if ln.startswith("[")] == \
        ["cached"] * n
