"""The PostgreSQL event store against a real server the suite starts itself (tests/pg_server.py): router replicas
that share one database agree on arms and weights, decide once, lose no answered event when killed, answer 503
while the database is gone and recover, and `shipit ab` works on it, including a copy from SQLite."""

from __future__ import annotations

import contextlib
import json
import re
import time

import httpx
import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from shipit.cli import cli
from shipit.errors import UserError
from shipit.models.vllm_server import free_port
from shipit.serve import policy
from shipit.serve import stats as S
from shipit.serve.app import create_app
from shipit.serve.config import ABConfig, load_ab_config
from shipit.serve.events import EventStore, connect, decisions, open_store, record_decision
from tests.fake_upstream import FakeUpstream, running, wait_for
from tests.pg_server import LocalPostgres
from tests.test_router_kill import check_no_answer_lost, kill_under_load
from tests.test_router_stats import fill_mixed



@pytest.fixture(scope="session")
def pg():
    server = LocalPostgres(fsync=False).start()
    yield server
    server.destroy()


@pytest.fixture
def dsn(pg, request) -> str:
    """A fresh database on the session's server."""
    return pg.create_db("t_" + re.sub(r"\W+", "_", request.node.name).lower()[:55])


def ab(events, upstream: str = "http://127.0.0.1:9", **extra) -> ABConfig:
    return ABConfig.model_validate({"experiment": "e", "events": str(events), "auth": {"required": False},
                                    "arms": [{"name": "a", "weight": 50, "upstreams": [upstream]},
                                             {"name": "b", "weight": 50, "upstreams": [upstream]}], **extra})


def chat(url: str, user: str, **kw) -> httpx.Response:
    return httpx.post(f"{url}/v1/chat/completions", json={"messages": [], "user": user, **kw}, timeout=10)


def test_events_dsn_comes_from_the_config_or_an_environment_variable(tmp_path, monkeypatch):
    path = tmp_path / "ab.yaml"
    base = {"experiment": "e", "arms": [{"name": "a", "weight": 1, "upstreams": ["http://127.0.0.1:9"]}]}
    path.write_text(yaml.safe_dump({**base, "events": "postgresql://router@db.internal:5433/ab"}))
    assert load_ab_config(path).events == "postgresql://router@db.internal:5433/ab"  # not a Path: `//` kept
    path.write_text(yaml.safe_dump({**base, "events_env": "SHIPIT_TEST_DSN"}))
    monkeypatch.delenv("SHIPIT_TEST_DSN", raising=False)
    with pytest.raises(UserError, match=r"field 'events_env': environment variable SHIPIT_TEST_DSN is not set"):
        load_ab_config(path)
    monkeypatch.setenv("SHIPIT_TEST_DSN", "postgresql://r:secret@h/db")
    assert load_ab_config(path).events == "postgresql://r:secret@h/db"
    path.write_text(yaml.safe_dump(base))
    assert load_ab_config(path).events == tmp_path / "ab-events.sqlite"  # SQLite stays the default


def test_unreachable_server_is_a_one_line_error_without_the_password():
    port = free_port()
    with pytest.raises(UserError) as e:
        connect(f"postgresql://u:hunter2@127.0.0.1:{port}/db")
    assert f"127.0.0.1:{port}/db" in str(e.value) and "hunter2" not in str(e.value) and "\n" not in str(e.value)


def test_two_routers_on_one_database_agree_on_arms_and_follow_each_others_weights(dsn, tmp_path, monkeypatch):
    up = FakeUpstream("x")
    with running(up.app) as u:
        cfg = ab(dsn, u, reload_s=0.3, record_text=True)
        with running(create_app(cfg)) as r1, running(create_app(cfg)) as r2:
            users = [f"u{i}" for i in range(40)]
            arms1 = [chat(r1, x).headers["x-shipit-arm"] for x in users]
            arms2 = [chat(r2, x, stream=True).headers["x-shipit-arm"] for x in users]
            assert arms1 == arms2 and set(arms1) == {"a", "b"}
            t0 = time.monotonic()
            r = httpx.post(f"{r1}/admin/weights", json={"weights": {"a": 0, "b": 100}})
            assert r.status_code == 200
            wait_for(lambda: all(chat(r2, x).headers["x-shipit-arm"] == "b" for x in users[:8]), timeout=5,
                     what="the other router to apply the weights")
            applied = time.monotonic() - t0
        # `shipit ab` on the same database, the DSN from the environment
        path = tmp_path / "ab.yaml"
        path.write_text(yaml.safe_dump({**json.loads(cfg.model_dump_json(exclude={"events"})),
                                        "events_env": "SHIPIT_TEST_DSN"}))
        monkeypatch.setenv("SHIPIT_TEST_DSN", dsn)
        run = CliRunner().invoke
        out = run(cli, ["ab", "set-weights", str(path), "a=70", "b=30"])
        assert out.exit_code == 0 and "decision #2 set-weights" in out.output, out.output
        js = json.loads(run(cli, ["ab", "status", str(path), "--json"]).output)
    assert applied < cfg.reload_s + 1.0  # one reload period, plus the polling above
    with connect(dsn).raw as c:
        n, streams = c.execute("SELECT COUNT(*), SUM(stream) FROM requests WHERE status = 200").fetchone()
        answers = c.execute("SELECT answer FROM payloads ORDER BY answer").fetchall()
    assert streams == 40 and n >= 80  # both routers wrote every answer into the one database
    assert len(answers) == n and answers[0] == ("x",) and answers[-1][0].startswith("x0 ")  # plain, then streamed
    assert js["weights"] == {"a": 70.0, "b": 30.0} and js["arms"]["a"]["n"] + js["arms"]["b"]["n"] == n
    assert [d["kind"] for d in js["decisions"]] == ["set-weights", "set-weights"]


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_two_replicas_reading_the_same_statistics_decide_once(backend, tmp_path, request):
    events = tmp_path / "ev.sqlite" if backend == "sqlite" else request.getfixturevalue("dsn")
    cfg = ab(events, policy={"min_samples": 100, "guardrails": {"max_error_rate": 0.3, "error_rate_margin": 0.3}})
    store = open_store(cfg.events)
    fill_mixed(store, [("a", 1000, 0.80, 100), ("b", 1000, 0.92, 100)], np.random.default_rng(1))
    one, two = connect(cfg.events), connect(cfg.events)
    s1, s2 = S.compute(one, cfg), S.compute(two, cfg)  # both replicas tick before either decides
    d1, d2 = policy.apply(one, cfg, s1), policy.apply(two, cfg, s2)
    assert d1["kind"] == "auto-promote" and d2 is None
    assert [d["kind"] for d in decisions(one, "e")] == ["auto-promote"]
    assert policy.apply(two, cfg, S.compute(two, cfg)) is None  # fresh statistics: already promoted


def test_two_auto_routers_promote_once(dsn):
    cfg = ab(dsn, reload_s=0.1, policy={"auto": True, "interval_s": 0.1, "min_samples": 100,
                                         "guardrails": {"max_error_rate": 0.3, "error_rate_margin": 0.3}})
    fill_mixed(open_store(dsn), [("a", 1000, 0.80, 100), ("b", 1000, 0.92, 100)], np.random.default_rng(2))
    with running(create_app(cfg)) as r1, running(create_app(cfg)) as r2:
        conn = connect(dsn)
        wait_for(lambda: decisions(conn, "e"), timeout=20, what="a policy decision")
        # Not a wait for a condition but an observation window: both keep running the policy every 0.1 s on the
        # same data; a second promotion would have 10 chances to appear in it.
        time.sleep(1.0)
        kinds = [d["kind"] for d in decisions(conn, "e")]
        arms = {chat(url, "someone").headers.get("x-shipit-arm") for url in (r1, r2)}
    assert kinds == ["auto-promote"] and arms == {"b"}


@pytest.mark.slow
def test_sigkill_of_a_router_on_postgres_loses_no_answered_event(dsn, tmp_path):
    answered = kill_under_load(tmp_path, {"events_env": "SHIPIT_TEST_DSN"}, env={"SHIPIT_TEST_DSN": dsn})
    with connect(dsn).raw as c:
        check_no_answer_lost(answered, {r[0] for r in c.execute("SELECT id FROM requests WHERE status = 200")})


@pytest.mark.slow
def test_database_going_away_gives_503_then_the_router_recovers():
    server = LocalPostgres(fsync=False).start()
    up = FakeUpstream("x")
    try:
        dsn = server.create_db("away")
        with running(up.app) as u, running(create_app(ab(dsn, u))) as url:
            assert chat(url, "u1").status_code == 200
            assert chat(url, "u2", stream=True).text.rstrip().endswith("[DONE]")
            server.stop()
            calls = len(up.calls)
            # The stream in flight when the router finds out: its row cannot be committed, so its client must not
            # get the closing [DONE] (the router holds it back until the commit), only a broken stream.
            cut = b""
            with contextlib.suppress(httpx.HTTPError):
                with httpx.stream("POST", f"{url}/v1/chat/completions", json={"messages": [], "stream": True}) as r:
                    for chunk in r.iter_raw():
                        cut += chunk
            assert not cut.rstrip().endswith(b"[DONE]")
            gone = [chat(url, f"v{i}", stream=bool(i % 2)) for i in range(6)]
            assert [r.status_code for r in gone] == [503] * 6
            err = gone[-1].json()["error"]
            assert err["code"] == "events_unavailable" and "event store is unavailable" in err["message"]
            assert len(up.calls) <= calls + 1  # only the request that found out went upstream; then 503 at once
            fb = httpx.post(f"{url}/v1/feedback", json={"request_id": "x", "score": 1})
            assert fb.status_code == 503
            health = httpx.get(f"{url}/health")
            assert health.status_code == 503 and health.json()["events"] == "unavailable"
            server.start()
            wait_for(lambda: httpx.get(f"{url}/health").status_code == 200, timeout=15, what="the router to reconnect")
            back = chat(url, "w1")
            assert back.status_code == 200
            assert chat(url, "w2", stream=True).text.rstrip().endswith("[DONE]")
        with connect(dsn).raw as c:
            rows = c.execute('SELECT "user", status FROM requests ORDER BY rowid').fetchall()
        assert rows == [("u1", 200), ("u2", 200), ("w1", 200), ("w2", 200)]  # nothing from the outage
        assert back.headers["x-shipit-request-id"]
    finally:
        server.destroy()


def test_copy_an_experiment_from_sqlite_to_postgres(dsn, tmp_path):
    cfg = ab(tmp_path / "ev.sqlite", policy={"min_samples": 50, "primary_metric": "feedback"})
    store = EventStore(cfg.events)
    rng = np.random.default_rng(4)
    first = record_decision(store.conn, "e", "set-weights", {"a": 60, "b": 40}, "test")
    for i in range(400):
        arm = "ab"[int(rng.random() < 0.4)]
        store.record({"id": f"r{i}", "experiment": "e", "arm": arm, "forced": 0, "shadow": 0,
                      "epoch": 0 if i < 100 else first, "status": 200, "latency_ms": 10 + rng.random(),
                      "ttft_ms": 2.0, "user": f"u{i}"})
        store.feedback(f"r{i}", float(rng.random() < 0.5))
        if i % 3 == 0:
            store.feedback(f"r{i}", 1.0)  # the later score counts: arrival order must survive the copy
    store.payload("r1", [{"role": "user", "content": "hi"}], "hello")
    pg_conn = connect(dsn)
    record_decision(pg_conn, "other", "set-weights", {"x": 1}, "another experiment's decision")  # ids shift
    run = CliRunner().invoke
    out = run(cli, ["ab", "copy", "--from", str(cfg.events), "--to", dsn])
    assert out.exit_code == 0, out.output
    assert "copied experiment 'e': 1 decisions, 400 requests, 534 feedback, 1 payloads" in out.output
    before = S.compute(store.conn, cfg)
    after = S.compute(pg_conn, ab(dsn, policy={"min_samples": 50, "primary_metric": "feedback"}))
    assert after["epoch"] == first + 1 and before["epoch"] == first  # renumbered, and the requests with it:
    assert json.dumps({**after, "epoch": 0}, default=float) == json.dumps({**before, "epoch": 0}, default=float)
    again = run(cli, ["ab", "copy", "--from", str(cfg.events), "--to", dsn])
    assert again.exit_code == 2 and "already holds experiment 'e'" in again.output
    back = run(cli, ["ab", "copy", "--from", dsn, "--to", str(tmp_path / "back.sqlite"), "--experiment", "e"])
    assert back.exit_code == 0, back.output  # and back, for `shipit data from-ab`, which reads SQLite
    conn = connect(tmp_path / "back.sqlite")
    assert json.dumps({**S.compute(conn, cfg), "epoch": 0}, default=float) == json.dumps({**before, "epoch": 0},
                                                                                          default=float)


def test_a_client_that_leaves_mid_stream_is_recorded_as_499_with_its_text(dsn):
    up = FakeUpstream("x", mode="slow")  # 50 chunks, 0.1 s apart
    with running(up.app) as u, running(create_app(ab(dsn, u, record_text=True))) as url:
        with httpx.stream("POST", f"{url}/v1/chat/completions", json={"messages": [], "stream": True}) as r:
            next(r.iter_bytes())
        assert up.cancelled.wait(3), "the upstream kept generating after the client left"
        conn = connect(dsn)
        # The commit is a round trip awaited after the client left: it must survive the request's cancellation.
        got = wait_for(lambda: conn.execute("SELECT r.status, p.answer FROM requests r JOIN payloads p "
                                            "ON p.request_id = r.id").fetchall(), what="the row and its text")
    assert len(got) == 1 and got[0][0] == 499 and got[0][1].startswith("x0")
