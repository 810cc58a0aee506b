"""Experiment statistics: per-arm summaries, sample-ratio mismatch, mSPRT, Bayesian P(B > A), guardrails."""

from __future__ import annotations

import sqlite3

import numpy as np
from scipy import stats as st
from scipy.integrate import trapezoid
from scipy.special import gammaln

from shipit.serve.config import ABConfig
from shipit.serve.events import latest_weights


# Dirichlet prior of the sequential SRM test, centred on the configured split: concentration 100 spreads a 50%
# share by +-5 points, the size of a broken split worth catching early; the test is valid for any value.
SRM_PRIOR = 100.0


def srm_chi2(counts: np.ndarray, probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pearson chi-square and its p-value of arm counts (..., k) against assignment probabilities (k,)."""
    n = counts.sum(-1, keepdims=True)
    exp = n * probs
    with np.errstate(divide="ignore", invalid="ignore"):
        chi2 = np.where(n[..., 0] > 0, ((counts - exp) ** 2 / exp).sum(-1), 0.0)
    return chi2, st.chi2.sf(chi2, probs.size - 1)


def srm_sequential(counts: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Always-valid SRM p-value after each assignment, from running counts (..., T, k); time on axis -2.

    The Dirichlet-multinomial Bayes factor against the configured split (Lindon & Malek, "Anytime-valid inference
    for multinomial count data", 2022) is a martingale under a correct split, so 1 / its running maximum may be read
    after every request: a chi-square read that often raised a false alarm in 2.4% (50/50) to 6% (90/10) of
    A/A runs of 5,000 requests at p < 0.001 (benchmarks/RESULTS.md).
    """
    a0 = SRM_PRIOR * probs
    n = counts.sum(-1)
    log_bf = ((gammaln(a0 + counts) - gammaln(a0)).sum(-1) - (gammaln(SRM_PRIOR + n) - gammaln(SRM_PRIOR))
              - (counts * np.log(probs)).sum(-1))
    return np.minimum(1.0, np.exp(-np.maximum.accumulate(log_bf, axis=-1)))


def srm(counts: dict[str, int], weights: dict[str, float], order: np.ndarray | None = None) -> dict:
    """Chi-square of observed arm counts against the configured weights (arms of weight 0 left out), and, given the
    arms in arrival order, the always-valid sequential p-value (`p_seq`) that the policy's flag uses."""
    names = [a for a, w in weights.items() if w > 0]
    obs = np.array([counts.get(a, 0) for a in names], dtype=float)
    n = obs.sum()
    if len(names) < 2 or n == 0:
        return {"chi2": 0.0, "p": 1.0, "p_seq": 1.0, "df": max(len(names) - 1, 0), "n": int(n)}
    probs = np.array([weights[a] for a in names], dtype=float)
    probs = probs / probs.sum()
    chi2, p = srm_chi2(obs, probs)
    out = {"chi2": float(chi2), "p": float(p), "p_seq": None, "df": len(names) - 1, "n": int(n)}
    if order is not None:
        path = np.cumsum(np.stack([order == a for a in names], axis=-1), axis=0, dtype=float)
        out["p_seq"] = float(srm_sequential(path, probs)[-1]) if len(path) else 1.0
    return out


# Both metrics live in [0, 1] (success 0/1, feedback scores): their widest variance, 1/4, is the prior, worth two
# observations, so a run of identical outcomes never yields a zero variance (an infinite Lambda).
PRIOR_VAR, PRIOR_N = 0.25, 2.0


def prefix_sums(arms: np.ndarray, values: np.ndarray, a: str, b: str) -> tuple[np.ndarray, ...]:
    """Running (n_a, n_b, sum_a, sum_b, sumsq_a, sumsq_b) over the observations of arms a and b, in arrival order."""
    ia, ib = arms == a, arms == b
    keep = ia | ib
    x, ia, ib = values[keep].astype(float), ia[keep], ib[keep]
    return tuple(np.cumsum(v).astype(float) for v in (ia, ib, np.where(ia, x, 0.0), np.where(ib, x, 0.0),
                                                      np.where(ia, x * x, 0.0), np.where(ib, x * x, 0.0)))


def sequential(n_a, n_b, s_a, s_b, q_a, q_b, tau: float, alpha: float, burn_in: float) -> dict:
    """The mixture SPRT and its confidence sequence at every prefix; arrays of any shape, time on the last axis.

    Derivation. With known variances, the likelihood ratio of the location-invariant part of two Gaussian samples
    for effect theta is N(d; theta, V) / N(d; 0, V), d = mean_b - mean_a, V = s2_a/n_a + s2_b/n_b, for ANY data-
    independent order of arrivals (Wijsman's representation: integrate the common mean out under its Haar measure).
    Mixing theta over N(0, tau^2) gives Lambda = sqrt(V/(V+tau^2)) exp(tau^2 d^2 / (2 V (V+tau^2))), a nonnegative
    martingale under H0, so P(sup Lambda >= 1/alpha) <= alpha (Ville): the test may be read after every request.
    Two plug-ins make it hold for real data: (1) one variance pooled within both arms (the arms share it under H0)
    and regularised by PRIOR_VAR; per-arm variances of a 10% arm with a handful of rows gave 41% false rejections;
    (2) a burn-in: an arm counts only once n * 4 * pooled variance >= burn_in ("effective observations": n at a
    50% rate, 5x n at 95%), where the mean of a skewed 0/1 metric is near enough normal.
    Inverting the same Lambda around theta0 gives the (1 - alpha) confidence sequence d +- r,
    r^2 = V (V + tau^2) / tau^2 * (2 log(1/alpha) + log((V + tau^2) / V)); `lo`/`hi` are its running intersection.
    """
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        m_a, m_b = s_a / n_a, s_b / n_b
        within = np.maximum(q_a - s_a * m_a, 0.0) + np.maximum(q_b - s_b * m_b, 0.0)
        var = (within + PRIOR_N * PRIOR_VAR) / (n_a + n_b - 2 + PRIOR_N)
        v = var * (1 / n_a + 1 / n_b)
        d = m_b - m_a
        t2 = tau**2
        log_lam = 0.5 * np.log(v / (v + t2)) + t2 * d**2 / (2 * v * (v + t2))
        r = np.sqrt(v * (v + t2) / t2 * (2 * np.log(1 / alpha) + np.log((v + t2) / v)))
    started = (n_a >= 2) & (n_b >= 2) & np.isfinite(log_lam)
    ok = started & (np.minimum(n_a, n_b) * 4 * var >= burn_in)
    return {"effect": d, "ok": ok, "log_lambda_now": np.where(ok, log_lam, -np.inf),
            "log_lambda": np.maximum.accumulate(np.where(ok, log_lam, -np.inf), axis=-1),
            "lo": np.maximum.accumulate(np.where(ok, d - r, -np.inf), axis=-1),
            "hi": np.minimum.accumulate(np.where(ok, d + r, np.inf), axis=-1),
            # The same sequence from the second observation per arm, without the burn-in: used only to show that a
            # guardrail holds (a metric that never varies, like zero errors in both arms, never burns in).
            "lo_any": np.maximum.accumulate(np.where(started, d - r, -np.inf), axis=-1),
            "hi_any": np.minimum.accumulate(np.where(started, d + r, np.inf), axis=-1)}


def msprt(arms: np.ndarray, values: np.ndarray, a: str, b: str, tau: float, alpha: float,
          burn_in: float = 20) -> dict:
    """Always-valid sequential test of B vs A over observations in arrival order (`arms[i]` got `values[i]`).

    The p-value is 1 / the running maximum of Lambda over every prefix past the burn-in, so peeking at any time keeps
    its level; `ci` is the (1 - alpha) confidence sequence of mean_b - mean_a (None before the burn-in).
    """
    sums = prefix_sums(arms, values, a, b)
    n_a, n_b = (int(sums[0][-1]), int(sums[1][-1])) if len(sums[0]) else (0, 0)
    out = {"effect": None, "lambda": None, "p": 1.0, "reject": False, "ci": None, "ci_any": None, "n_a": n_a,
           "n_b": n_b}
    if min(n_a, n_b) == 0:
        return out
    seq = sequential(*sums, tau=tau, alpha=alpha, burn_in=burn_in)
    out["effect"] = float(seq["effect"][-1])
    if np.isfinite(seq["lo_any"][-1]):
        out["ci_any"] = [float(seq["lo_any"][-1]), float(seq["hi_any"][-1])]
    if not seq["ok"].any():
        return out
    p = float(min(1.0, np.exp(-seq["log_lambda"][-1])))
    return {**out, "lambda": float(np.exp(min(seq["log_lambda_now"][-1], 700.0))), "p": p, "reject": p <= alpha,
            "ci": [float(seq["lo"][-1]), float(seq["hi"][-1])]}


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


def load(conn: sqlite3.Connection, experiment: str) -> dict[str, np.ndarray]:
    """Columns of the experiment's assigned (not forced) requests in arrival order, abandoned ones (499) included."""
    rows = conn.execute(
        "SELECT r.arm, r.status, r.latency_ms, r.ttft_ms, r.epoch, r.shadow, "
        "(SELECT f.score FROM feedback f WHERE f.request_id = r.id ORDER BY f.rowid DESC LIMIT 1) "
        "FROM requests r WHERE r.experiment = ? AND r.forced = 0 ORDER BY r.rowid",
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


def harm(lo, hi, margin: float, higher_is_better: bool):
    """Evidence of harm: the confidence sequence lies wholly beyond the margin on the bad side (arrays welcome)."""
    return hi < -margin if higher_is_better else lo > margin


def shown(lo, hi, margin: float, higher_is_better: bool):
    """Non-inferiority shown: the confidence sequence lies wholly within the margin (arrays welcome)."""
    return lo >= -margin if higher_is_better else hi <= margin


def bound(ci: list[float] | None, margin: float, higher_is_better: bool, ci_any: list[float] | None = None):
    """A comparison guardrail from the confidence sequence of (treatment - control): True, False or None.

    False (breach) only on evidence of harm: the whole sequence (past its burn-in, `ci`) lies beyond the margin on
    the bad side, so under A/A the false-breach rate is at most alpha however often it is read. True (holds, needed
    to promote) when the whole sequence lies within the margin (`ci_any`, from the second observation per arm, when
    given): non-inferiority shown. None while the data allow both.
    """
    if ci is not None and harm(*ci, margin, higher_is_better):
        return False
    shown_by = ci_any or ci
    return True if shown_by is not None and shown(*shown_by, margin, higher_is_better) else None


def guardrails(cfg: ABConfig, control: dict, arm: dict, primary: dict, errors: dict) -> dict:
    """Each guardrail of a treatment arm against the control: None (not known yet), True (holds) or False (breach).

    `primary` and `errors` are `msprt` results of the primary metric and of the 5xx indicator (their `ci`).
    """
    g, pol = cfg.policy.guardrails, cfg.policy
    if min(control["n"], arm["n"]) < pol.min_samples:
        return {"error_rate": None, "error_margin": None, "p95_latency": None, "latency_margin": None, "primary": None}
    p95, p95c = arm["latency_ms"][95] or 0.0, control["latency_ms"][95] or 0.0
    return {"error_rate": arm["error_rate"] <= g.max_error_rate,
            "error_margin": bound(errors["ci"], g.error_rate_margin, False, errors["ci_any"]),
            "p95_latency": p95 <= g.max_p95_latency_ms,
            "latency_margin": p95 <= p95c * (1 + g.latency_margin),
            "primary": bound(primary["ci"], g.primary_margin, True, primary["ci_any"])}


def compute(conn: sqlite3.Connection, cfg: ABConfig) -> dict:
    """Everything `shipit ab status` shows, as plain JSON-able data."""
    d = load(conn, cfg.experiment)
    latest = latest_weights(conn, cfg.experiment)
    epoch, weights = latest if latest else (0, cfg.weights())
    live, answered = d["shadow"] == 0, d["status"] != 499
    arms_all = [a.name for a in cfg.arms]
    live_d = {k: v[live & answered] for k, v in d.items()}
    summaries = {a: summarize(live_d, a) for a in arms_all}
    if cfg.shadow:
        shadow = {k: v[~live & answered] for k, v in d.items()}
        summaries[cfg.shadow.arm] = {**summarize(shadow, cfg.shadow.arm), "shadow": True}
    # SRM tests the assignment, so every assigned request counts, those the client abandoned (499) too: a slow arm
    # loses more impatient clients, and leaving them out would hide or fake a mismatch.
    in_epoch = live & (d["epoch"] == epoch)
    counts = {a: int((d["arm"][in_epoch] == a).sum()) for a in weights}
    srm_res = srm(counts, weights, d["arm"][in_epoch])
    srm_res["flag"] = srm_res["p_seq"] < cfg.policy.srm_p  # read on every policy tick: the always-valid p
    ctrl = cfg.control_arm
    pol = cfg.policy
    arms_v, vals = primary_values(live_d, pol.primary_metric)
    errors = (live_d["status"] >= 500).astype(float)
    tests = {}
    for arm in weights:
        if arm == ctrl:
            continue
        a_vals, b_vals = vals[arms_v == ctrl], vals[arms_v == arm]
        primary = msprt(arms_v, vals, ctrl, arm, pol.tau, pol.alpha, pol.burn_in)
        err = msprt(live_d["arm"], errors, ctrl, arm, pol.tau, pol.alpha, pol.burn_in)
        tests[arm] = {"msprt": primary,
                      "bayes": bayes(a_vals.sum(), len(a_vals), b_vals.sum(), len(b_vals)),
                      "guardrails": guardrails(cfg, summaries[ctrl], summaries[arm], primary, err)}
    return {"experiment": cfg.experiment, "control": ctrl, "primary_metric": cfg.policy.primary_metric,
            "weights": weights, "epoch": epoch, "arms": summaries, "srm": srm_res, "tests": tests}
