"""The walking skeleton end to end, as a user runs it: `shipit demo` on the smallest preset, served by vLLM."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from shipit.registry import lineage_lines, read_manifest

pytestmark = [pytest.mark.slow, pytest.mark.vllm]


def test_demo_smoke_end_to_end(vllm_python, tmp_path):
    out = tmp_path / "demo"
    r = subprocess.run([sys.executable, "-m", "shipit", "demo", "--preset", "smoke", "--out", str(out)],
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    progress = [ln for ln in r.stdout.splitlines() if ln.startswith("[")]
    assert [ln.split(":")[0] for ln in progress] == [
        "[1/11] base", "[2/11] cpt-domain", "[3/11] sft-domain", "[4/11] dpo-domain", "[5/11] sft-safety",
        "[6/11] dpo-safety", "[7/11] merge", "[8/11] quantize", "[9/11] bench", "[10/11] serve", "[11/11] report"]
    assert r.stdout.strip().splitlines()[-1] == f"report: {out / 'report.md'}"

    stages = {name: read_manifest(out / name)["stage"] for name in
              ("base", "cpt-domain", "sft-domain", "dpo-domain", "sft-safety", "dpo-safety", "merged", "merged-w8a8",
               "bench")}
    assert stages == {"base": "base", "cpt-domain": "train/cpt", "sft-domain": "train/sft", "dpo-domain": "train/dpo",
                      "sft-safety": "train/sft", "dpo-safety": "train/dpo", "merged": "merge",
                      "merged-w8a8": "quantize/w8a8", "bench": "bench"}
    tree = lineage_lines(out / "merged-w8a8")
    assert [ln.split("  [")[0].lstrip("│├└─ ") for ln in tree] == [
        "merged-w8a8", "merged", "dpo-domain", "sft-domain", "cpt-domain", "base", "dpo-safety", "sft-safety", "base"]

    summary = json.loads((out / "bench" / "results.json").read_text())
    assert set(summary["results"]) == {"base", "cpt-domain", "sft-domain", "dpo-domain", "sft-safety", "dpo-safety",
                                       "merged", "merged-w8a8"}
    transcript = [json.loads(line) for line in (out / "bench" / "transcript.jsonl").read_text().splitlines()]
    assert len(transcript) == 3 and all(t["completion_tokens"] > 0 for t in transcript)
    report = (out / "report.md").read_text()
    for section in ("## Time per stage", "## Bench", "## Served by vLLM", "## Lineage of the winner"):
        assert section in report
    assert f"**Winner: {summary['winner']}**" in report
    for t in transcript:
        assert t["prompt"] in report
