"""Router reliability and security against small real upstream servers that fail, hang, or die mid-stream."""

from __future__ import annotations

import json
import sqlite3
import time

import httpx
import pytest

from shipit.serve.auth import hash_key
from shipit.serve.config import ABConfig
from shipit.serve.app import create_app
from tests.fake_upstream import FakeUpstream, running, wait_for

KEY = "client-key-1"
UPSTREAM_KEY = "upstream-secret-xyz"
CHAT = {"model": "exp", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}


def make_cfg(tmp_path, arms: dict[str, list[str]], **extra) -> ABConfig:
    data = {"experiment": "exp", "arms": [{"name": n, "weight": 1, "upstreams": u, "upstream_api_key_env": "UP_KEY"}
                                          for n, u in arms.items()],
            "events": str(tmp_path / "events.sqlite"), "auth": {"key_hashes": [hash_key(KEY)]},
            "limits": {"read_timeout_s": 0.5, "connect_timeout_s": 0.5, "retries": 1},
            "health": {"interval_s": 0.1, "unhealthy_after": 1, "breaker_failures": 2, "breaker_reset_s": 0.5}}
    for k, v in extra.items():
        data[k] = {**data.get(k, {}), **v} if isinstance(v, dict) else v
    return ABConfig.model_validate(data)


def client(url: str) -> httpx.Client:
    return httpx.Client(base_url=url, headers={"authorization": f"Bearer {KEY}"}, timeout=10)


def rows(cfg) -> list[tuple]:
    with sqlite3.connect(cfg.events) as c:
        return c.execute("SELECT arm, status, replica, error, stream FROM requests ORDER BY rowid").fetchall()


@pytest.fixture
def two_replicas(monkeypatch):
    monkeypatch.setenv("UP_KEY", UPSTREAM_KEY)
    good, bad = FakeUpstream("good"), FakeUpstream("bad")
    with running(good.app) as g, running(bad.app) as b:
        yield good, bad, g, b


def test_retry_on_5xx_and_timeout_goes_to_other_replica(tmp_path, two_replicas):
    good, bad, g, b = two_replicas
    cfg = make_cfg(tmp_path, {"a": [b, g]}, health={"interval_s": 60})
    with running(create_app(cfg)) as url, client(url) as c:
        for mode in ("500", "hang"):
            bad.mode = mode
            for _ in range(2):
                r = c.post("/v1/chat/completions", json=CHAT, headers={"x-user-id": "u1"})
                assert r.status_code == 200 and r.json()["choices"][0]["message"]["content"] == "good"
                assert r.headers["x-shipit-arm"] == "a"
        # Four failures on `bad` (2 x 500, then timeouts): its breaker opened, so later requests skip it at once.
        assert all(call["headers"]["authorization"] == f"Bearer {UPSTREAM_KEY}" for call in good.calls)
        t0 = time.monotonic()
        assert c.post("/v1/chat/completions", json=CHAT).status_code == 200
        assert time.monotonic() - t0 < 0.4  # no 0.5 s timeout paid: the open circuit skipped the hanging replica
        assert "upstream-secret" not in r.text and all("secret" not in v for v in r.headers.values())
    assert [x[1] for x in rows(cfg)] == [200] * 5 and {x[2] for x in rows(cfg)} == {g}


def test_4xx_is_passed_through_and_never_trips_the_breaker(tmp_path, two_replicas):
    good, bad, g, b = two_replicas
    good.mode = "400"
    cfg = make_cfg(tmp_path, {"a": [g]}, health={"interval_s": 60})
    with running(create_app(cfg)) as url, client(url) as c:
        codes = [c.post("/v1/chat/completions", json=CHAT).status_code for _ in range(5)]
        good.mode = "ok"
        assert codes == [400] * 5 and c.post("/v1/chat/completions", json=CHAT).status_code == 200
    assert len(good.calls) == 6  # every request reached the replica: no retry of a 4xx, no open circuit


def test_a_replica_refusing_the_routers_key_is_an_arm_error_not_a_client_error(tmp_path, two_replicas):
    from shipit.serve import stats as S

    good, bad, g, b = two_replicas
    bad.mode = "401"  # the replica was given another key than the arm's upstream_api_key_env
    cfg = make_cfg(tmp_path, {"a": [b, g]}, health={"interval_s": 60})
    with running(create_app(cfg)) as url, client(url) as c:
        r = c.post("/v1/chat/completions", json=CHAT)
        assert r.status_code == 200 and r.json()["choices"][0]["message"]["content"] == "good"  # moved on
        good.mode = "401"
        r = c.post("/v1/chat/completions", json=CHAT)
    assert r.status_code == 502 and r.json()["error"]["code"] == "upstream_auth"
    assert "refused the router's credentials (401)" in r.json()["error"]["message"]
    assert "upstream_api_key_env" in r.json()["error"]["message"]
    with sqlite3.connect(cfg.events) as conn:
        arm = S.summarize(S.load(conn, "exp"), "a")
    assert arm["n"] == 2 and arm["error_rate"] == 0.5  # the guardrail sees the failure (a passed-through 401: 0.0)


def test_all_replicas_failing_gives_openai_error_and_breaker_trips(tmp_path, two_replicas):
    good, bad, g, b = two_replicas
    bad.mode = "500"
    cfg = make_cfg(tmp_path, {"a": [b]}, health={"interval_s": 60})
    with running(create_app(cfg)) as url, client(url) as c:
        r1, r2, r3 = (c.post("/v1/chat/completions", json=CHAT) for _ in range(3))
    assert r1.status_code == 502 and set(r1.json()["error"]) == {"message", "type", "param", "code"}
    assert r1.json()["error"]["code"] == "upstream_error" and r1.headers["x-shipit-arm"] == "a"
    assert r3.status_code == 503 and r3.json()["error"]["code"] == "no_healthy_upstream"
    assert len(bad.calls) == 2  # breaker_failures = 2: the third request never reached the replica


def test_health_checks_eject_and_readmit(tmp_path, two_replicas):
    good, bad, g, b = two_replicas
    bad.mode = "down"
    cfg = make_cfg(tmp_path, {"a": [b, g]})
    app = create_app(cfg)
    pool = app.state.router.pools["a"]
    with running(app) as url, client(url) as c:
        wait_for(lambda: {r.url: r.healthy for r in pool.replicas} == {b: False, g: True}, what="bad ejected")
        answers = [c.post("/v1/chat/completions", json=CHAT).json()["choices"][0]["message"]["content"]
                   for _ in range(3)]
        assert answers == ["good"] * 3  # the ejected replica gets nothing
        bad.mode = "ok"
        wait_for(lambda: all(r.healthy for r in pool.replicas), what="bad readmitted")
        answers = [c.post("/v1/chat/completions", json=CHAT).json()["choices"][0]["message"]["content"]
                   for _ in range(3)]
        assert set(answers) == {"good", "bad"}  # readmitted: it takes its turn again
        metrics = c.get("/metrics").text
    assert f'shipit_replica_healthy{{arm="a",experiment="exp",replica="{b}"}} 1.0' in metrics
    assert 'shipit_requests_total{arm="a",experiment="exp",status="200"} 6.0' in metrics
    assert 'shipit_tokens_total{arm="a",experiment="exp",kind="completion"} 6.0' in metrics
    assert 'shipit_request_latency_seconds_count{arm="a",experiment="exp"} 6.0' in metrics


def test_stream_passes_through_and_mid_stream_death_is_not_retried(tmp_path, two_replicas):
    good, bad, g, b = two_replicas
    cfg = make_cfg(tmp_path, {"a": [g]}, health={"interval_s": 60})
    with running(create_app(cfg)) as url, client(url) as c:
        with c.stream("POST", "/v1/chat/completions", json={**CHAT, "stream": True}) as r:
            assert r.headers["content-type"].startswith("text/event-stream") and r.headers["x-shipit-arm"] == "a"
            events = [e for e in r.iter_text() for e in [e] if e]
        body = "".join(events)
        assert body.count("data: {") == 4 and body.rstrip().endswith("data: [DONE]")
        good.mode = "die"
        with c.stream("POST", "/v1/chat/completions", json={**CHAT, "stream": True}) as r:
            body = "".join(r.iter_text())
    assert body.count('"content"') == 2 and '"code": "upstream_died"' in body and "[DONE]" not in body
    # the event the upstream never finished is not passed on: every event the client got parses, the error's too
    events = [e for e in body.split("\n\n") if e]
    assert all(e.startswith("data: ") and json.loads(e[6:]) for e in events) and "error" in json.loads(events[-1][6:])
    assert len(good.calls) == 2  # the stream had started: no retry
    got = rows(cfg)
    assert [x[1] for x in got] == [200, 502] and "mid-stream" in got[1][3]


def test_a_streams_tokens_are_the_ones_its_upstream_counted(tmp_path, two_replicas):
    """vLLM puts several tokens in one event when its reader falls behind (CI saw all 12 of an answer in one): the
    row holds the usage the router asked vLLM for, which the client gets only when it asked for it too."""
    good, bad, g, b = two_replicas
    good.mode = "merged"  # four events of three tokens each, each event cut across two network writes
    cfg = make_cfg(tmp_path, {"a": [g]}, health={"interval_s": 60})
    with running(create_app(cfg)) as url, client(url) as c:
        plain = c.post("/v1/chat/completions", json={**CHAT, "stream": True}).text
        options = {"include_usage": True, "continuous_usage_stats": False}
        asked = c.post("/v1/completions", json={**CHAT, "stream": True, "stream_options": options}).text
    events = [json.loads(e[6:]) for e in plain.split("\n\n") if e.startswith("data: {")]
    assert [e["choices"][0]["delta"]["content"] for e in events] == [f"good{i} " * 3 for i in range(4)]
    assert '"usage"' not in plain and plain.endswith("data: [DONE]\n\n")
    assert asked.count("data: {") == 5 and '"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":12' in asked
    assert [call["body"]["stream_options"] for call in good.calls] == [
        {"include_usage": True}, {"include_usage": True, "continuous_usage_stats": False}]
    with sqlite3.connect(cfg.events) as conn:
        assert conn.execute("SELECT endpoint, prompt_tokens, completion_tokens FROM requests ORDER BY rowid"
                            ).fetchall() == [("/v1/chat/completions", 3, 12), ("/v1/completions", 3, 12)]


def test_stream_tally_reassembles_events_cut_anywhere():
    from shipit.serve.answers import StreamTally

    content = [b'data: {"choices":[{"index":0,"delta":{"content":"ab"}}]}\n\n',
               b'data: {"choices":[{"index":0,"delta":{"content":"cd"}}]}\n\n']
    usage = b'data: {"choices":[],"usage":{"prompt_tokens":2,"completion_tokens":5,"total_tokens":7}}\n\n'
    done = b"data: [DONE]\n\n"

    def crlf(b: bytes) -> bytes:  # sse-starlette's framing (and JSON with spaces)
        return b.replace(b"\n", b"\r\n").replace(b'"choices":[]', b'"choices": []')

    for frame in (lambda b: b, crlf):
        stream, kept = frame(b"".join(content) + usage + done), frame(b"".join(content) + done)
        for cut in range(len(stream) + 1):
            for drop, want in ((True, kept), (False, stream)):
                tally = StreamTally(drop_usage=drop)
                assert tally.feed(stream[:cut]) + tally.feed(stream[cut:]) + tally.flush() == want, (cut, drop)
                assert tally.tokens == {"prompt_tokens": 2, "completion_tokens": 5}
        first, tally = frame(content[0]), StreamTally(drop_usage=True)
        assert tally.feed(first[:-1]) == b"" and tally.feed(first[-1:]) == first  # passed on once whole
    tally = StreamTally(drop_usage=True)  # an upstream that sends no usage: one token per content event at least
    assert tally.feed(b"".join(content) + b"data: [DONE]") + tally.flush() == b"".join(content) + b"data: [DONE]"
    assert tally.tokens == {"completion_tokens": 2}  # no prompt tokens: nothing counted them


def test_client_disconnect_cancels_upstream(tmp_path, two_replicas):
    good, bad, g, b = two_replicas
    good.mode = "slow"
    cfg = make_cfg(tmp_path, {"a": [g]}, health={"interval_s": 60})
    with running(create_app(cfg)) as url, client(url) as c:
        with c.stream("POST", "/v1/chat/completions", json={**CHAT, "stream": True}) as r:
            next(r.iter_bytes())
        assert good.cancelled.wait(3), "the upstream kept generating after the client left"
        wait_for(lambda: rows(cfg), what="the request's row")
    assert rows(cfg)[0][1] == 499


def test_auth_body_limit_and_queue(tmp_path, two_replicas):
    good, bad, g, b = two_replicas
    good.mode = "slow"
    cfg = make_cfg(tmp_path, {"a": [g]}, health={"interval_s": 60},
                   limits={"max_body_bytes": 2048, "max_concurrency": 1, "max_queue": 0})
    with running(create_app(cfg)) as url, client(url) as c:
        assert httpx.post(f"{url}/v1/chat/completions", json=CHAT).status_code == 401
        bad_key = httpx.post(f"{url}/v1/models", headers={"authorization": "Bearer nope"})
        assert bad_key.status_code == 401 and bad_key.json()["error"]["code"] == "invalid_api_key"  # auth first
        assert httpx.get(f"{url}/v1/models", headers={"authorization": "Bearer nope"}).status_code == 401
        assert httpx.get(f"{url}/health").status_code == 200 and httpx.get(f"{url}/metrics").status_code == 200
        assert [m["id"] for m in c.get("/v1/models").json()["data"]] == ["exp", "a"]
        big = {**CHAT, "messages": [{"role": "user", "content": "x" * 4000}]}
        r = c.post("/v1/chat/completions", json=big)
        assert r.status_code == 413 and r.json()["error"]["code"] == "request_too_large"
        with c.stream("POST", "/v1/chat/completions", json={**CHAT, "stream": True}) as held:
            chunks = held.iter_bytes()  # kept referenced: a dropped iterator closes the connection
            next(chunks)
            r = c.post("/v1/chat/completions", json=CHAT)
            assert r.status_code == 429 and r.headers["retry-after"] == "1"
            assert r.json()["error"]["type"] == "rate_limit_error"


def test_forced_arm_shadow_and_feedback(tmp_path, two_replicas):
    good, bad, g, b = two_replicas
    cfg = make_cfg(tmp_path, {"a": [g], "s": [b]}, shadow={"arm": "s", "share": 1.0}, health={"interval_s": 60})
    with running(create_app(cfg)) as url, client(url) as c:
        r = c.post("/v1/chat/completions", json=CHAT, headers={"x-shipit-arm": "a"})
        assert r.headers["x-shipit-arm"] == "a"
        r = c.post("/v1/chat/completions", json={**CHAT, "user": "alice"})
        assert r.json()["choices"][0]["message"]["content"] == "good"  # the shadow's answer is discarded
        rid = r.headers["x-shipit-request-id"]
        assert c.post("/v1/feedback", json={"request_id": rid, "thumbs": "up"}).json()["score"] == 1.0
        assert c.post("/v1/feedback", json={"request_id": "nope", "score": 1}).status_code == 404
        assert c.post("/v1/feedback", json={"request_id": rid, "score": 3}).status_code == 400
        assert c.post("/v1/chat/completions", json=CHAT, headers={"x-shipit-arm": "zz"}).status_code == 400
        # A stream's shadow copy is a plain request: without the stream's options (vLLM refuses them there)
        streamed = {**CHAT, "user": "bob", "stream": True, "stream_options": {"include_usage": True}}
        assert c.post("/v1/chat/completions", json=streamed).text.endswith("data: [DONE]\n\n")
        wait_for(lambda: len([x for x in rows(cfg) if x[0] == "s"]) == 2, what="the shadows' rows")
    # one copy each: forced requests are not shadowed
    assert [(call["body"]["model"], call["body"]["stream"]) for call in bad.calls] == [("s", False)] * 2
    got = rows(cfg)
    with sqlite3.connect(cfg.events) as conn:
        shadow = conn.execute("SELECT arm, status, user FROM requests WHERE shadow = 1 ORDER BY rowid").fetchall()
        assert conn.execute("SELECT score FROM feedback WHERE request_id = ?", (rid,)).fetchall() == [(1.0,)]
    assert shadow == [("s", 200, "alice"), ("s", 200, "bob")] and len(got) == 5


def test_least_loaded_replica_while_a_stream_is_open(tmp_path, two_replicas):
    good, bad, g, b = two_replicas
    good.mode = bad.mode = "slow"  # streams trickle for seconds; plain requests answer at once
    cfg = make_cfg(tmp_path, {"a": [g, b]}, health={"interval_s": 60})
    app = create_app(cfg)
    pool = app.state.router.pools["a"]
    with running(app) as url, client(url) as c:
        with c.stream("POST", "/v1/chat/completions", json={**CHAT, "stream": True}) as r:
            chunks = r.iter_bytes()  # held: a dropped iterator would close the stream
            next(chunks)
            busy = [rep.url for rep in pool.replicas if rep.in_flight == 1]
            assert len(busy) == 1 and sum(rep.in_flight for rep in pool.replicas) == 1
            for _ in range(4):  # every plain request goes to the idle replica, none to the one streaming
                assert c.post("/v1/chat/completions", json=CHAT).status_code == 200
        # released when the stream ended (the client left)
        wait_for(lambda: [rep.in_flight for rep in pool.replicas] == [0, 0], what="in_flight back to 0")
    replicas = [x[2] for x in rows(cfg) if not x[4]]
    assert len(replicas) == 4 and busy[0] not in replicas


def test_in_flight_and_queued_gauges_follow_the_load(tmp_path, two_replicas):
    good, bad, g, b = two_replicas
    good.mode = "slow"
    cfg = make_cfg(tmp_path, {"a": [g]}, health={"interval_s": 60},
                   limits={"max_concurrency": 1, "max_queue": 4, "queue_timeout_s": 5})
    app = create_app(cfg)
    gauge = lambda text, name: float(next(x.split()[-1] for x in text.splitlines()  # noqa: E731
                                          if x.startswith(f'{name}{{experiment="exp"}}')))
    with running(app) as url, client(url) as c, client(url) as c2:
        with c.stream("POST", "/v1/chat/completions", json={**CHAT, "stream": True}) as held:
            chunks = held.iter_bytes()
            next(chunks)
            import threading

            waiter = threading.Thread(target=lambda: c2.post("/v1/chat/completions", json=CHAT))
            waiter.start()
            wait_for(lambda: app.state.router.waiting == 1, what="a queued request")
            text = c.get("/metrics").text
            assert gauge(text, "shipit_in_flight") == 1.0 and gauge(text, "shipit_queued") == 1.0
        waiter.join(10)
        wait_for(lambda: app.state.router.active == 0, what="slots released")
        text = c.get("/metrics").text
    assert gauge(text, "shipit_in_flight") == 0.0 and gauge(text, "shipit_queued") == 0.0


def test_abandoned_half_open_trial_does_not_strand_the_replica(tmp_path, two_replicas):
    good, bad, g, b = two_replicas
    bad.mode = "hang"
    cfg = make_cfg(tmp_path, {"a": [b]}, health={"interval_s": 60, "breaker_failures": 1, "breaker_reset_s": 0.2},
                   limits={"retries": 0})
    app = create_app(cfg)
    breaker = app.state.router.pools["a"].replicas[0].breaker
    with running(app) as url, client(url) as c:
        assert c.post("/v1/chat/completions", json=CHAT).status_code == 504  # read timeout: the circuit opens
        wait_for(lambda: breaker.state == "half-open", what="half-open")
        with pytest.raises(httpx.ReadTimeout):  # the trial goes to the hanging replica; the client gives up
            c.post("/v1/chat/completions", json=CHAT, timeout=0.2)
        wait_for(lambda: [x[1] for x in rows(cfg)] == [504, 499], what="the abandoned trial's row")
        bad.mode = "ok"
        r = c.post("/v1/chat/completions", json=CHAT)
    assert r.status_code == 200 and r.json()["choices"][0]["message"]["content"] == "bad"
    assert breaker.state == "closed"
