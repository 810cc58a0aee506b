"""`shipit ab ...` and `shipit route` as a user runs them: numbers and decisions in the event store, one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import yaml
from click.testing import CliRunner

from shipit.cli import cli
from shipit.serve.config import load_ab_config
from shipit.serve.events import EventStore, decisions, latest_weights
from tests.test_router_stats import fill


def write_cfg(tmp_path, **extra):
    path = tmp_path / "ab.yaml"
    path.write_text(yaml.safe_dump({"experiment": "e", "events": "ev.sqlite", "auth": {"required": False},
                                    "arms": [{"name": "a", "weight": 50, "upstreams": ["http://127.0.0.1:9"]},
                                             {"name": "b", "weight": 50, "upstreams": ["http://127.0.0.1:9"]}],
                                    **extra}))
    return path


def test_ab_commands_record_decisions_and_status_shows_numbers(tmp_path):
    path = write_cfg(tmp_path, policy={"min_samples": 50})
    cfg = load_ab_config(path)
    store = EventStore(cfg.events)
    rng = np.random.default_rng(3)
    fill(store, "a", 300, 0.9, 50, rng)
    fill(store, "b", 300, 0.9, 80, rng)
    run = CliRunner().invoke
    r = run(cli, ["ab", "set-weights", str(path), "a=90", "b=10"])
    assert r.exit_code == 0 and "decision #1 set-weights" in r.output
    assert latest_weights(store.conn, "e")[1] == {"a": 90.0, "b": 10.0}
    assert run(cli, ["ab", "promote", str(path), "b"]).exit_code == 0
    assert latest_weights(store.conn, "e")[1] == {"a": 0.0, "b": 100.0}
    assert run(cli, ["ab", "rollback", str(path)]).exit_code == 0
    assert [d["kind"] for d in decisions(store.conn, "e")] == ["rollback", "promote", "set-weights"]
    text = run(cli, ["ab", "status", str(path)]).output
    assert "SRM chi2" in text and "b vs a" in text and "decision #3 rollback" in text
    js = json.loads(run(cli, ["ab", "status", str(path), "--json"]).output)
    lat_b = [r[0] for r in store.conn.execute("SELECT latency_ms FROM requests WHERE arm = 'b'")]
    assert js["arms"]["b"]["n"] == 300 and js["arms"]["b"]["latency_ms"]["50"] == np.percentile(lat_b, 50)


def test_user_errors_are_one_line_with_exit_2(tmp_path):
    path = write_cfg(tmp_path)
    cases = [["ab", "set-weights", str(path), "zz=1"], ["ab", "promote", str(path), "q"],
             ["ab", "set-weights", str(path), "a=-1"]]
    bad = tmp_path / "bad.yaml"
    bad.write_text("experiment: e\narms:\n  - name: a\n    weight: 1\n    upstreams: [http://127.0.0.1:9]\n"
                   "    model_nam: x\n")
    cases += [["route", "--config", str(bad)]]
    noup = tmp_path / "noup.yaml"
    noup.write_text("experiment: e\nauth: {required: false}\narms:\n  - {name: a, weight: 1, model: m}\n")
    cases += [["route", "--config", str(noup)], ["serve"]]
    for args in cases:
        r = subprocess.run([sys.executable, "-m", "shipit", *args], capture_output=True, text=True)
        assert r.returncode == 2 and r.stderr.count("\n") == 1 and r.stderr.startswith("error: "), (args, r.stderr)
    r = subprocess.run([sys.executable, "-m", "shipit", "route", "--config", str(bad)], capture_output=True, text=True)
    assert "bad.yaml:6: field 'arms.0.model_nam'" in r.stderr and "did you mean 'model_name'" in r.stderr


def test_route_without_api_keys_says_so_before_it_says_the_router_is_up(tmp_path):
    cfg = tmp_path / "keys.yaml"
    cfg.write_text("experiment: e\narms:\n  - {name: a, weight: 1, upstreams: ['http://127.0.0.1:9']}\n")
    env = {k: v for k, v in os.environ.items() if k != "SHIPIT_API_KEYS"}
    r = subprocess.run([sys.executable, "-m", "shipit", "route", "--config", str(cfg)], capture_output=True, text=True,
                       env=env, timeout=60)
    assert r.returncode == 2 and r.stderr.startswith(f"error: {cfg}: field 'auth': no API keys"), r.stderr
    assert "router for" not in r.stdout, r.stdout


def test_help_does_not_import_the_router_stack():
    code = "import sys; from shipit.cli import cli; print(any(m in sys.modules for m in ('fastapi', 'starlette', " \
           "'httpx', 'torch', 'scipy')))"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"


def test_config_hot_reload_and_admin_routes(tmp_path, monkeypatch):
    import time

    import httpx

    from shipit.serve.app import create_app
    from tests.fake_upstream import FakeUpstream, running, wait_for

    monkeypatch.setenv("SHIPIT_API_KEYS", "k1")
    up_a, up_b = FakeUpstream("A"), FakeUpstream("B")
    with running(up_a.app) as a, running(up_b.app) as b:
        path = tmp_path / "ab.yaml"
        data = {"experiment": "e", "events": "ev.sqlite", "reload_s": 0.1,
                "arms": [{"name": "a", "weight": 100, "upstreams": [a]}, {"name": "b", "weight": 0, "upstreams": [b]}]}
        path.write_text(yaml.safe_dump(data))
        with running(create_app(path)) as url, httpx.Client(base_url=url, headers={"authorization": "Bearer k1"}) as c:
            send = lambda: {c.post("/v1/chat/completions", json={"messages": [], "user": f"u{i}"})  # noqa: E731
                            .headers["x-shipit-arm"] for i in range(20)}
            assert send() == {"a"}
            data["arms"][0]["weight"], data["arms"][1]["weight"] = 0, 100
            time.sleep(0.05)  # a distinct mtime
            path.write_text(yaml.safe_dump(data))
            wait_for(lambda: c.get("/admin/stats").json()["weights"] == {"a": 0.0, "b": 100.0},
                     what="the edited weights to apply")
            assert send() == {"b"}
            js = c.get("/admin/stats").json()
            assert js["weights"] == {"a": 0.0, "b": 100.0} and js["arms"]["a"]["n"] == 20 and js["arms"]["b"]["n"] == 20
            r = c.post("/admin/weights", json={"weights": {"a": 1, "b": 1}})
            assert r.json()["weights"] == {"a": 1.0, "b": 1.0} and send() == {"a", "b"}
            assert c.post("/admin/weights", json={"weights": {"zz": 1}}).status_code == 400
            assert httpx.get(f"{url}/admin/stats").status_code == 401
            path.write_text("experiment: e\narms: [oops")  # a broken edit is ignored; the router keeps serving
            time.sleep(0.3)
            assert send() == {"a", "b"}
    conn = EventStore(tmp_path / "ev.sqlite").conn
    assert [d["kind"] for d in decisions(conn, "e")] == ["set-weights", "config-reload"]
