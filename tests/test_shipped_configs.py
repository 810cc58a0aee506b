"""Every YAML the repository ships loads through its config model."""

from __future__ import annotations

from pathlib import Path

import pytest

from shipit.bench.run import BenchConfig
from shipit.config import load_config, load_yaml
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
    assert p.order[0] == "base" and p.order[-1] == "report" and len(p.order) == (13 if preset == "tiny" else 14)
    assert p.deps["report"] and set(p.deps["merged"]) == {"dpo-domain", "dpo-safety", "base"}
    assert p.data.is_dir() and (p.data / "harmful_prompts.jsonl").is_file()
