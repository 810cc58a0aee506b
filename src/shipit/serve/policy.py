"""Decision policy: promote a winner when the test says so and nothing is off; roll back on a guardrail breach."""

from __future__ import annotations

from shipit.serve.config import ABConfig
from shipit.serve.events import decide_once


def solo(cfg: ABConfig, arm: str) -> dict[str, float]:
    """Weights that send all live traffic to `arm`."""
    return {name: (100.0 if name == arm else 0.0) for name in cfg.weights()}


def decide(cfg: ABConfig, s: dict) -> tuple[str, dict[str, float], str] | None:
    """(kind, new weights, reason) when the statistics call for a change of weights, else None."""
    weights, ctrl = s["weights"], s["control"]
    live = [a for a, w in weights.items() if w > 0]
    if live == [ctrl]:
        return None
    for arm, t in s["tests"].items():
        breached = [k for k, ok in t["guardrails"].items() if ok is False]
        if weights.get(arm, 0) > 0 and breached:
            return "auto-rollback", solo(cfg, ctrl), f"arm '{arm}' breached guardrails: {', '.join(breached)}"
    if s["srm"]["flag"]:
        return None
    pol = cfg.policy
    for arm, t in s["tests"].items():
        m, b, g = t["msprt"], t["bayes"], t["guardrails"]
        if not m["reject"] or m["effect"] is None:
            continue
        # A treatment wins only with every guardrail shown to hold (True): an unknown (None) or breached (False)
        # one blocks it, whatever its weight now. The control needs nothing of the arm that lost to it.
        winner = arm if m["effect"] > 0 and b["p_b_gt_a"] >= pol.prob_threshold and \
            all(ok is True for ok in g.values()) else \
            ctrl if m["effect"] < 0 and 1 - b["p_b_gt_a"] >= pol.prob_threshold else None
        if winner and live != [winner]:
            held = "guardrails hold" if winner == arm else f"'{arm}' loses"
            return ("auto-promote", solo(cfg, winner),
                    f"'{winner}' wins on {pol.primary_metric}: effect {m['effect']:+.4f}, mSPRT p {m['p']:.2g}, "
                    f"P(B>A) {b['p_b_gt_a']:.3f}, no SRM (p {s['srm']['p_seq']:.3g}), {held}")
    return None


def apply(conn, cfg: ABConfig, s: dict) -> dict | None:
    """Decide and, when there is a decision, log it with its numbers; returns the decision or None.

    Taken once across router replicas: the decision is logged only if no other was logged since the statistics'
    epoch `s["epoch"]` (events.decide_once); a replica that lost the race returns None and follows the winner."""
    d = decide(cfg, s)
    if d is None:
        return None
    kind, weights, reason = d
    numbers = {"srm": s["srm"], "tests": s["tests"], "arms": {a: {k: v for k, v in x.items() if k != "ttft_ms"}
                                                              for a, x in s["arms"].items()}}
    decision_id = decide_once(conn, cfg.experiment, s["epoch"], kind, weights, reason, numbers)
    if decision_id is None:
        return None
    return {"id": decision_id, "kind": kind, "weights": weights, "reason": reason}
