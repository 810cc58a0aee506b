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
        "[1/13] base", "[2/13] cpt-domain", "[3/13] sft-domain", "[4/13] dpo-domain", "[5/13] cai-safety",
        "[6/13] sft-safety", "[7/13] dpo-safety", "[8/13] iterate", "[9/13] merge", "[10/13] quantize",
        "[11/13] bench", "[12/13] serve", "[13/13] report"]
    assert r.stdout.strip().splitlines()[-1] == f"report: {out / 'report.md'}"

    stages = {name: read_manifest(out / name)["stage"] for name in
              ("base", "cpt-domain", "sft-domain", "dpo-domain", "sft-safety", "dpo-safety", "merged", "merged-w8a8",
               "bench", "cai-safety", "iterate")}
    assert stages == {"base": "base", "cpt-domain": "train/cpt", "sft-domain": "train/sft", "dpo-domain": "train/dpo",
                      "sft-safety": "train/sft", "dpo-safety": "train/dpo", "merged": "merge/search",
                      "merged-w8a8": "quantize/w8a8", "bench": "bench", "cai-safety": "data/cai",
                      "iterate": "iterate"}
    cai = read_manifest(out / "cai-safety")
    assert cai["metrics"]["revisions"] == 6 and cai["feedback"]["method"] == "logprobs"
    assert cai["metrics"]["sft_rows"] == 6 + 248  # revisions + the bundled safety set as helpful samples
    iterated = read_manifest(out / "iterate")
    assert [h["round"] for h in iterated["history"]] == [0, 1] and (out / "iterate" / "scores.png").is_file()
    tree = lineage_lines(out / "merged-w8a8")
    assert [ln.split("  [")[0].lstrip("│├└─ ") for ln in tree] == [
        "merged-w8a8", "merged", "base", "dpo-domain", "sft-domain", "cpt-domain", "base", "dpo-safety", "cai-safety",
        "base", "sft-safety", "base", "cai-safety", "base"]
    search = json.loads((out / "merged" / "search.json").read_text())
    assert search["trials"] == 2 and (out / "merged" / "search.png").is_file()

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
