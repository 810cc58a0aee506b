"""Assignment split and stickiness; statistics checked against values computed here with scipy; the policy."""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest
from scipy import integrate, stats

from shipit.serve import assign, policy
from shipit.serve import stats as S
from shipit.serve.config import ABConfig
from shipit.serve.events import EventStore, connect, latest_weights, record_decision
from shipit.serve.app import create_app
from tests.fake_upstream import FakeUpstream, running, wait_for


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
    order = np.random.default_rng(0).permutation(np.array(["a"] * 5300 + ["b"] * 4700))
    assert S.srm({"a": 5300, "b": 4700}, {"a": 50, "b": 50}, order)["p_seq"] < 0.001


def test_sequential_srm_is_the_dirichlet_multinomial_bayes_factor():
    counts = np.array([[1.0, 0.0], [1.0, 1.0], [2.0, 1.0], [3.0, 1.0]])  # a, b, a, a with p = (0.7, 0.3)
    probs, k = np.array([0.7, 0.3]), S.SRM_PRIOR

    def bf(c):  # marginal likelihood of the sequence under Dirichlet(k p) over the null's, by Polya urn
        num, seen = 1.0, np.zeros(2)
        for arm in c:
            num *= (k * probs[arm] + seen[arm]) / (k + seen.sum())
            seen[arm] += 1
        return num / np.prod([probs[a] for a in c])

    seqs = [[0], [0, 1], [0, 1, 0], [0, 1, 0, 0]]
    expect = np.minimum(1, 1 / np.maximum.accumulate([bf(c) for c in seqs]))
    assert S.srm_sequential(counts, probs) == pytest.approx(expect, rel=1e-9)


def test_msprt_matches_the_mixture_integral():
    rng = np.random.default_rng(0)
    arms = rng.choice(["a", "b"], size=3000)
    x = np.where(arms == "a", rng.random(3000) < 0.80, rng.random(3000) < 0.86).astype(float)
    tau = 0.1
    res = S.msprt(arms, x, "a", "b", tau, 0.05)
    xa, xb = x[arms == "a"], x[arms == "b"]
    # One variance pooled within both arms, with the [0, 1] prior 1/4 worth two observations.
    pooled = (((xa - xa.mean()) ** 2).sum() + ((xb - xb.mean()) ** 2).sum() + 2 * 0.25) / (len(x) - 2 + 2)
    v = pooled * (1 / len(xa) + 1 / len(xb))
    d = xb.mean() - xa.mean()
    # Lambda = integral over theta ~ N(0, tau^2) of the likelihood ratio N(d; theta, v) / N(d; 0, v).
    lam, _ = integrate.quad(lambda t: stats.norm.pdf(d, t, np.sqrt(v)) / stats.norm.pdf(d, 0, np.sqrt(v))
                            * stats.norm.pdf(t, 0, tau), -1, 1, points=[d], limit=200)
    assert res["lambda"] == pytest.approx(lam, rel=1e-6)
    assert res["effect"] == pytest.approx(d) and res["reject"] and res["p"] <= 1 / lam
    # The confidence sequence's ends at the last look are where the mixture centred on theta0 crosses 1/alpha.
    mix = lambda th: np.sqrt(v / (v + tau**2)) * np.exp(tau**2 * (d - th) ** 2 / (2 * v * (v + tau**2)))  # noqa
    from scipy.optimize import brentq

    lo, hi = brentq(lambda th: mix(th) - 20, d - 0.2, d), brentq(lambda th: mix(th) - 20, d, d + 0.2)
    assert res["ci"][0] >= lo - 1e-9 and res["ci"][1] <= hi + 1e-9  # running intersection: never wider
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


def fill_mixed(store: EventStore, specs: list[tuple[str, int, float, float]], rng) -> None:
    """`fill` for several arms with their requests interleaved at random, as live traffic arrives (the sequential
    SRM test reads the arrival order: all of one arm first is a broken split)."""
    order = rng.permutation(np.concatenate([np.full(n, i) for i, (_, n, _, _) in enumerate(specs)]))
    for j, i in enumerate(order):
        arm, _, ok_rate, latency = specs[i]
        store.record({"id": f"{arm}-{j}", "experiment": "e", "arm": arm, "forced": 0, "shadow": 0, "epoch": 0,
                      "status": 200 if rng.random() < ok_rate else 500, "latency_ms": latency * (1 + rng.random()),
                      "ttft_ms": 5.0})


def cfg_for(tmp_path, **policy_kw) -> ABConfig:
    return ABConfig.model_validate({"experiment": "e", "events": str(tmp_path / "ev.sqlite"),
                                    "auth": {"required": False}, "policy": {"min_samples": 100, **policy_kw},
                                    "arms": [{"name": "a", "weight": 50, "upstreams": ["http://127.0.0.1:1"]},
                                             {"name": "b", "weight": 50, "upstreams": ["http://127.0.0.1:2"]}]})


def test_status_numbers_and_auto_promote(tmp_path):
    cfg = cfg_for(tmp_path, guardrails={"max_error_rate": 0.3, "error_rate_margin": 0.3})
    store, rng = EventStore(cfg.events), np.random.default_rng(1)
    fill_mixed(store, [("a", 1500, 0.80, 100), ("b", 1500, 0.90, 100)], rng)
    s = S.compute(store.conn, cfg)
    lat = np.array([r[0] for r in store.conn.execute("SELECT latency_ms FROM requests WHERE arm='b'")])
    assert s["arms"]["b"]["latency_ms"][95] == pytest.approx(np.percentile(lat, 95))
    ok_a = store.conn.execute("SELECT COUNT(*) FROM requests WHERE arm='a' AND status=200").fetchone()[0]
    assert s["arms"]["a"]["n"] == 1500 and s["arms"]["a"]["success_rate"] == pytest.approx(ok_a / 1500)
    assert s["srm"]["p"] == pytest.approx(1.0) and s["srm"]["p_seq"] > 0.01 and not s["srm"]["flag"]
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
        app = create_app(cfg)
        with running(app) as url:
            with sqlite3.connect(cfg.events) as conn:
                record_decision(conn, "e", "set-weights", {"a": 0, "b": 100}, "test")
            wait_for(lambda: app.state.router.weights == {"a": 0.0, "b": 100.0}, what="the new weights")
            arms = {httpx.post(f"{url}/v1/chat/completions", json={"messages": [], "user": f"u{i}"})
                    .headers["x-shipit-arm"] for i in range(20)}
    assert arms == {"b"}


def test_primary_guardrail_breaches_only_on_evidence_of_harm(tmp_path):
    cfg = cfg_for(tmp_path, guardrails={"max_error_rate": 1, "error_rate_margin": 1, "primary_margin": 0.05})
    rng = np.random.default_rng(4)
    arms = np.array(["a", "b"] * 100)
    same = (rng.random(200) < 0.8).astype(float)  # A/A, 100 per arm: far too few to show non-inferiority
    res = S.msprt(arms, same, "a", "b", 0.1, 0.05)
    lo, hi = res["ci"]
    assert lo < -0.05 < 0 < hi
    assert S.bound(res["ci"], 0.05, higher_is_better=True) is None  # neither harm nor non-inferiority shown
    worse = np.where(arms == "a", rng.random(200) < 0.9, rng.random(200) < 0.5).astype(float)
    assert S.bound(S.msprt(arms, worse, "a", "b", 0.1, 0.05)["ci"], 0.05, True) is False
    big = np.array(["a", "b"] * 20000)
    equal = (rng.random(40000) < 0.8).astype(float)
    assert S.bound(S.msprt(big, equal, "a", "b", 0.1, 0.05)["ci"], 0.05, True) is True
    # Through compute(): the A/A arm is neither rolled back nor promoted.
    store = EventStore(cfg.events)
    for i, (arm, ok) in enumerate(zip(arms, same)):
        store.record({"id": f"r{i}", "experiment": "e", "arm": arm, "forced": 0, "shadow": 0, "epoch": 0,
                      "status": 200 if ok else 500, "latency_ms": 10.0, "ttft_ms": 1.0})
    s = S.compute(store.conn, cfg)
    assert s["tests"]["b"]["guardrails"]["primary"] is None and policy.decide(cfg, s) is None


def test_weight_zero_arm_with_a_breached_guardrail_is_never_promoted(tmp_path):
    arms = [{"name": n, "weight": 1, "upstreams": ["http://127.0.0.1:1"]} for n in "abc"]
    cfg = ABConfig.model_validate({"experiment": "e", "events": str(tmp_path / "ev.sqlite"),
                                   "auth": {"required": False}, "arms": arms})
    ok = {"error_rate": True, "error_margin": True, "p95_latency": True, "latency_margin": True, "primary": True}
    win = {"msprt": {"reject": True, "effect": 0.1, "p": 0.001}, "bayes": {"p_b_gt_a": 0.999}}
    quiet = {"msprt": {"reject": False, "effect": 0.0, "p": 1.0}, "bayes": {"p_b_gt_a": 0.5}, "guardrails": ok}
    for breach in ({"error_rate": False}, {"primary": None}):
        # c was set to weight 0 after it breached; its old rows still win the primary metric.
        s = {"weights": {"a": 50.0, "b": 50.0, "c": 0.0}, "control": "a", "srm": {"flag": False, "p_seq": 0.5},
             "tests": {"b": quiet, "c": {**win, "guardrails": {**ok, **breach}}}}
        assert policy.decide(cfg, s) is None, breach
    s["tests"]["c"]["guardrails"] = ok
    assert policy.decide(cfg, s)[:2] == ("auto-promote", {"a": 0.0, "b": 0.0, "c": 100.0})


def test_srm_counts_requests_the_client_abandoned(tmp_path):
    cfg = cfg_for(tmp_path)
    store = EventStore(cfg.events)
    for i in range(1000):
        arm = "ab"[i % 2]
        status = 499 if arm == "b" and i % 10 == 1 else 200  # b is slow: a fifth of its clients give up
        store.record({"id": f"r{i}", "experiment": "e", "arm": arm, "forced": 0, "shadow": 0, "epoch": 0,
                      "status": status, "latency_ms": 10.0})
    s = S.compute(store.conn, cfg)
    assert s["srm"]["n"] == 1000 and s["srm"]["p"] == pytest.approx(1.0) and not s["srm"]["flag"]
    assert s["arms"]["b"]["n"] == 400 and s["arms"]["a"]["n"] == 500  # outcomes are of answered requests


def test_error_guardrail_holds_with_no_errors_at_all(tmp_path):
    cfg = cfg_for(tmp_path)
    store = EventStore(cfg.events)
    for i in range(600):  # 300 per arm, not one 5xx: a metric that never varies never burns in
        store.record({"id": f"r{i}", "experiment": "e", "arm": "ab"[i % 2], "forced": 0, "shadow": 0, "epoch": 0,
                      "status": 200, "latency_ms": 10.0})
    g = S.compute(store.conn, cfg)["tests"]["b"]["guardrails"]
    assert g["error_margin"] is True and g["primary"] is True


def test_a_closed_event_store_leaves_no_wal_files(tmp_path):
    """close() returns after every connection is closed, the checkpoint thread's too: the last one removes the -wal
    and -shm files, and the experiment stage hashes its output right after (the thread once closed its connection
    a moment later and the hash failed on a vanished events.sqlite-shm)."""
    for i in range(5):
        path = tmp_path / f"events{i}.sqlite"
        store = EventStore(path, checkpoint_s=0.01)
        store.feedback("r", 1.0)
        assert (tmp_path / f"events{i}.sqlite-shm").exists()
        store.close()
        assert sorted(p.name for p in tmp_path.glob(f"events{i}.*")) == [f"events{i}.sqlite"]
    # A reader of the closed store leaves nothing beside it either (read-only, a WAL database gained -wal and -shm
    # files in a finished experiment's output, and its rerun refused the directory as not written by shipit), after
    # the router's store or a control-plane connection (the experiment stage's statistics) last closed it.
    for opened in (lambda: EventStore(path).conn, lambda: connect(path)):
        conn = opened()
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)  # a writer writes ahead, as before
        conn.close()
        reader = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        assert reader.execute("SELECT count(*) FROM feedback").fetchone() == (1,)
        reader.close()
        assert sorted(p.name for p in tmp_path.glob("events4.*")) == ["events4.sqlite"]
