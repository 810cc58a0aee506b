"""Closing the loop: payloads recorded by the router, preference pairs mined from them, and a simulated experiment."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time

import httpx
import pytest
from click.testing import CliRunner

from shipit.ship.from_ab import run as from_ab
from shipit.errors import UserError
from shipit.serve.auth import hash_key
from shipit.serve.config import ABConfig
from shipit.serve.events import EventStore
from shipit.serve.app import create_app
from tests.fake_upstream import FakeUpstream, running

KEY = "client-key-1"


def plant(store: EventStore, rid: str, arm: str, text: str, answer: str, scores=(), status: int = 200,
          messages=None) -> None:
    """One request through the event store's own API: its row, its payload, its feedback."""
    store.record({"id": rid, "ts": time.time(), "experiment": "exp", "arm": arm, "forced": 0, "shadow": 0,
                  "status": status, "latency_ms": 5.0})
    store.payload(rid, messages or [{"role": "system", "content": "Be brief."}, {"role": "user", "content": text}],
                  answer)
    for s in scores:
        store.feedback(rid, s)


@pytest.fixture
def events(tmp_path):
    path = tmp_path / "events.sqlite"
    store = EventStore(path)
    plant(store, "r1", "a", "What is 2+2?", "Answer: 4.", [1.0])
    plant(store, "r2", "a", "What is 2+2?", "Answer: 4.", [0.0, 1.0])  # a corrected rating: the latest counts
    plant(store, "r3", "b", "What is 2+2?", "five", [0.0])
    plant(store, "r4", "a", "  What   is 3+3? ", "six", [0.0])  # same prompt once whitespace is collapsed
    plant(store, "r5", "b", "What is 3+3?", "Answer: 6.", [1.0])
    plant(store, "r6", "a", "Name a colour.", "red", [0.6])  # gap 0.2: below a 0.5 margin
    plant(store, "r7", "b", "Name a colour.", "blue", [0.4])
    plant(store, "r8", "a", "Only a saw this.", "ok", [1.0])  # one arm only
    plant(store, "r9", "b", "Only a saw this.", "boom", [0.0], status=502)  # failed: not an answer
    plant(store, "r10", "b", "What is 2+2?", "four", [])  # unrated
    store.close()
    return path


def test_from_ab_pairs_the_better_rated_answer(events, tmp_path):
    out = tmp_path / "pairs"
    result = CliRunner().invoke(__import__("shipit.cli", fromlist=["cli"]).cli,
                                ["data", "from-ab", str(events), "--out", str(out), "--min-margin", "0.5"])
    assert result.exit_code == 0, result.output
    assert "2 pairs from 3 prompts answered by both arms, 9 requests" in result.output
    rows = [json.loads(x) for x in (out / "pairs.jsonl").read_text().splitlines()]
    by_prompt = {r["prompt"][0]["content"]: r for r in rows}
    assert set(by_prompt) == {"What is 2+2?", "What is 3+3?"}
    four, six = by_prompt["What is 2+2?"], by_prompt["What is 3+3?"]
    assert four["prompt"] == [{"role": "user", "content": "What is 2+2?"}]
    assert four["chosen"] == [{"role": "assistant", "content": "Answer: 4."}]
    assert four["rejected"] == [{"role": "assistant", "content": "five"}]
    assert four["arms"] == {"chosen": "a", "rejected": "b"} and four["scores"] == {"chosen": 1.0, "rejected": 0.0}
    assert four["request_ids"] == {"chosen": ["r1", "r2"], "rejected": ["r3"]}
    assert six["chosen"][0]["content"] == "Answer: 6." and six["arms"]["chosen"] == "b"
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["stage"] == "data/from-ab"
    assert manifest["metrics"] == {"requests": 9, "rated": 8, "prompts": 4, "prompts_both_arms": 3, "pairs": 2,
                                   "below_margin": 1, "same_answer": 0}
    # A smaller margin keeps the close call, oriented by the mean score.
    _, m = from_ab(events, tmp_path / "loose", min_margin=0.1)
    rows = [json.loads(x) for x in (tmp_path / "loose" / "pairs.jsonl").read_text().splitlines()]
    colour = next(r for r in rows if r["prompt"][0]["content"] == "Name a colour.")
    assert m["pairs"] == 3 and colour["chosen"][0]["content"] == "red" and colour["scores"]["rejected"] == 0.4


def test_from_ab_errors_are_one_line(tmp_path):
    bare = tmp_path / "bare.sqlite"
    EventStore(bare).close()
    with pytest.raises(UserError, match="no recorded prompts and answers; set `record_text: true`"):
        from_ab(bare, tmp_path / "o1")
    other = tmp_path / "other.sqlite"
    sqlite3.connect(other).execute("CREATE TABLE t (x)").connection.close()
    with pytest.raises(UserError, match="not an A/B event store"):
        from_ab(other, tmp_path / "o2")
    with pytest.raises(UserError, match="events file not found"):
        from_ab(tmp_path / "missing.sqlite", tmp_path / "o3")
    assert not (tmp_path / "o1").exists()


@pytest.mark.parametrize("record", [True, False])
def test_router_records_prompt_and_answer(tmp_path, record):
    fake = FakeUpstream("hello")
    with running(fake.app) as up:
        cfg = ABConfig.model_validate({"experiment": "exp", "arms": [{"name": "a", "weight": 1, "upstreams": [up]}],
                                       "events": str(tmp_path / "events.sqlite"), "record_text": record,
                                       "auth": {"key_hashes": [hash_key(KEY)]}})
        msgs = [{"role": "user", "content": "hi there"}]
        with running(create_app(cfg)) as url, \
                httpx.Client(base_url=url, headers={"authorization": f"Bearer {KEY}"}, timeout=10) as c:
            plain = c.post("/v1/chat/completions", json={"model": "exp", "messages": msgs})
            with c.stream("POST", "/v1/chat/completions", json={"model": "exp", "messages": msgs,
                                                                "stream": True}) as s:
                body = b"".join(s.iter_bytes())
            comp = c.post("/v1/completions", json={"model": "exp", "prompt": "Once"})
    assert plain.status_code == comp.status_code == 200 and b"hello3" in body
    ids = [plain.headers["x-shipit-request-id"], s.headers["x-shipit-request-id"], comp.headers["x-shipit-request-id"]]
    with sqlite3.connect(cfg.events) as conn:
        got = {r[0]: (json.loads(r[1]), r[2]) for r in conn.execute("SELECT request_id, prompt, answer FROM payloads")}
        assert conn.execute("SELECT count(*) FROM requests").fetchone()[0] == 3
    if not record:
        assert got == {}
        return
    assert got == {ids[0]: (msgs, "hello"), ids[1]: (msgs, "hello0 hello1 hello2 hello3 "), ids[2]: ("Once", "hello")}


def test_experiment_config_names_the_judges(tmp_path):
    from shipit.config import load_config
    from shipit.ship.experiment import ExperimentConfig

    path = tmp_path / "sim.yaml"
    path.write_text("arms: {a: m1, b: m2}\njudge: rule\noutput: out\n")
    with pytest.raises(UserError, match="unknown judge 'rule'; judges: rules"):
        load_config(path, ExperimentConfig)
    path.write_text("arms: {a: m1, b: m2}\ncontrol: c\noutput: out\n")
    with pytest.raises(UserError, match="'c' is not an arm; arms: a, b"):
        load_config(path, ExperimentConfig)


def coin_judge(item: dict, answer: str, conventions=None) -> float:
    """A deterministic coin per answer text: different answers tend to get different thumbs."""
    return float(hashlib.sha256(answer.encode()).digest()[0] % 2)


@pytest.mark.vllm
def test_simulated_experiment_end_to_end(tiny_base, perturbed, vllm_python, tmp_path, monkeypatch):
    from shipit.ship.experiment import JUDGES, ExperimentConfig, run_experiment

    monkeypatch.setitem(JUDGES, "coin", coin_judge)
    cfg = ExperimentConfig(arms={"base": tiny_base, "perturbed": perturbed}, users=20, requests_per_user=2,
                           prompt_pool=8, judge="coin", max_tokens=8, concurrency=4, vllm_python=vllm_python,
                           output=tmp_path / "exp")
    t0 = time.time()
    out, summary = run_experiment(cfg)
    print(f"experiment wall time {time.time() - t0:.1f}s")
    saved = json.loads((out / "experiment.json").read_text())
    assert saved["decision"]["kind"] in ("keep", "auto-promote", "auto-rollback") and saved["decision"]["reason"]
    arms = saved["arms"]
    assert saved["requests_sent"] == 40 and saved["errors"] == 0
    assert arms["base"]["n"] + arms["perturbed"]["n"] == saved["answered"] == 40
    assert saved["feedback_posted"] == 40 and all(a["feedback_rate"] == 1.0 for a in arms.values())
    assert min(a["n"] for a in arms.values()) > 0 and saved["srm"]["p"] > 0.001 and not saved["srm"]["flag"]
    assert all(a["latency_p50_ms"] <= a["latency_p95_ms"] for a in arms.values())
    assert set(saved["tests"]["perturbed"]) == {"msprt", "bayes", "guardrails"}
    with sqlite3.connect(out / "events.sqlite") as conn:
        assert conn.execute("SELECT count(*) FROM payloads").fetchone()[0] == 40
        assert conn.execute("SELECT count(DISTINCT request_id) FROM feedback").fetchone()[0] == 40
    rows = [json.loads(x) for x in (out / "pairs.jsonl").read_text().splitlines()]
    assert len(rows) == saved["pairs"] == saved["pair_metrics"]["pairs"] >= 1
    for r in rows:
        assert r["prompt"][-1]["role"] == "user" and r["chosen"][0]["role"] == r["rejected"][0]["role"] == "assistant"
        assert r["chosen"] != r["rejected"] and r["scores"]["chosen"] - r["scores"]["rejected"] >= cfg.min_margin
        assert {r["arms"]["chosen"], r["arms"]["rejected"]} == {"base", "perturbed"}
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["stage"] == "serve/experiment" and manifest["metrics"]["requests"] == 40
    assert str(tiny_base.resolve()) in manifest["parents"]
    assert "SRM chi2" in (out / "status.txt").read_text()
