"""Experiment statistics: per-arm summaries, sample-ratio mismatch, mSPRT, Bayesian P(B > A), guardrails."""

from __future__ import annotations

import math
import sqlite3

import numpy as np
from scipy import stats as st
from scipy.integrate import trapezoid

from shipit.serve.config import ABConfig
from shipit.serve.events import latest_weights


def srm(counts: dict[str, int], weights: dict[str, float]) -> dict:
    """Pearson chi-square of observed arm counts against the configured weights (arms of weight 0 left out)."""
    names = [a for a, w in weights.items() if w > 0]
    obs = np.array([counts.get(a, 0) for a in names], dtype=float)
    n = obs.sum()
    if len(names) < 2 or n == 0:
        return {"chi2": 0.0, "p": 1.0, "df": max(len(names) - 1, 0), "n": int(n)}
    exp = np.array([weights[a] for a in names], dtype=float)
    exp = exp / exp.sum() * n
    chi2 = float(((obs - exp) ** 2 / exp).sum())
    return {"chi2": chi2, "p": float(st.chi2.sf(chi2, len(names) - 1)), "df": len(names) - 1, "n": int(n)}


def msprt_lambda(mean_a, var_a, n_a, mean_b, var_b, n_b, tau: float):
    """Normal-mixture likelihood ratio for H0: mean_b - mean_a = 0, mixing the effect over N(0, tau^2)."""
    v = var_a / n_a + var_b / n_b
    d = mean_b - mean_a
    return np.sqrt(v / (v + tau**2)) * np.exp(d**2 * tau**2 / (2 * v * (v + tau**2)))


def msprt(arms: np.ndarray, values: np.ndarray, a: str, b: str, tau: float, alpha: float) -> dict:
    """Always-valid sequential test of B vs A over observations in arrival order (`arms[i]` got `values[i]`).

    The p-value is the running minimum of 1/Lambda over every prefix, so peeking at any time keeps its level.
    """
    out = {"effect": None, "lambda": None, "p": 1.0, "reject": False}
    ia, ib = arms == a, arms == b
    keep = ia | ib
    if keep.sum() == 0:
        return out
    x, ia, ib = values[keep].astype(float), ia[keep], ib[keep]
    n_a, n_b = np.cumsum(ia), np.cumsum(ib)
    s_a, s_b = np.cumsum(np.where(ia, x, 0.0)), np.cumsum(np.where(ib, x, 0.0))
    q_a, q_b = np.cumsum(np.where(ia, x * x, 0.0)), np.cumsum(np.where(ib, x * x, 0.0))
    ok = (n_a >= 2) & (n_b >= 2)
    if not ok.any():
        return out
    n_a, n_b, s_a, s_b, q_a, q_b = (v[ok].astype(float) for v in (n_a, n_b, s_a, s_b, q_a, q_b))
    m_a, m_b = s_a / n_a, s_b / n_b
    var_a = np.maximum((q_a - n_a * m_a**2) / (n_a - 1), 0.0)
    var_b = np.maximum((q_b - n_b * m_b**2) / (n_b - 1), 0.0)
    pos = (var_a / n_a + var_b / n_b) > 0
    if not pos.any():
        return {**out, "effect": float(m_b[-1] - m_a[-1])}
    with np.errstate(over="ignore"):
        lam = msprt_lambda(m_a[pos], var_a[pos], n_a[pos], m_b[pos], var_b[pos], n_b[pos], tau)
    p = float(min(1.0, np.min(1.0 / lam)))
    return {"effect": float(m_b[-1] - m_a[-1]), "lambda": float(lam[-1]), "p": p, "reject": p <= alpha}


def bayes(succ_a: float, n_a: float, succ_b: float, n_b: float, grid: int = 4001) -> dict:
    """P(B > A) and expected losses under Beta(1, 1) priors, by numerical integration over B's posterior."""
    aa, ba, ab, bb = 1 + succ_a, 1 + n_a - succ_a, 1 + succ_b, 1 + n_b - succ_b
    lo = max(0.0, min(st.beta.ppf(1e-10, aa, ba), st.beta.ppf(1e-10, ab, bb)))
    hi = min(1.0, max(st.beta.isf(1e-10, aa, ba), st.beta.isf(1e-10, ab, bb)))
    x = np.linspace(lo, hi, grid)
    fb, fa = st.beta.pdf(x, ab, bb), st.beta.pdf(x, aa, ba)
    mean_a, mean_b = aa / (aa + ba), ab / (ab + bb)
    p_b_gt_a = float(trapezoid(fb * st.beta.cdf(x, aa, ba), x))
    # E[(A - x)+] = mean_a * P_{Beta(aa+1, ba)}(A > x) - x * P(A > x): closed form inside, numeric outside.
    up_a = mean_a * st.beta.sf(x, aa + 1, ba) - x * st.beta.sf(x, aa, ba)
    up_b = mean_b * st.beta.sf(x, ab + 1, bb) - x * st.beta.sf(x, ab, bb)
    return {"p_b_gt_a": min(max(p_b_gt_a, 0.0), 1.0),
            "loss_choose_b": float(trapezoid(fb * up_a, x)),
            "loss_choose_a": float(trapezoid(fa * up_b, x))}


def non_inferiority(succ_a: float, n_a: int, succ_b: float, n_b: int, z: float = 1.959964) -> tuple[float, float]:
    """Wald 95% interval of (rate B - rate A)."""
    pa, pb = succ_a / n_a, succ_b / n_b
    se = math.sqrt(pa * (1 - pa) / n_a + pb * (1 - pb) / n_b)
    return pb - pa - z * se, pb - pa + z * se


def load(conn: sqlite3.Connection, experiment: str) -> dict[str, np.ndarray]:
    """Columns of the experiment's live (not forced, not shadow, not abandoned) requests, in arrival order."""
    rows = conn.execute(
        "SELECT r.arm, r.status, r.latency_ms, r.ttft_ms, r.epoch, r.shadow, "
        "(SELECT f.score FROM feedback f WHERE f.request_id = r.id ORDER BY f.rowid DESC LIMIT 1) "
        "FROM requests r WHERE r.experiment = ? AND r.forced = 0 AND r.status != 499 ORDER BY r.rowid",
        (experiment,)).fetchall()
    cols = list(zip(*rows)) if rows else [()] * 7
    arr = lambda i, dt: np.array(cols[i], dtype=dt)  # noqa: E731
    return {"arm": arr(0, object), "status": arr(1, float), "latency": arr(2, float), "ttft": arr(3, float),
            "epoch": arr(4, float), "shadow": arr(5, float), "score": arr(6, float)}


def pct(x: np.ndarray, q: float) -> float | None:
    """The q-th percentile of the finite values, or None."""
    x = x[np.isfinite(x)]
    return float(np.percentile(x, q)) if x.size else None


def summarize(d: dict[str, np.ndarray], arm: str) -> dict:
    """n, success/error/feedback rates and latency/TTFT percentiles of one arm."""
    m = d["arm"] == arm
    n = int(m.sum())
    status, scores = d["status"][m], d["score"][m]
    fb = np.isfinite(scores)
    lat, ttft = d["latency"][m], d["ttft"][m]
    return {"n": n, "success": int((status < 400).sum()), "success_rate": float((status < 400).mean()) if n else None,
            "error_rate": float((status >= 500).mean()) if n else None,
            "feedback_n": int(fb.sum()), "feedback_rate": float(fb.mean()) if n else None,
            "feedback_score": float(scores[fb].mean()) if fb.any() else None,
            "latency_ms": {q: pct(lat, q) for q in (50, 95, 99)}, "ttft_ms": {q: pct(ttft, q) for q in (50, 95, 99)}}


def primary_values(d: dict[str, np.ndarray], metric: str) -> tuple[np.ndarray, np.ndarray]:
    """(arms, values) of the primary metric: success as 0/1, or feedback scores where given."""
    if metric == "success":
        return d["arm"], (d["status"] < 400).astype(float)
    m = np.isfinite(d["score"])
    return d["arm"][m], d["score"][m]


def guardrails(cfg: ABConfig, control: dict, arm: dict, a_vals: np.ndarray, b_vals: np.ndarray) -> dict:
    """Each guardrail of a treatment arm against the control: None (too few samples), True (holds) or False."""
    g, pol = cfg.policy.guardrails, cfg.policy
    if min(control["n"], arm["n"]) < pol.min_samples:
        return {"error_rate": None, "error_margin": None, "p95_latency": None, "latency_margin": None, "primary": None}
    p95, p95c = arm["latency_ms"][95] or 0.0, control["latency_ms"][95] or 0.0
    out = {"error_rate": arm["error_rate"] <= g.max_error_rate,
           "error_margin": arm["error_rate"] - control["error_rate"] <= g.error_rate_margin,
           "p95_latency": p95 <= g.max_p95_latency_ms,
           "latency_margin": p95 <= p95c * (1 + g.latency_margin), "primary": None}
    if len(a_vals) >= 2 and len(b_vals) >= 2:
        _, hi = non_inferiority(a_vals.sum(), len(a_vals), b_vals.sum(), len(b_vals))
        out["primary"] = hi >= -g.primary_margin
    return out


def compute(conn: sqlite3.Connection, cfg: ABConfig) -> dict:
    """Everything `shipit ab status` shows, as plain JSON-able data."""
    d = load(conn, cfg.experiment)
    latest = latest_weights(conn, cfg.experiment)
    epoch, weights = latest if latest else (0, cfg.weights())
    live = d["shadow"] == 0
    arms_all = [a.name for a in cfg.arms]
    live_d = {k: v[live] for k, v in d.items()}
    summaries = {a: summarize(live_d, a) for a in arms_all}
    if cfg.shadow:
        summaries[cfg.shadow.arm] = {**summarize({k: v[~live] for k, v in d.items()}, cfg.shadow.arm), "shadow": True}
    in_epoch = live_d["epoch"] == epoch
    counts = {a: int((live_d["arm"][in_epoch] == a).sum()) for a in weights}
    srm_res = srm(counts, weights)
    srm_res["flag"] = srm_res["p"] < cfg.policy.srm_p
    ctrl = cfg.control_arm
    arms_v, vals = primary_values(live_d, cfg.policy.primary_metric)
    tests = {}
    for arm in weights:
        if arm == ctrl:
            continue
        a_vals, b_vals = vals[arms_v == ctrl], vals[arms_v == arm]
        tests[arm] = {"msprt": msprt(arms_v, vals, ctrl, arm, cfg.policy.tau, cfg.policy.alpha),
                      "bayes": bayes(a_vals.sum(), len(a_vals), b_vals.sum(), len(b_vals)),
                      "guardrails": guardrails(cfg, summaries[ctrl], summaries[arm], a_vals, b_vals)}
    return {"experiment": cfg.experiment, "control": ctrl, "primary_metric": cfg.policy.primary_metric,
            "weights": weights, "epoch": epoch, "arms": summaries, "srm": srm_res, "tests": tests}
