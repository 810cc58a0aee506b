"""Assignment split and stickiness; statistics checked against values computed here with scipy; the policy."""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest
from scipy import integrate, stats

from shipit.serve import assign, policy
from shipit.serve import stats as S
from shipit.serve.config import ABConfig
from shipit.serve.events import EventStore, latest_weights, record_decision
from shipit.serve.app import create_app
from tests.fake_upstream import FakeUpstream, running


def test_split_of_10000_users_is_within_srm_bounds():
    table = assign.bucket_table({"a": 70, "b": 20, "c": 10})
    arms = [assign.pick(table, assign.bucket("salt-1", f"user-{i}")) for i in range(10_000)]
    counts = [arms.count(a) for a in "abc"]
    chi2, p = stats.chisquare(counts, [7000, 2000, 1000])
    assert p > 0.001, counts
    assert S.srm(dict(zip("abc", counts)), {"a": 70, "b": 20, "c": 10})["p"] == pytest.approx(p, rel=1e-9)
    other = [assign.pick(table, assign.bucket("salt-2", f"user-{i}")) for i in range(10_000)]
    assert 0.4 < np.mean([x == y for x, y in zip(arms, other)]) < 0.6  # a new salt reshuffles users
    assert sum(assign.in_shadow("salt-1", f"user-{i}", 0.1) for i in range(10_000)) == pytest.approx(1000, abs=95)


def test_same_user_same_arm_across_router_restart(tmp_path):
    up = FakeUpstream("x")
    with running(up.app) as u:
        cfg = ABConfig.model_validate({"experiment": "e", "arms": [{"name": "a", "weight": 1, "upstreams": [u]},
                                                                   {"name": "b", "weight": 1, "upstreams": [u]}],
                                       "events": str(tmp_path / "ev.sqlite"), "auth": {"required": False}})
        seen = []
        for _ in range(2):  # two app instances: a restart, or two replicas of the router
            import httpx

            with running(create_app(cfg)) as url:
                seen.append([httpx.post(f"{url}/v1/chat/completions", json={"messages": [], "user": f"u{i}"})
                             .headers["x-shipit-arm"] for i in range(40)])
    assert seen[0] == seen[1] and set(seen[0]) == {"a", "b"}


def test_srm_flags_a_broken_split():
    res = S.srm({"a": 5300, "b": 4700}, {"a": 50, "b": 50})
    assert res["chi2"] == pytest.approx(stats.chisquare([5300, 4700]).statistic)
    assert res["p"] < 0.001


def test_msprt_matches_the_mixture_integral():
    rng = np.random.default_rng(0)
    arms = rng.choice(["a", "b"], size=3000)
    x = np.where(arms == "a", rng.random(3000) < 0.80, rng.random(3000) < 0.86).astype(float)
    tau = 0.1
    res = S.msprt(arms, x, "a", "b", tau, 0.05)
    xa, xb = x[arms == "a"], x[arms == "b"]
    v = xa.var(ddof=1) / len(xa) + xb.var(ddof=1) / len(xb)
    d = xb.mean() - xa.mean()
    # Lambda = integral over theta ~ N(0, tau^2) of the likelihood ratio N(d; theta, v) / N(d; 0, v).
    lam, _ = integrate.quad(lambda t: stats.norm.pdf(d, t, np.sqrt(v)) / stats.norm.pdf(d, 0, np.sqrt(v))
                            * stats.norm.pdf(t, 0, tau), -1, 1, points=[d], limit=200)
    assert res["lambda"] == pytest.approx(lam, rel=1e-6)
    assert res["effect"] == pytest.approx(d) and res["reject"] and res["p"] <= 1 / lam
    null = np.where(arms == "a", rng.random(3000) < 0.8, rng.random(3000) < 0.8).astype(float)
    assert not S.msprt(arms, null, "a", "b", tau, 0.05)["reject"]


def test_bayes_matches_scipy_integration():
    res = S.bayes(80, 100, 90, 100)
    fa, fb = stats.beta(81, 21), stats.beta(91, 11)
    p, _ = integrate.quad(lambda x: fb.pdf(x) * fa.cdf(x), 0, 1, limit=200)
    loss_b, _ = integrate.dblquad(lambda a, b: (a - b) * fa.pdf(a) * fb.pdf(b), 0, 1, lambda b: b, 1)
    assert res["p_b_gt_a"] == pytest.approx(p, abs=1e-6)
    assert res["loss_choose_b"] == pytest.approx(loss_b, abs=1e-6)
    assert res["loss_choose_a"] == pytest.approx(loss_b + (fb.mean() - fa.mean()), abs=1e-6)


def fill(store: EventStore, arm: str, n: int, ok_rate: float, latency: float, rng, epoch: int = 0):
    for i in range(n):
        store.record({"id": f"{arm}-{i}-{rng.random()}", "experiment": "e", "arm": arm, "forced": 0, "shadow": 0,
                      "epoch": epoch, "status": 200 if rng.random() < ok_rate else 500,
                      "latency_ms": latency * (1 + rng.random()), "ttft_ms": 5.0})


def cfg_for(tmp_path, **policy_kw) -> ABConfig:
    return ABConfig.model_validate({"experiment": "e", "events": str(tmp_path / "ev.sqlite"),
                                    "auth": {"required": False}, "policy": {"min_samples": 100, **policy_kw},
                                    "arms": [{"name": "a", "weight": 50, "upstreams": ["http://127.0.0.1:1"]},
                                             {"name": "b", "weight": 50, "upstreams": ["http://127.0.0.1:2"]}]})


def test_status_numbers_and_auto_promote(tmp_path):
    cfg = cfg_for(tmp_path, guardrails={"max_error_rate": 0.3, "error_rate_margin": 0.3})
    store, rng = EventStore(cfg.events), np.random.default_rng(1)
    fill(store, "a", 1500, 0.80, 100, rng)
    fill(store, "b", 1500, 0.90, 100, rng)
    s = S.compute(store.conn, cfg)
    lat = np.array([r[0] for r in store.conn.execute("SELECT latency_ms FROM requests WHERE arm='b'")])
    assert s["arms"]["b"]["latency_ms"][95] == pytest.approx(np.percentile(lat, 95))
    ok_a = store.conn.execute("SELECT COUNT(*) FROM requests WHERE arm='a' AND status=200").fetchone()[0]
    assert s["arms"]["a"]["n"] == 1500 and s["arms"]["a"]["success_rate"] == pytest.approx(ok_a / 1500)
    assert s["srm"]["p"] == pytest.approx(1.0) and not s["srm"]["flag"]
    t = s["tests"]["b"]
    assert t["msprt"]["reject"] and t["bayes"]["p_b_gt_a"] > 0.99
    d = policy.apply(store.conn, cfg, s)
    assert d["kind"] == "auto-promote" and d["weights"] == {"a": 0.0, "b": 100.0}
    assert latest_weights(store.conn, "e")[1] == {"a": 0.0, "b": 100.0}
    logged = store.conn.execute("SELECT reason, numbers FROM decisions").fetchone()
    assert "mSPRT p" in logged[0] and '"p_b_gt_a"' in logged[1]


def test_guardrail_breach_rolls_back_and_srm_blocks_promotion(tmp_path):
    cfg = cfg_for(tmp_path, guardrails={"max_error_rate": 0.05})
    store, rng = EventStore(cfg.events), np.random.default_rng(2)
    fill(store, "a", 500, 0.99, 100, rng)
    fill(store, "b", 500, 0.85, 100, rng)
    d = policy.apply(store.conn, cfg, S.compute(store.conn, cfg))
    assert d["kind"] == "auto-rollback" and d["weights"] == {"a": 100.0, "b": 0.0} and "error_rate" in d["reason"]

    cfg2 = cfg_for(tmp_path / "x", guardrails={"max_error_rate": 0.5, "error_rate_margin": 0.5})
    (tmp_path / "x").mkdir()
    store2 = EventStore(cfg2.events)
    fill(store2, "a", 800, 0.80, 100, rng)
    fill(store2, "b", 1200, 0.95, 100, rng)
    s = S.compute(store2.conn, cfg2)
    assert s["srm"]["flag"] and s["tests"]["b"]["msprt"]["reject"]
    assert policy.decide(cfg2, s) is None  # a winner, but the split is broken: no promotion


def test_weights_decision_is_picked_up_live(tmp_path):
    up_a, up_b = FakeUpstream("A"), FakeUpstream("B")
    import httpx

    with running(up_a.app) as a, running(up_b.app) as b:
        cfg = ABConfig.model_validate({"experiment": "e", "reload_s": 0.1, "events": str(tmp_path / "ev.sqlite"),
                                       "auth": {"required": False},
                                       "arms": [{"name": "a", "weight": 1, "upstreams": [a]},
                                                {"name": "b", "weight": 1, "upstreams": [b]}]})
        with running(create_app(cfg)) as url:
            with sqlite3.connect(cfg.events) as conn:
                record_decision(conn, "e", "set-weights", {"a": 0, "b": 100}, "test")
            import time

            time.sleep(0.4)
            arms = {httpx.post(f"{url}/v1/chat/completions", json={"messages": [], "user": f"u{i}"})
                    .headers["x-shipit-arm"] for i in range(20)}
    assert arms == {"b"}
