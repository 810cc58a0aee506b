"""Error rates of the experiment statistics under continuous monitoring, by simulation through shipit.serve.stats:
type-I error of the mSPRT at every split and metric, SRM and guardrail false alarms, and power (a test that never
rejects would pass every type-I check). Small versions of benchmarks/bench_ab_stats.py."""

from __future__ import annotations

import math

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from shipit.serve import stats as S
from shipit.serve.simulate_stats import Setting, simulate

RUNS = 300


def slack(alpha: float, runs: int = RUNS) -> float:
    """alpha + 2.5 Monte-Carlo standard errors at alpha: a valid test fails this about 1% of the time at worst."""
    return alpha + 2.5 * math.sqrt(alpha * (1 - alpha) / runs)


@pytest.mark.parametrize("metric", ["success", "feedback"])
@pytest.mark.parametrize("split", [50, 10, 1])
def test_msprt_type_one_error_at_every_split(metric, split):
    res = simulate(Setting(weights={"a": 100 - split, "b": split}, control="a", metric=metric, runs=RUNS,
                           requests=3000, seed=split))
    assert res["arms"]["b"]["reject"]["p"] <= slack(0.05), res["arms"]["b"]


def test_the_issue_case_through_msprt_itself():
    """500 requests, success 0.8, 90/10, tau 0.1, alpha 0.05, read after each: per-arm plug-in variances from n = 2
    rejected 41% of these A/A runs."""
    rng = np.random.default_rng(7)
    rejected = 0
    for _ in range(RUNS):
        arms = np.where(rng.random(500) < 0.1, "b", "a")
        rejected += S.msprt(arms, (rng.random(500) < 0.8).astype(float), "a", "b", 0.1, 0.05)["reject"]
    assert rejected / RUNS <= slack(0.05)


def test_srm_and_guardrail_false_alarms_under_continuous_monitoring():
    # srm_p and the margin at their hardest settings so the rates are measurable with 300 runs.
    res = simulate(Setting(weights={"a": 90, "b": 10}, control="a", runs=RUNS, requests=3000, srm_p=0.05,
                           primary_margin=0.0, error_margin=0.0, min_samples=50, seed=3))
    assert res["srm_seq"]["p"] <= slack(0.05)
    assert res["srm_chi2_every_look"]["p"] > 0.2  # the harness does catch an invalid rule: chi-square at every look
    b = res["arms"]["b"]
    assert b["primary_breach"]["p"] <= slack(0.05) and b["error_breach"]["p"] <= slack(0.05)


def test_power_and_time_to_decision():
    res = simulate(Setting(weights={"a": 50, "b": 50}, control="a", means={"a": 0.8, "b": 0.9}, runs=RUNS,
                           requests=3000, seed=4))["arms"]["b"]
    assert res["reject"]["p"] > 0.9 and 200 < res["median_requests"] < 1500
    assert res["primary_breach"]["p"] == 0 and res["non_inferiority_shown"]["p"] > 0.9
    worse = simulate(Setting(weights={"a": 50, "b": 50}, control="a", means={"a": 0.8, "b": 0.6}, runs=RUNS,
                             requests=3000, seed=5))["arms"]["b"]
    assert worse["primary_breach"]["p"] > 0.9  # a real 20-point drop is caught as harm beyond the 5-point margin


def test_ab_simulate_aa_reads_a_config(tmp_path):
    from shipit.cli import cli

    path = tmp_path / "ab.yaml"
    path.write_text(yaml.safe_dump({"experiment": "e", "auth": {"required": False}, "policy": {"alpha": 0.1},
                                    "arms": [{"name": "a", "weight": 90, "upstreams": ["http://127.0.0.1:9"]},
                                             {"name": "b", "weight": 10, "upstreams": ["http://127.0.0.1:9"]}]}))
    r = CliRunner().invoke(cli, ["ab", "simulate", "--aa", str(path), "--runs", "200", "--requests", "1000"])
    assert r.exit_code == 0, r.output
    assert "split {'a': 90.0, 'b': 10.0}, primary success" in r.output and "(alpha 0.1)" in r.output
    assert "verdict: every false-positive rate is within alpha" in r.output
