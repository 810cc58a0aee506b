"""The router in front of two real vLLM CPU servers (the tiny base and a perturbed copy), driven by the openai client."""

from __future__ import annotations

import os
import re
import sqlite3

import pytest

from shipit.models.vllm_server import free_port
from tests.serving import serving

pytestmark = pytest.mark.vllm
KEY = "router-test-key"
UPSTREAM_KEY = "upstream-only-key"


@pytest.fixture(scope="module")
def ab(tiny_base, perturbed, vllm_python, tmp_path_factory):
    """`shipit serve --config` as a user runs it: both arms on vLLM and the router, stopped together by SIGTERM."""
    tmp = tmp_path_factory.mktemp("ab")
    port = free_port()
    config = {
        "experiment": "tiny-ab", "port": port, "events": "events.sqlite",
        "arms": [{"name": "base", "weight": 50, "model": str(tiny_base), "upstream_api_key_env": "UPSTREAM_KEY"},
                 {"name": "perturbed", "weight": 50, "model": str(perturbed), "upstream_api_key_env": "UPSTREAM_KEY"}]}
    with serving(config, tmp, vllm_python, env={"SHIPIT_API_KEYS": KEY, "UPSTREAM_KEY": UPSTREAM_KEY}) as running:
        yield running


def test_chat_completions_and_streaming_through_the_router(ab):
    from openai import AuthenticationError, OpenAI

    cfg, url, upstreams = ab
    client = OpenAI(base_url=f"{url}/v1", api_key=KEY, max_retries=0)
    assert [m.id for m in client.models.list().data] == ["tiny-ab", "base", "perturbed"]
    prompt = [{"role": "user", "content": "Tell me about the river."}]

    # Each arm through the router answers exactly as its vLLM server does directly (greedy decoding).
    texts, tokens = {}, {}
    for arm in ("base", "perturbed"):
        raw = client.chat.completions.with_raw_response.create(
            model="tiny-ab", messages=prompt, max_tokens=12, temperature=0, extra_headers={"X-Shipit-Arm": arm})
        assert raw.headers["x-shipit-arm"] == arm
        routed = raw.parse()
        direct = OpenAI(base_url=f"{upstreams[arm]}/v1", api_key=UPSTREAM_KEY).chat.completions.create(
            model=arm, messages=prompt, max_tokens=12, temperature=0)
        assert routed.choices[0].message.content == direct.choices[0].message.content
        assert routed.usage.completion_tokens == direct.usage.completion_tokens > 0
        texts[arm], tokens[arm] = routed.choices[0].message.content, routed.usage
    assert texts["base"] != texts["perturbed"]

    # Sticky assignment by the `user` field: the same user gets the same arm each time.
    arms = {u: {client.chat.completions.with_raw_response.create(
        model="tiny-ab", messages=prompt, max_tokens=2, user=u).headers["x-shipit-arm"] for _ in range(3)}
        for u in ("ann", "bob", "cy", "dee", "eve", "fay")}
    assert all(len(v) == 1 for v in arms.values()) and {a for v in arms.values() for a in v} == {"base", "perturbed"}

    comp = client.completions.with_raw_response.create(model="tiny-ab", prompt="The river", max_tokens=8,
                                                       temperature=0, extra_headers={"X-Shipit-Arm": "perturbed"})
    assert comp.headers["x-shipit-arm"] == "perturbed" and comp.parse().usage.completion_tokens == 8

    # A stream gives the same text; vLLM may put several tokens in one event (it does when the machine is busy), so
    # the router counts them from the usage it asks vLLM for, and passes that on only to a client that asked too.
    chunks = list(client.chat.completions.create(model="tiny-ab", messages=prompt, max_tokens=12, temperature=0,
                                                 stream=True, extra_headers={"X-Shipit-Arm": "base"}))
    assert all(c.choices and c.usage is None for c in chunks)
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == texts["base"]
    chunks = list(client.chat.completions.create(model="tiny-ab", messages=prompt, max_tokens=12, temperature=0,
                                                 stream=True, stream_options={"include_usage": True},
                                                 extra_headers={"X-Shipit-Arm": "base"}))
    assert not chunks[-1].choices and chunks[-1].usage.completion_tokens == tokens["base"].completion_tokens

    with pytest.raises(AuthenticationError):
        OpenAI(base_url=f"{url}/v1", api_key=UPSTREAM_KEY, max_retries=0).models.list()

    with sqlite3.connect(cfg.events) as conn:
        got = conn.execute("SELECT arm, status, endpoint, stream, ttft_ms, completion_tokens, latency_ms, "
                           "prompt_tokens FROM requests ORDER BY rowid").fetchall()
    assert len(got) == 2 + 18 + 1 + 2 and all(r[1] == 200 for r in got), [r[:4] for r in got if r[1] != 200]
    assert got[-3][2] == "/v1/completions" and got[-3][5] == 8
    for row in got[-2:]:
        assert row[3] == 1 and 0 < row[4] <= row[6]
        assert (row[7], row[5]) == (tokens["base"].prompt_tokens, tokens["base"].completion_tokens)


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="one core: nothing to split")
def test_each_arms_engine_runs_on_cores_of_its_own(ab):
    """vLLM's automatic binding put both arms' engines on core 0 (one arm then took 5x longer per token in the demo's
    experiment); shipit gives each server its own share, as each server's log reports."""
    cfg, _, _ = ab
    logs = sorted((cfg.events.parent / "vllm-logs").glob("vllm-*.log"))
    cores = [re.search(r"local_rank=0, core ids=\[([\d, ]+)\]", p.read_text()).group(1) for p in logs]
    assert len(cores) == 2 and not set(cores[0].split(", ")) & set(cores[1].split(", ")), cores


def test_split_cores(monkeypatch):
    from shipit.models.vllm_server import split_cores

    monkeypatch.delenv("VLLM_CPU_OMP_THREADS_BIND", raising=False)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3, 4})
    assert split_cores(2) == ["0,1", "2,3"] and split_cores(3) == ["0", "1", "2"]
    assert split_cores(1) == [None] and split_cores(6) == [None] * 6  # one server; more servers than cores
    monkeypatch.setenv("VLLM_CPU_OMP_THREADS_BIND", "0-4")  # the user's binding wins
    assert split_cores(2) == [None, None]
