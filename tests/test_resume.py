"""A training run killed with SIGKILL continues with `--resume` from its last checkpoint and finishes."""

from __future__ import annotations

import pytest

import json
import shutil
import subprocess
import sys

import yaml

from shipit.demo.world import DATA_DIR
from shipit.registry import partial_dir
from tests.conftest import kill_at_first_checkpoint


@pytest.mark.slow
def test_sft_killed_mid_run_resumes_and_finishes(tiny_base, tmp_path):
    out = tmp_path / "sft"
    cfg = {"model": str(tiny_base), "output": str(out), "eval_fraction": 0,
           "datasets": [{"path": str(DATA_DIR / "instructions.jsonl")}],
           "trainer": {"max_steps": 40, "save_steps": 10, "logging_steps": 5, "learning_rate": 1e-3,
                       "per_device_train_batch_size": 8, "warmup_steps": 1}}
    recipe = tmp_path / "sft.yaml"
    recipe.write_text(yaml.safe_dump(cfg))
    cmd = [sys.executable, "-m", "shipit", "train", "sft", str(recipe)]
    ckpts = partial_dir(out) / "checkpoints"
    kill_at_first_checkpoint(cmd, ckpts)
    assert not out.exists(), "a killed run must not leave an output that looks complete"
    killed_at = max(int(p.name.split("-")[1]) for p in ckpts.glob("checkpoint-*"))
    assert 10 <= killed_at < 40

    r = subprocess.run(cmd + ["--resume"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    m = json.loads((out / "manifest.json").read_text())
    assert m["metrics"]["steps"] == 40 and not partial_dir(out).exists()
    logged = [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()
              if "loss" in json.loads(line)]
    # Steps up to the checkpoint were logged once (not retrained from zero); the rest continue to 40.
    assert logged.count(5) == 1 and logged[-1] == 40 and set(range(5, 41, 5)) <= set(logged)


def test_resume_skips_an_incomplete_checkpoint(tiny_base, tmp_path):
    """A save cut short (disk full, kill -9) leaves checkpoint-N with config files only: resume takes the last
    complete checkpoint instead of crashing on it, and says so."""
    out = tmp_path / "sft"
    cfg = {"model": str(tiny_base), "output": str(out), "eval_fraction": 0,
           "datasets": [{"path": str(DATA_DIR / "instructions.jsonl")}],
           "trainer": {"max_steps": 20, "save_steps": 5, "logging_steps": 5, "learning_rate": 1e-3,
                       "per_device_train_batch_size": 8, "warmup_steps": 1}}
    recipe = tmp_path / "sft.yaml"
    recipe.write_text(yaml.safe_dump(cfg))
    cmd = [sys.executable, "-m", "shipit", "train", "sft", str(recipe)]
    ckpts = partial_dir(out) / "checkpoints"
    kill_at_first_checkpoint(cmd, ckpts)
    complete = max(int(p.parent.name.split("-")[1]) for p in ckpts.glob("checkpoint-*/trainer_state.json"))
    broken = ckpts / f"checkpoint-{complete + 5}"
    broken.mkdir(exist_ok=True)
    for f in ("config.json", "generation_config.json"):
        shutil.copy(tiny_base / f, broken / f)
    (broken / "trainer_state.json").unlink(missing_ok=True)

    r = subprocess.run(cmd + ["--resume"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    assert f"resume: skipping incomplete checkpoint-{complete + 5} (no trainer_state.json" in r.stderr
    m = json.loads((out / "manifest.json").read_text())
    assert m["metrics"]["steps"] == 20
    logged = [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()
              if "loss" in json.loads(line)]
    assert logged.count(5) == 1 and logged[-1] == 20  # continued from the complete checkpoint, not from zero
