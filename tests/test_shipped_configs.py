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
    assert cfg.datasets


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
