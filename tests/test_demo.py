"""The whole loop as a user runs it: `shipit demo` (the bundled recipe) on the smallest preset, twice."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
import yaml

from shipit.config import read_jsonl
from shipit.demo.run import RECIPE
from shipit.registry import lineage_lines, read_manifest

pytestmark = [pytest.mark.slow, pytest.mark.vllm]

STAGES = {"base": "base", "cpt-domain": "train/cpt", "sft-domain": "train/sft", "dpo-domain": "train/dpo",
          "cai-safety": "data/cai", "sft-safety": "train/sft", "dpo-safety": "train/dpo", "iterate": "iterate",
          "merged": "merge/search", "merged-w4a16": "quantize/w8a8", "bench": "bench",
          "experiment": "serve/experiment", "report": "report"}


def demo(out):
    return subprocess.run([sys.executable, "-m", "shipit", "demo", "--preset", "smoke", "--out", str(out)],
                          capture_output=True, text=True, timeout=1500)


def test_demo_smoke_end_to_end_then_fully_cached(vllm_python, tmp_path):
    out = tmp_path / "demo"
    r = demo(out)
    assert r.returncode == 0, r.stderr[-3000:]
    progress = [ln for ln in r.stdout.splitlines() if ln.startswith("[")]
    assert [ln.split(": ")[0] for ln in progress] == [
        f"[{i}/13] {name} ({kind.split('/w')[0]})" for i, (name, kind) in enumerate(STAGES.items(), 1)]
    assert all(ln.split(": ")[1].startswith("run (new)") for ln in progress)
    assert r.stdout.strip().splitlines()[-1] == f"report: {out / 'report' / 'report.md'}"
    assert {name: read_manifest(out / name)["stage"] for name in STAGES} == STAGES

    cai = read_manifest(out / "cai-safety")
    assert cai["metrics"]["revisions"] == 6 and cai["feedback"]["method"] == "logprobs"
    # The recipe's quality gate keeps exactly the generated revisions whose answer matches its pattern in full.
    keep = yaml.safe_load(RECIPE.read_text())["stages"]["cai-safety"]["config"]["keep"]
    assert keep["min_score"] == 1.0 and [s["name"] for s in keep["scorers"]] == ["format"]
    generated = read_jsonl(out / "cai-safety" / "sl.jsonl")
    passing = [r for r in generated if re.fullmatch(keep["scorers"][0]["pattern"], r["messages"][-1]["content"].strip())]
    kept = [r for r in read_jsonl(out / "cai-safety" / "sft.jsonl") if r["provenance"].get("source") == "sl-cai"]
    assert len(generated) == 6 and cai["metrics"]["revisions_kept"] == len(kept) == len(passing)
    assert [r["messages"] for r in kept] == [r["messages"] for r in passing]
    assert cai["metrics"]["sft_rows"] == len(kept) + cai["metrics"]["helpful_rows"]
    assert [h["round"] for h in read_manifest(out / "iterate")["history"]] == [0, 1]
    search = json.loads((out / "merged" / "search.json").read_text())
    assert search["trials"] == 2 and (out / "merged" / "search.png").is_file()
    tree = [ln.split("  [")[0].lstrip("│├└─ ") for ln in lineage_lines(out / "merged-w4a16")]
    assert tree == ["merged-w4a16", "merged", "base", "dpo-domain", "sft-domain", "cpt-domain", "base", "dpo-safety",
                    "cai-safety", "base", "sft-safety", "base", "cai-safety", "base"]

    summary = json.loads((out / "bench" / "results.json").read_text())
    assert set(summary["results"]) == {"base", "cpt-domain", "sft-domain", "dpo-domain", "sft-safety", "dpo-safety",
                                       "merged", "merged-w4a16"}
    e = json.loads((out / "experiment" / "experiment.json").read_text())
    assert e["answered"] == e["requests_sent"] == 80 and e["feedback_posted"] == 80
    assert sum(a["n"] for a in e["arms"].values()) == 80 and not e["srm"]["flag"]
    report = (out / "report" / "report.md").read_text()
    for section in ("## What happened", "## Time per stage", "## Bench", "## A/B experiment", "## Lineage of the winner"):
        assert section in report
    assert "- Served answers (first of each arm):" in report and report.count("  - winner: **") == 3
    assert f"Bench decision: {summary['winner']}" in report and f"**Decision: {e['decision']['kind']}**" in report

    again = demo(out)  # unchanged recipe and inputs: every stage is skipped
    assert again.returncode == 0, again.stderr[-3000:]
    assert [ln.split(": ")[1].split(" (")[0] for ln in again.stdout.splitlines() if ln.startswith("[")] == \
        ["cached"] * 13
