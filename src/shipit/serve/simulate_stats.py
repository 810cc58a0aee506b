"""Monte-Carlo checks of the experiment statistics, with no servers: false-positive rates under A/A, power and
requests to a decision, through the very functions the router's statistics use (`shipit.serve.stats`), vectorised
over runs with numpy. The decision is read after every `batch` requests (1: after every request)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from shipit.serve import stats as S
from shipit.serve.config import ABConfig

# The simulated feedback metric: this share of requests gets a score, drawn from Beta(k m, k (1 - m)) with k = 1, a
# U-shaped law (mostly near 0 or 1, like thumbs, but continuous) of mean m: a skewed, lumpy metric on purpose.
FEEDBACK_RATE, FEEDBACK_KAPPA = 0.3, 1.0
DEFAULT_BASE = {"success": 0.8, "feedback": 0.6}


@dataclass
class Setting:
    """One simulated experiment design: arms and their true means, the policy's numbers, and the run size."""

    weights: dict[str, float]
    control: str
    metric: str = "success"
    means: dict[str, float] = field(default_factory=dict)
    """True mean of each arm (success rate, or mean feedback score); arms not named get the control's."""
    requests: int = 5000
    runs: int = 2000
    tau: float = 0.1
    alpha: float = 0.05
    burn_in: float = 20
    srm_p: float = 0.001
    primary_margin: float = 0.05
    error_margin: float = 0.02
    min_samples: int = 200
    batch: int = 1
    seed: int = 0
    chunk: int = 200

    @classmethod
    def from_config(cls, cfg: ABConfig, **kw) -> "Setting":
        """The statistics of an A/B config (split, primary metric, alpha, tau, guardrail margins, SRM threshold)."""
        pol, g = cfg.policy, cfg.policy.guardrails
        weights = {a: w for a, w in cfg.weights().items() if w > 0}
        return cls(weights=weights, control=cfg.control_arm, metric=pol.primary_metric, tau=pol.tau,
                   alpha=pol.alpha, burn_in=pol.burn_in, srm_p=pol.srm_p, primary_margin=g.primary_margin,
                   error_margin=g.error_rate_margin, min_samples=pol.min_samples, **kw)


def draw(rng: np.random.Generator, s: Setting, runs: int, looks: int) -> dict[str, np.ndarray]:
    """Per look and arm (runs, looks, k): requests assigned, observations, sum and sum of squares of the metric."""
    names = list(s.weights)
    probs = np.array([s.weights[a] for a in names], dtype=float)
    probs /= probs.sum()
    base = s.means.get(s.control, DEFAULT_BASE[s.metric])
    mean = np.array([s.means.get(a, base) for a in names])
    if s.batch == 1:  # one request per look: categorical and Bernoulli draws, much faster than multinomials
        arm = np.searchsorted(np.cumsum(probs)[:-1], rng.random((runs, looks)), side="right")
        assigned = (arm[..., None] == np.arange(len(names))).astype(float)
    else:
        assigned = rng.multinomial(s.batch, probs, size=(runs, looks)).astype(float)
    if s.metric == "success":
        ok = rng.binomial(assigned.astype(np.int64), mean).astype(float)
        return {"assigned": assigned, "obs": assigned, "sum": ok, "sumsq": ok}
    if s.batch != 1:
        raise ValueError("the feedback metric is simulated one request per look (batch 1)")
    obs = (rng.random(assigned.shape) < FEEDBACK_RATE) * assigned
    score = rng.beta(FEEDBACK_KAPPA * mean, FEEDBACK_KAPPA * (1 - mean), size=assigned.shape) * obs
    return {"assigned": assigned, "obs": obs, "sum": score, "sumsq": score**2}


def first_true(path: np.ndarray) -> np.ndarray:
    """Index of the first True along the last axis, or -1."""
    hit = path.any(-1)
    return np.where(hit, path.argmax(-1), -1)


def simulate(s: Setting, keep_times: bool = False) -> dict:
    """Run `s.runs` experiments; per treatment arm, how often and when each decision fired, plus the SRM alarms.

    `keep_times` adds each run's requests to a rejection (-1: none) as `times`."""
    names = list(s.weights)
    probs = np.array([s.weights[a] for a in names], dtype=float)
    probs /= probs.sum()
    c = names.index(s.control)
    looks = math.ceil(s.requests / s.batch)
    threshold = math.log(1 / s.alpha)
    rng = np.random.default_rng(s.seed)
    arms = {a: {"reject": [], "decided_at": [], "primary_breach": [], "error_breach": [], "promotable": []}
            for a in names if a != s.control}
    srm_seq, srm_chi2_any, srm_chi2_last = [], [], []
    for start in range(0, s.runs, s.chunk):
        r = min(s.chunk, s.runs - start)
        x = {k: np.cumsum(v, axis=1) for k, v in draw(rng, s, r, looks).items()}
        n = x["assigned"]
        srm_seq.append(S.srm_sequential(n, probs)[:, -1] < s.srm_p)
        chi2_p = S.srm_chi2(n, probs)[1]
        srm_chi2_any.append((chi2_p < s.srm_p).any(-1))
        srm_chi2_last.append(chi2_p[:, -1] < s.srm_p)
        for j, a in enumerate(names):
            if a == s.control:
                continue
            pick = lambda k: (x[k][..., c], x[k][..., j])  # noqa: E731
            seq = S.sequential(*pick("obs"), *pick("sum"), *pick("sumsq"), tau=s.tau, alpha=s.alpha,
                               burn_in=s.burn_in)
            first = first_true(seq["log_lambda"] >= threshold)
            judged = np.minimum(n[..., c], n[..., j]) >= s.min_samples  # guardrails wait for min_samples
            out = arms[a]
            out["reject"].append(first >= 0)
            out["decided_at"].append(np.where(first >= 0, (first + 1) * s.batch, -1))
            out["primary_breach"].append((judged & S.harm(seq["lo"], seq["hi"], s.primary_margin, True)).any(-1))
            out["promotable"].append((judged & S.shown(seq["lo_any"], seq["hi_any"], s.primary_margin, True)).any(-1))
            if s.metric == "success":  # errors are the failures (5xx) of the same requests
                err = n - x["sum"]  # 0/1, so its sum of squares is itself
                e = S.sequential(n[..., c], n[..., j], err[..., c], err[..., j], err[..., c], err[..., j],
                                 tau=s.tau, alpha=s.alpha, burn_in=s.burn_in)
                out["error_breach"].append((judged & S.harm(e["lo"], e["hi"], s.error_margin, False)).any(-1))
    cat = lambda v: np.concatenate(v) if v else None  # noqa: E731
    res = {"runs": s.runs, "requests": s.requests, "srm_seq": rate(cat(srm_seq)),
           "srm_chi2_every_look": rate(cat(srm_chi2_any)), "srm_chi2_last_look": rate(cat(srm_chi2_last)), "arms": {}}
    for a, out in arms.items():
        at = cat(out["decided_at"])
        res["arms"][a] = {"reject": rate(cat(out["reject"])), "primary_breach": rate(cat(out["primary_breach"])),
                          "error_breach": rate(cat(out["error_breach"])) if out["error_breach"] else None,
                          "non_inferiority_shown": rate(cat(out["promotable"])),
                          "median_requests": float(np.median(at[at > 0])) if (at > 0).any() else None}
        if keep_times:
            res["arms"][a]["times"] = at
    return res


def rate(hits: np.ndarray) -> dict:
    """A proportion with its Monte-Carlo standard error."""
    p = float(hits.mean())
    return {"p": p, "se": math.sqrt(max(p * (1 - p), 1e-12) / hits.size), "n": int(hits.size)}


def aa_report(cfg: ABConfig, runs: int = 1000, requests: int = 5000, base: float | None = None,
              seed: int = 0) -> str:
    """`shipit ab simulate --aa`: false-positive rates of a config's statistics over simulated A/A experiments."""
    s = Setting.from_config(cfg, runs=runs, requests=requests, seed=seed)
    s.means = {s.control: base if base is not None else DEFAULT_BASE[s.metric]}
    res = simulate(s)
    pct = lambda r: f"{100 * r['p']:.2f}% +- {100 * r['se']:.2f}"  # noqa: E731
    lines = [f"A/A check of '{cfg.experiment}': {runs} simulated experiments x {requests} requests, split "
             f"{s.weights}, primary {s.metric} (mean {s.means[s.control]:g} in every arm), decision read after "
             f"every request",
             f"SRM false alarm (always-valid, flag at p < {s.srm_p:g}): {pct(res['srm_seq'])}  "
             f"[a chi-square read as often: {pct(res['srm_chi2_every_look'])}]"]
    for a, r in res["arms"].items():
        lines.append(f"{a} vs {s.control}: mSPRT false positive {pct(r['reject'])} (alpha {s.alpha:g}); "
                     f"primary guardrail false breach {pct(r['primary_breach'])} (margin {s.primary_margin:g})"
                     + (f"; error guardrail false breach {pct(r['error_breach'])} (margin {s.error_margin:g})"
                        if r["error_breach"] else ""))
    bad = [a for a, r in res["arms"].items() if r["reject"]["p"] > s.alpha + 2 * r["reject"]["se"]]
    lines.append("verdict: " + (f"FALSE POSITIVES ABOVE ALPHA for {', '.join(bad)}" if bad else
                                "every false-positive rate is within alpha (+2 MC s.e.)"))
    return "\n".join(lines)
