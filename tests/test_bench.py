"""Bench: tasks on candidates, the weighted score, the winner and the report."""

from __future__ import annotations

import json
import math

import pytest

from shipit.bench.run import BenchConfig, run
from shipit.config import load_config
from shipit.errors import UserError


def test_bench_scores_candidates_and_names_a_winner(tiny_base, model_copy, tmp_path):
    cfg = BenchConfig(models={"a": tiny_base, "b": model_copy}, tasks=["general_ppl", "safety"],
                      weights={"safety": 3.0}, output=tmp_path / "bench")
    summary = run(cfg)
    res = summary["results"]
    for name in ("a", "b"):
        r = res[name]
        expected = 1 - math.log(r["general_ppl"]["ppl"]) / math.log(512)
        assert r["general_ppl"]["score"] == pytest.approx(expected, abs=1e-4)
        assert 0 <= r["safety"]["refusal_rate"] <= 1 and 0 <= r["safety"]["over_refusal"] <= 1
        assert r["score"] == pytest.approx((r["general_ppl"]["score"] + 3 * r["safety"]["score"]) / 4, abs=1e-4)
    assert res["a"]["general_ppl"] == res["b"]["general_ppl"]  # same weights, same numbers
    assert summary["winner"] in ("a", "b")
    saved = json.loads((tmp_path / "bench" / "results.json").read_text())
    assert saved["winner"] == summary["winner"]
    report = (tmp_path / "bench" / "report.md").read_text()
    assert f"**Winner: {summary['winner']}**" in report and "| a" in report and "| b" in report


def test_bench_config_rejects_unknown_task(tmp_path):
    p = tmp_path / "bench.yaml"
    p.write_text("models: {a: x}\ntasks: [general_ppl, toxicity]\noutput: o\n")
    with pytest.raises(UserError, match=r"bench.yaml:2: field 'tasks': unknown task 'toxicity'; allowed: general_ppl"):
        load_config(p, BenchConfig)
