"""The real-shaped model through every stage, as a user runs them: SmolLM2 cut to 2 layers (its BPE tokenizer with no
pad token, its ChatML template without generation markers, GQA 9/3, tied embeddings) -> LoRA SFT with answer-only
loss -> DPO -> task arithmetic of two LoRA specialists -> w4a16 and w8a8 -> vLLM behind the A/B router."""

from __future__ import annotations

import json

import pytest
import yaml
from click.testing import CliRunner
from safetensors import safe_open

from shipit.demo.world import DATA_DIR
from shipit.models.load import dir_size_mb
from shipit.models.vllm_server import free_port
from shipit.registry import read_manifest
from tests.serving import serving

pytestmark = pytest.mark.slow
LORA = {"r": 8, "alpha": 16, "dropout": 0.0}
TRAINER = {"max_steps": 6, "per_device_train_batch_size": 4, "max_length": 96, "learning_rate": 2e-3,
           "warmup_steps": 0, "logging_steps": 1, "save_steps": 100}


def shipit(*args: str) -> str:
    from shipit.cli import cli

    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def train(tmp, stage: str, name: str, config: dict):
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump({**config, "output": str(tmp / name)}))
    shipit("train", stage, str(path))
    return tmp / name, read_manifest(tmp / name)


def tensor(model_dir, name: str):
    with safe_open(str(model_dir / "model.safetensors"), "pt") as f:
        return f.get_tensor(name).float()


@pytest.fixture(scope="module")
def chain(smol2, tmp_path_factory):
    """Every stage once, in order; each output's path and manifest."""
    tmp = tmp_path_factory.mktemp("chain")
    out = {"base": (smol2, None)}
    out["domain-sft"] = train(tmp, "sft", "domain-sft", {
        "model": str(smol2), "datasets": [str(DATA_DIR / "domain_qa_train.jsonl")], "assistant_only_loss": True,
        "packing": False, "eval_fraction": 0, "peft": LORA, "trainer": TRAINER})
    out["domain"] = train(tmp, "dpo", "domain", {
        "model": str(out["domain-sft"][0]), "datasets": [str(DATA_DIR / "domain_pairs.jsonl")], "peft": LORA,
        "trainer": {**TRAINER, "max_steps": 4, "learning_rate": 5e-4}})
    out["safety"] = train(tmp, "sft", "safety", {
        "model": str(smol2), "datasets": [str(DATA_DIR / "safety_sft.jsonl")], "assistant_only_loss": True,
        "packing": False, "eval_fraction": 0, "peft": LORA, "trainer": TRAINER})
    merge = tmp / "merge.yaml"
    merge.write_text(yaml.safe_dump({
        "merge_method": "task_arithmetic", "base_model": str(smol2), "dtype": "float32",
        "models": [{"model": str(out["domain"][0]), "parameters": {"weight": 1.0}},
                   {"model": str(out["safety"][0]), "parameters": {"weight": 1.0}}]}))
    shipit("merge", str(merge), "--out", str(tmp / "merged"))
    out["merged"] = (tmp / "merged", read_manifest(tmp / "merged"))
    for method in ("w4a16", "w8a8"):
        shipit("quantize", method, str(tmp / "merged"), "--out", str(tmp / f"merged-{method}"))
        out[method] = (tmp / f"merged-{method}", read_manifest(tmp / f"merged-{method}"))
    return out


def test_lora_sft_on_the_stock_template_learns_and_keeps_the_tokenizer(chain, smol2):
    for name in ("domain-sft", "safety"):
        path, m = chain[name]
        assert m["metrics"]["train_loss_last"] < m["metrics"]["train_loss_first"], (name, m["metrics"])
        # the saved tokenizer is the input's (no pad token invented) and the template is untouched
        tok_in, tok_out = (json.loads((p / "tokenizer_config.json").read_text()) for p in (smol2, path))
        assert tok_out.get("pad_token") == tok_in.get("pad_token") and (path / "chat_template.jinja").read_text() \
            == (smol2 / "chat_template.jinja").read_text()


def test_dpo_moved_the_policy_and_reports_the_models_own_preference(chain):
    path, m = chain["domain"]
    assert 0 <= m["metrics"]["eval_accuracy_before"] <= 1 and m["metrics"]["eval_margin_before"] != 0
    assert not tensor(path, "model.layers.0.self_attn.q_proj.weight").equal(
        tensor(chain["domain-sft"][0], "model.layers.0.self_attn.q_proj.weight"))


def test_task_arithmetic_of_the_two_specialists_is_the_formula(chain):
    name = "model.layers.1.mlp.down_proj.weight"
    base, dom, saf, merged = (tensor(chain[k][0], name) for k in ("base", "domain", "safety", "merged"))
    assert not dom.equal(base) and not saf.equal(base)
    assert (merged - (base + (dom - base) + (saf - base))).abs().max() < 1e-5
    assert {i["path"] for i in chain["merged"][1]["inputs"].values()} >= {
        str(chain[k][0].resolve()) for k in ("base", "domain", "safety")}


def test_both_quantizations_fit_the_576_wide_model_and_hold_the_bound(chain):
    w4 = chain["w4a16"][1]
    assert w4["config"]["group_size"] == 64  # 128 does not divide 576; 64 is the largest that does
    for method in ("w4a16", "w8a8"):
        m = chain[method][1]["metrics"]
        assert m["ppl_delta_pct"] <= chain[method][1]["config"]["max_ppl_increase_pct"]
        assert m["max_logit_diff"] > 0 and m["size_mb"] < dir_size_mb(chain["merged"][0])


@pytest.mark.vllm
def test_the_merge_and_its_w8a8_serve_behind_the_router(chain, vllm_python, tmp_path):
    import httpx

    port = free_port()
    config = {"experiment": "smol-ab", "port": port, "events": "events.sqlite",
              "arms": [{"name": "merged", "weight": 50, "model": str(chain["merged"][0]), "dtype": "float32",
                        "upstream_api_key_env": "UPSTREAM_KEY"},
                       {"name": "w8a8", "weight": 50, "model": str(chain["w8a8"][0])}]}
    env = {"UPSTREAM_KEY": "upstream-key", "SHIPIT_API_KEYS": "client-key"}
    with serving(config, tmp_path, vllm_python, env=env) as (cfg, url, upstreams):
        seen = {}
        with httpx.Client(base_url=url, timeout=120, headers={"authorization": "Bearer client-key"}) as c:
            for i in range(12):
                r = c.post("/v1/chat/completions", json={
                    "model": "smol-ab", "user": f"user-{i}", "max_tokens": 8, "temperature": 0,
                    "messages": [{"role": "user", "content": "What is the capital of Vellmora?"}]})
                assert r.status_code == 200, r.text
                seen.setdefault(r.headers["x-shipit-arm"], r.json()["choices"][0]["message"]["content"])
            # through the router, an arm answers what its own server answers (greedy)
            direct = httpx.post(f"{upstreams['merged']}/v1/chat/completions", timeout=120,
                                headers={"authorization": "Bearer upstream-key"}, json={
                "model": "merged", "max_tokens": 8, "temperature": 0,
                "messages": [{"role": "user", "content": "What is the capital of Vellmora?"}]})
        assert set(seen) == {"merged", "w8a8"}
        assert seen["merged"] == direct.json()["choices"][0]["message"]["content"]
