"""The router in front of two real vLLM CPU servers (the tiny base and a perturbed copy), driven by the openai client."""

from __future__ import annotations

import shutil
import sqlite3

import pytest

from shipit.serve.config import ABConfig
from shipit.serve.launch import launch_arms
from shipit.serve.router import create_app
from tests.fake_upstream import running

pytestmark = pytest.mark.vllm
KEY = "router-test-key"


@pytest.fixture(scope="module")
def perturbed(tiny_base, tmp_path_factory):
    """A copy of the tiny base with noise added to every weight, so the two arms answer differently."""
    import torch
    from safetensors.torch import load_file, save_file

    dst = tmp_path_factory.mktemp("models") / "perturbed"
    shutil.copytree(tiny_base, dst)
    for f in dst.glob("*.safetensors"):
        gen = torch.Generator().manual_seed(0)
        tensors = {k: v + 3 * v.float().std() * torch.randn(v.shape, generator=gen).to(v.dtype)
                   for k, v in load_file(f).items()}
        save_file(tensors, f, metadata={"format": "pt"})
    return dst


@pytest.fixture(scope="module")
def ab(tiny_base, perturbed, vllm_python, tmp_path_factory):
    """Both arms launched with vLLM the way `shipit serve --config` does, and the router on a free port."""
    tmp = tmp_path_factory.mktemp("ab")
    cfg = ABConfig.model_validate({"experiment": "tiny-ab", "events": str(tmp / "events.sqlite"),
                                   "auth": {"key_hashes": []}, "arms": [
                                       {"name": "base", "weight": 50, "model": str(tiny_base)},
                                       {"name": "perturbed", "weight": 50, "model": str(perturbed)}]})
    import os

    os.environ["SHIPIT_API_KEYS"] = KEY
    servers = launch_arms(cfg, tmp / "logs", vllm_python)
    try:
        with running(create_app(cfg)) as url:
            yield cfg, url, servers
    finally:
        for s in servers:
            s.stop()
        os.environ.pop("SHIPIT_API_KEYS")


def test_chat_completions_and_streaming_through_the_router(ab):
    from openai import AuthenticationError, OpenAI

    cfg, url, servers = ab
    client = OpenAI(base_url=f"{url}/v1", api_key=KEY, max_retries=0)
    assert [m.id for m in client.models.list().data] == ["tiny-ab", "base", "perturbed"]
    prompt = [{"role": "user", "content": "Tell me about the river."}]

    # Each arm through the router answers exactly as its vLLM server does directly (greedy decoding).
    texts = {}
    for arm, server in zip(("base", "perturbed"), servers):
        raw = client.chat.completions.with_raw_response.create(
            model="tiny-ab", messages=prompt, max_tokens=12, temperature=0, extra_headers={"X-Shipit-Arm": arm})
        assert raw.headers["x-shipit-arm"] == arm
        routed = raw.parse()
        direct = OpenAI(base_url=server.base_url, api_key=server.api_key).chat.completions.create(
            model=arm, messages=prompt, max_tokens=12, temperature=0)
        assert routed.choices[0].message.content == direct.choices[0].message.content
        assert routed.usage.completion_tokens == direct.usage.completion_tokens > 0
        texts[arm] = routed.choices[0].message.content
    assert texts["base"] != texts["perturbed"]

    # Sticky assignment by the `user` field: the same user gets the same arm each time.
    arms = {u: {client.chat.completions.with_raw_response.create(
        model="tiny-ab", messages=prompt, max_tokens=2, user=u).headers["x-shipit-arm"] for _ in range(3)}
        for u in ("ann", "bob", "cy", "dee", "eve", "fay")}
    assert all(len(v) == 1 for v in arms.values()) and {a for v in arms.values() for a in v} == {"base", "perturbed"}

    comp = client.completions.with_raw_response.create(model="tiny-ab", prompt="The river", max_tokens=8,
                                                       temperature=0, extra_headers={"X-Shipit-Arm": "perturbed"})
    assert comp.headers["x-shipit-arm"] == "perturbed" and comp.parse().usage.completion_tokens == 8

    stream = client.chat.completions.create(model="tiny-ab", messages=prompt, max_tokens=12, temperature=0,
                                            stream=True, extra_headers={"X-Shipit-Arm": "base"})
    pieces = [c.choices[0].delta.content or "" for c in stream if c.choices]
    assert len([p for p in pieces if p]) >= 2 and "".join(pieces) == texts["base"]

    with pytest.raises(AuthenticationError):
        OpenAI(base_url=f"{url}/v1", api_key=servers[0].api_key, max_retries=0).models.list()

    with sqlite3.connect(cfg.events) as conn:
        got = conn.execute("SELECT arm, status, endpoint, stream, ttft_ms, completion_tokens, latency_ms "
                           "FROM requests ORDER BY rowid").fetchall()
    assert len(got) == 2 + 18 + 1 + 1 and all(r[1] == 200 for r in got)
    assert got[-2][2] == "/v1/completions" and got[-2][5] == 8
    last = got[-1]
    assert last[3] == 1 and 0 < last[4] <= last[6] and last[5] == len([p for p in pieces if p])
