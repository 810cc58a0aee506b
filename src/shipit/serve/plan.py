"""`shipit ab plan`: how many requests an A/B test of a success rate needs, at a fixed horizon and with the mSPRT."""

from __future__ import annotations

import math

import numpy as np
from scipy.stats import norm

from shipit.errors import UserError


def fixed_horizon(base: float, mde: float, alpha: float, power: float, share_b: float) -> tuple[int, int]:
    """Requests per arm (control, treatment) of a two-sided two-proportion z-test read once, at the end.

    n_a = (z_{1-alpha/2} sqrt(pbar qbar (1 + 1/k)) + z_{power} sqrt(p1 q1 + p2 q2 / k))^2 / mde^2, n_b = k n_a,
    k = n_b / n_a the split (Fleiss; no continuity correction).
    """
    p1, p2 = base, base + mde
    k = share_b / (1 - share_b)
    pbar = (p1 + k * p2) / (1 + k)
    za, zb = norm.ppf(1 - alpha / 2), norm.ppf(power)
    n_a = (za * math.sqrt(pbar * (1 - pbar) * (1 + 1 / k)) + zb * math.sqrt(p1 * (1 - p1) + p2 * (1 - p2) / k)) ** 2
    n_a /= mde**2
    return math.ceil(n_a), math.ceil(k * n_a)


def msprt_requests(base: float, mde: float, alpha: float, power: float, share_b: float, tau: float,
                   burn_in: float, horizon: int, runs: int = 1000, seed: int = 0) -> dict:
    """Requests until the mSPRT rejects, by simulation through the router's own statistics (checked every
    horizon/400 requests): the `power` quantile (requests for that power) and the median."""
    from shipit.serve.simulate_stats import Setting, simulate

    batch = max(1, horizon // 400)
    s = Setting(weights={"control": 1 - share_b, "treatment": share_b}, control="control",
                means={"control": base, "treatment": base + mde}, requests=horizon, runs=runs, tau=tau,
                alpha=alpha, burn_in=burn_in, batch=batch, seed=seed)
    res = simulate(s, keep_times=True)["arms"]["treatment"]
    at = np.where(res["times"] > 0, res["times"], np.inf)
    q = float(np.quantile(at, power))
    return {"requests_for_power": None if math.isinf(q) else int(q), "median": res["median_requests"],
            "power_within_horizon": res["reject"]["p"], "horizon": horizon, "runs": runs, "look_every": batch}


def plan(base: float, mde: float, alpha: float = 0.05, power: float = 0.8, split: float = 50.0,
         per_hour: float | None = None, tau: float = 0.1, burn_in: float = 20, runs: int = 1000) -> dict:
    """Requests per arm and in total for a fixed-horizon test and for the always-valid mSPRT, with expected hours."""
    if not 0 < base < 1 or not 0 < base + mde < 1 or mde == 0:
        raise UserError(f"ab plan: --base {base:g} and --mde {mde:+g} must give two rates inside (0, 1)")
    if not 0 < split < 100:
        raise UserError(f"ab plan: --split {split:g} is the treatment's share in percent, inside (0, 100), e.g. 10")
    share = split / 100
    n_a, n_b = fixed_horizon(base, mde, alpha, power, share)
    total = math.ceil(max(n_a / (1 - share), n_b / share))  # requests until both arms have their n, on average
    seq = msprt_requests(base, mde, alpha, power, share, tau, burn_in, horizon=6 * total, runs=runs)
    hours = (lambda n: None if n is None or not per_hour else n / per_hour)
    return {"base": base, "mde": mde, "alpha": alpha, "power": power, "split": split,
            "fixed": {"control": n_a, "treatment": n_b, "total": total, "hours": hours(total)},
            "msprt": {**seq, "hours": hours(seq["requests_for_power"])}}


def report(p: dict) -> str:
    """The plan as text."""
    f, m = p["fixed"], p["msprt"]
    h = lambda x: f", about {x:.1f} h" if x is not None else ""  # noqa: E731
    lines = [f"success rate {p['base']:g} -> {p['base'] + p['mde']:g} (MDE {p['mde']:+g}), alpha {p['alpha']:g} "
             f"two-sided, power {p['power']:g}, treatment share {p['split']:g}%",
             f"fixed horizon (two-proportion z-test, read ONCE at the end): control {f['control']}, treatment "
             f"{f['treatment']}, total {f['total']} requests{h(f['hours'])}"]
    if m["requests_for_power"] is None:
        lines.append(f"mSPRT (read after every request): power {m['power_within_horizon']:.2f} within "
                     f"{m['horizon']} requests; more than that for power {p['power']:g}")
    else:
        lines.append(f"mSPRT (read after every request, as the policy does): {m['requests_for_power']} requests "
                     f"for power {p['power']:g} ({m['requests_for_power'] / f['total']:.2f}x the fixed horizon)"
                     f"{h(m['hours'])}; median {m['median']:.0f} when it decides (simulated, {m['runs']} runs)")
    lines.append("the mSPRT may be read at any time and stops early on large effects; the price is more requests "
                 "than a single read at the planned horizon when the effect is near the MDE")
    return "\n".join(lines)
