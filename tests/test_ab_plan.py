"""`shipit ab plan`: the fixed-horizon sample size against the closed form computed here and a textbook value, and
the mSPRT's requests for the same power."""

from __future__ import annotations

import math

import pytest
from click.testing import CliRunner
from scipy.stats import norm

from shipit.cli import cli
from shipit.serve.plan import fixed_horizon, plan


def test_fixed_horizon_matches_the_closed_form():
    assert fixed_horizon(0.5, 0.1, 0.05, 0.8, 0.5) == (388, 388)  # the textbook 50% -> 60% case
    p1, p2, k = 0.8, 0.83, 1 / 9  # 90/10: the treatment gets a ninth of the control's requests
    pbar = (p1 + k * p2) / (1 + k)
    n_a = ((norm.isf(0.025) * math.sqrt(pbar * (1 - pbar) * (1 + 1 / k))
            + norm.ppf(0.9) * math.sqrt(p1 * (1 - p1) + p2 * (1 - p2) / k)) / 0.03) ** 2
    assert fixed_horizon(0.8, 0.03, 0.05, 0.9, 0.1) == (math.ceil(n_a), math.ceil(k * n_a))


def test_plan_totals_hours_and_msprt_inflation():
    p = plan(0.5, 0.1, split=50, per_hour=388, runs=400)
    assert p["fixed"] == {"control": 388, "treatment": 388, "total": 776, "hours": pytest.approx(2.0)}
    ratio = p["msprt"]["requests_for_power"] / p["fixed"]["total"]
    assert 1.2 < ratio < 2.5  # continuous monitoring costs requests at the MDE (about 1.7x here)
    assert p["msprt"]["hours"] == pytest.approx(p["msprt"]["requests_for_power"] / 388)


def test_ab_plan_cli():
    r = CliRunner().invoke(cli, ["ab", "plan", "--base", "0.5", "--mde", "0.1", "--per-hour", "100"])
    assert r.exit_code == 0 and "control 388, treatment 388, total 776 requests, about 7.8 h" in r.output
    bad = CliRunner().invoke(cli, ["ab", "plan", "--base", "0.95", "--mde", "0.1"])
    assert bad.exit_code == 2 and "inside (0, 1)" in bad.output and "Traceback" not in bad.output
