"""SFT through TRL on a tiny model: it learns, every parameter moves, the output is a complete model."""

from __future__ import annotations

import json

import pytest
import torch
import yaml
from safetensors.torch import load_file

from shipit.config import load_config
from shipit.demo.world import DATA_DIR
from shipit.errors import UserError
from shipit.train import get_stage


def sft_yaml(tmp_path, model, **extra):
    cfg = {"model": str(model), "output": str(tmp_path / "sft"),
           "datasets": [{"path": str(DATA_DIR / "instructions.jsonl")}],
           "trainer": {"max_steps": 12, "learning_rate": 3e-3, "warmup_steps": 1, "logging_steps": 2,
                       "per_device_train_batch_size": 8}, **extra}
    p = tmp_path / "sft.yaml"
    p.write_text(yaml.safe_dump(cfg))
    return p


@pytest.mark.slow
def test_sft_learns_and_changes_every_parameter(tiny_base, tmp_path):
    stage = get_stage("sft")
    cfg = load_config(sft_yaml(tmp_path, tiny_base), stage.Config)
    out = stage.run(cfg)
    before, after = load_file(tiny_base / "model.safetensors"), load_file(out / "model.safetensors")
    assert before.keys() == after.keys()
    unchanged = [k for k in before if torch.equal(before[k], after[k])]
    assert unchanged == []
    m = json.loads((out / "manifest.json").read_text())
    assert m["metrics"]["train_loss_last"] < m["metrics"]["train_loss_first"]
    assert m["metrics"]["steps"] == 12 and "eval_loss" in m["metrics"]
    assert m["parents"] == [str(tiny_base.resolve())]
    logged = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in logged if "loss" in r] == [2, 4, 6, 8, 10, 12]
    assert not (out / "checkpoints").exists()


def test_sft_bad_recipes_fail_before_training(tiny_base, tmp_path):
    stage = get_stage("sft")
    p = sft_yaml(tmp_path, tiny_base, datasets=[{"path": str(tmp_path / "missing.jsonl")}])
    with pytest.raises(UserError, match="dataset: file not found: .*missing.jsonl"):
        stage.run(load_config(p, stage.Config))
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"messages": [{"role": "user", "content": "hi"}]}\n{"prompt": "x"}\n')
    p = sft_yaml(tmp_path, tiny_base, datasets=[{"path": str(bad)}])
    with pytest.raises(UserError, match=r"bad.jsonl:2: row has neither 'messages' \(chat\) nor 'text'"):
        stage.run(load_config(p, stage.Config))
    assert not (tmp_path / "sft").exists()
