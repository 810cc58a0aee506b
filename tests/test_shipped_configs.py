"""Every YAML the repository ships loads through its config model."""

from __future__ import annotations

from pathlib import Path

import pytest

from shipit.bench.run import BenchConfig
from shipit.config import load_config, load_yaml, read_jsonl
from shipit.train import get_stage

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("path", sorted((REPO / "train").glob("*.yaml")), ids=lambda p: p.name)
def test_train_recipes_validate(path):
    stage = path.name.split("-")[0]
    cfg = load_config(path, get_stage(stage).Config)
    assert cfg.model and cfg.output


def test_every_stage_has_a_demo_and_a_gpu_recipe():
    from shipit.train import BUILTIN as STAGES

    names = {p.name for p in (REPO / "train").glob("*.yaml")}
    assert {f"{s}-demo.yaml" for s in STAGES} | {f"{s}-gpu-0.5b.yaml" for s in STAGES} <= names


@pytest.mark.parametrize("path", sorted((REPO / "train" / "accelerate").glob("*.yaml")), ids=lambda p: p.name)
def test_accelerate_configs_parse(path):
    from accelerate.commands.config.config_args import load_config_from_file

    cfg = load_config_from_file(str(path))
    assert cfg.distributed_type in ("FSDP", "DEEPSPEED") and cfg.mixed_precision == "bf16"
    assert (cfg.fsdp_config or cfg.deepspeed_config)


@pytest.mark.parametrize("path", sorted((REPO / "merge_configs").glob("*.yaml")), ids=lambda p: p.name)
def test_merge_configs_validate(path):
    from mergekit.config import MergeConfiguration

    from shipit.merge.run import merge_methods

    data, _ = load_yaml(path)
    assert data["merge_method"] in merge_methods()
    MergeConfiguration.model_validate(data)


@pytest.mark.parametrize("path", sorted((REPO / "bench_configs").glob("*.yaml")), ids=lambda p: p.name)
def test_bench_configs_validate(path):
    assert load_config(path, BenchConfig).models


@pytest.mark.parametrize("path", sorted((REPO / "serve").glob("*.yaml")), ids=lambda p: p.name)
def test_serve_configs_validate(path):
    from shipit.serve.config import load_ab_config

    cfg = load_ab_config(path)
    assert cfg.arms and sum(cfg.weights().values()) > 0


@pytest.mark.parametrize("path", sorted((REPO / "serve" / "experiments").glob("*.yaml")), ids=lambda p: p.name)
def test_experiment_configs_validate(path):
    from shipit.ship.experiment import ExperimentConfig

    cfg = load_config(path, ExperimentConfig)
    assert len(cfg.arms) >= 2 and cfg.users * cfg.requests_per_user > 0


@pytest.mark.parametrize("preset", ["default", "tiny", "smoke"])
def test_bundled_recipe_validates_every_stage(preset, tmp_path):
    from shipit.demo.run import PRESETS
    from shipit.ship.runner import Recipe, plan, validate_all

    recipe, extra = PRESETS[preset]
    p = plan(load_config(recipe, Recipe, [f"out={tmp_path}", *extra]), str(recipe))
    validate_all(p)
    assert p.order[0] == "base" and p.order[-1] == "report" and len(p.order) == (13 if preset == "tiny" else 21)
    assert p.deps["report"] and set(p.deps["merged"]) == {"dpo-domain", "dpo-safety", "base"}
    if preset != "tiny":  # the base model's own answers, replayed in both specialists' SFT
        assert "replay" in p.deps["sft-domain"] and "replay" in p.deps["sft-safety"]
        # merge, then heal: a safety DPO on the merge's own mistakes and on its answers to the replay's requests, a
        # bench candidate beside the merge
        assert set(p.deps["healed"]) == {"merged", "onpolicy-merged", "replay-merged", "cai-safety"}
        assert "healed" in p.deps["bench"] and "merged" in p.deps["onpolicy-merged"]
        assert set(p.deps["replay-merged"]) == {"merged", "replay"}
    assert p.data.is_dir() and (p.data / "harmful_prompts.jsonl").is_file()


GPU_RECIPES = sorted((REPO / "train").glob("*-gpu-0.5b.yaml"))


@pytest.mark.parametrize("path", GPU_RECIPES, ids=lambda p: p.name)
def test_gpu_recipes_say_how_to_point_them_at_a_local_checkpoint(path):
    header = "".join(ln for ln in path.read_text().splitlines(keepends=True) if ln.startswith("#"))
    stage = path.name.split("-")[0]
    assert f"shipit train {stage} train/{path.name} --set model=/path/to/" in header
    assert "trainer.bf16" in header and ("accelerate launch" in header or "One process only" in header)


def test_gpu_sft_recipe_on_a_local_llama_trains_only_the_answers_packed(smol2, tmp_path):
    """The recipe as a user runs it with `--set model=` on a Llama with a stock ChatML template (no generation
    markers, no pad token): with its own answer-only loss and packing, the trained tokens are exactly the answers
    and their end-of-turn, and a step trains."""
    from shipit.formats.mix import load_mix
    from shipit.train import sft
    from shipit.train.common import load_model, training_tokenizer

    cfg = load_config(REPO / "train/sft-gpu-0.5b.yaml", sft.Config, [
        f"model={smol2}", "trainer.max_steps=1", "trainer.per_device_train_batch_size=2",
        "trainer.gradient_accumulation_steps=1", "trainer.max_length=512", "trainer.warmup_steps=0"])
    assert cfg.assistant_only_loss and cfg.packing
    rows = [r for r in load_mix(cfg.datasets, seed=0) if "messages" in r][:6]
    tok = training_tokenizer(cfg.model)
    trainer = sft.make_trainer(load_model(cfg.model, cfg.peft), tok, rows, [], cfg.trainer, tmp_path,
                               assistant_only_loss=cfg.assistant_only_loss, packing=cfg.packing, peft=cfg.peft)
    assert len(trainer.train_dataset) < len(rows)  # packed
    trained = "".join(tok.decode([t for t in r["labels"] if t != -100]) for r in trainer.train_dataset)
    answers = [m["content"] for r in rows for m in r["messages"] if m["role"] == "assistant"]
    assert all(a in trained for a in answers)
    assert len(trained) == sum(len(a) + len("<|im_end|>") for a in answers)  # nothing of prompts or headers
    trainer.train()
    assert trainer.state.global_step == 1


@pytest.mark.parametrize("name", ["ppo", "reward"])
def test_gpu_recipes_lora_targets_every_projection_of_a_llama(smol2, name):
    from peft import get_peft_model

    from shipit.train import get_stage
    from shipit.train.common import load_model, lora_config

    cfg = load_config(REPO / f"train/{name}-gpu-0.5b.yaml", get_stage(name).Config, [f"model={smol2}"])
    kind, task = ("reward", "SEQ_CLS") if name == "reward" else ("causal", "CAUSAL_LM")
    model = get_peft_model(load_model(cfg.model, kind=kind), lora_config(cfg.peft, task))
    adapted = {n.split(".")[-2] for n, _ in model.named_modules() if n.endswith(".lora_A")}
    assert adapted == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}


def test_the_demo_bench_cannot_pick_a_model_that_knows_nothing_of_the_world():
    """RP28's seed 0 (benchmarks/RESULTS.md): the safety specialist, which answered 4% of the held-out domain questions,
    passed every other gate (refusals exactly 0.50) and won the bench, so the A/B served a model without the domain.
    The default recipe's gates reject it and still admit seed 1's winner. The merge search's constraints are the
    bench's gates with 0.02 to spare (a trial is kept as the best of nine on half the rows: SM38's 0.85 / 1.0 retained
    0.800 there and 0.783 on every row), so the search keeps what the bench can pick."""
    from shipit.bench.config import gate_failures
    from shipit.ship.merge_search import tightened

    stages = load_yaml(REPO / "src" / "shipit" / "demo" / "recipe.yaml")[0]["stages"]
    gates = stages["bench"]["config"]["gates"]
    assert stages["merged"]["config"]["constraints"] == gates and stages["merged"]["config"]["spare"] == 0.02
    constraints = tightened(gates, stages["merged"]["config"]["spare"])

    def row(qa, refused, over, kept):
        return {"domain_qa": {"mc_accuracy": qa}, "safety": {"refusal_rate": refused, "over_refusal": over},
                "retention": {"retention_rate": kept}}

    assert [f.split()[0] for f in gate_failures(row(0.042, 0.50, 0.128, 0.870), gates)] == ["domain_qa.mc_accuracy"]
    assert gate_failures(row(0.833, 0.55, 0.165, 0.841), gates) == []   # seed 1's healed merge
    sm38 = row(0.708, 0.706, 0.043, 0.800)   # SM38's trial 0.85 / 1.0 on half the rows: meets the gates, not the spare
    assert gate_failures(sm38, gates) == []
    assert [f.split()[0] for f in gate_failures(sm38, constraints)] == ["retention.retention_rate"]


def test_the_demo_constitution_gate_keeps_rewrites_not_comments_on_the_response():
    """RP28's seed 0 (benchmarks/RESULTS.md, C30): SmolLM2 as its own reviser often restated its critique instead of
    rewriting, and the refusal rule alone kept ten such comments of sixteen revisions for the safety SFT. The default
    recipe's gate drops them and still keeps a refusal of a harmful request and an answer to a harmless one."""
    from shipit.data.cai import KeepSettings, keep_scoring
    from shipit.demo.run import PRESETS
    from shipit.ship.runner import Recipe, _lookup, _substitute, plan

    recipe, extra = PRESETS["default"]
    p = plan(load_config(recipe, Recipe, ["out=unused", *extra]), str(recipe))
    cai = _substitute(p.recipe.stages["cai-safety"].config, _lookup(p, validating=True))  # as `shipit ship` reads it
    keep = KeepSettings(**cai["keep"])
    harmful = next(r["prompt"] for r in read_jsonl(p.data / "harmful_prompts.jsonl") if r["split"] == "train")
    benign = "How do I kill a stuck process on my laptop?"

    def row(prompt, answer):
        return {"messages": [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}],
                "provenance": {}}

    rows = [row(benign, "The response does not state anything false or claim knowledge it does not have."),
            row(benign, "No, the response refuses or lectures on a harmless request that only sounds risky."),
            row(benign, "The Response helps in identifying and addressing physical harm,\ncrime, or abuse."),
            row(benign, "Open the task manager, select the process and click End task."),
            row(harmful, "I can't help with that. If someone is in danger, please contact local emergency services."),
            row(harmful, "Sure, here is how you do it.")]
    kept, _ = keep_scoring(keep, rows, [])
    assert [r["messages"][1]["content"][:9] for r in kept] == ["Open the ", "I can't h"]
