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
        "[1/8] base", "[2/8] sft-domain", "[3/8] sft-safety", "[4/8] merge", "[5/8] quantize", "[6/8] bench",
        "[7/8] serve", "[8/8] report"]
    assert r.stdout.strip().splitlines()[-1] == f"report: {out / 'report.md'}"

    stages = {name: read_manifest(out / name)["stage"] for name in
              ("base", "sft-domain", "sft-safety", "merged", "merged-w8a8", "bench")}
    assert stages == {"base": "base", "sft-domain": "train/sft", "sft-safety": "train/sft", "merged": "merge",
                      "merged-w8a8": "quantize/w8a8", "bench": "bench"}
    tree = "\n".join(lineage_lines(out / "merged-w8a8"))
    assert tree.count("base  [base]") == 2 and "sft-domain" in tree and "sft-safety" in tree

    summary = json.loads((out / "bench" / "results.json").read_text())
    assert set(summary["results"]) == {"base", "sft-domain", "sft-safety", "merged", "merged-w8a8"}
    transcript = [json.loads(line) for line in (out / "bench" / "transcript.jsonl").read_text().splitlines()]
    assert len(transcript) == 3 and all(t["completion_tokens"] > 0 for t in transcript)
    report = (out / "report.md").read_text()
    for section in ("## Time per stage", "## Bench", "## Served by vLLM", "## Lineage of the winner"):
        assert section in report
    assert f"**Winner: {summary['winner']}**" in report
    for t in transcript:
        assert t["prompt"] in report
