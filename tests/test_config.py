"""Config and data errors: one line naming the file, the line, the field and the fix; exit 2 without traceback."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Literal

import pytest

from shipit.config import StrictModel, load_config, read_jsonl
from shipit.errors import UserError
from shipit.train.common import TrainerSettings


class Inner(StrictModel):
    learning_rate: float = 1e-3
    mode: Literal["fast", "slow"] = "fast"


class Outer(StrictModel):
    name: str
    inner: Inner = Inner()


def write(tmp_path, text, name="cfg.yaml"):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_unknown_key_names_file_line_field_and_suggestion(tmp_path):
    p = write(tmp_path, "name: x\ninner:\n  learning_rat: 0.1\n")
    with pytest.raises(UserError) as e:
        load_config(p, Outer)
    msg = str(e.value)
    assert msg.startswith(f"{p}:3: field 'inner.learning_rat': unknown key 'learning_rat'")
    assert "did you mean 'learning_rate'?" in msg and "allowed keys: learning_rate, mode" in msg
    assert "\n" not in msg


def test_wrong_literal_lists_allowed_values(tmp_path):
    p = write(tmp_path, "name: x\ninner:\n  mode: medium\n")
    with pytest.raises(UserError, match=r"cfg.yaml:3: field 'inner.mode': Input should be 'fast' or 'slow'"):
        load_config(p, Outer)


def test_missing_field_and_bad_yaml(tmp_path):
    with pytest.raises(UserError, match=r"cfg.yaml: field 'name': required field is missing"):
        load_config(write(tmp_path, "inner: {}\n"), Outer)
    with pytest.raises(UserError, match=r"bad.yaml:2: invalid YAML"):
        load_config(write(tmp_path, "name: x\n  - : [\n", "bad.yaml"), Outer)
    with pytest.raises(UserError, match=r"config: file not found: .*nope.yaml"):
        load_config(tmp_path / "nope.yaml", Outer)


def test_overrides_apply_and_are_validated(tmp_path):
    p = write(tmp_path, "name: x\n")
    cfg = load_config(p, Outer, ["inner.learning_rate=0.5", "inner.mode=slow"])
    assert cfg.inner.learning_rate == 0.5 and cfg.inner.mode == "slow"
    with pytest.raises(UserError, match="unknown key 'lr'"):
        load_config(p, Outer, ["inner.lr=1"])


def test_trainer_settings_reject_typos():
    with pytest.raises(Exception, match="max_step"):
        TrainerSettings.model_validate({"max_step": 3})


def test_jsonl_errors_name_file_and_line(tmp_path):
    p = tmp_path / "d.jsonl"
    p.write_text(json.dumps({"text": "a"}) + "\n{broken\n")
    with pytest.raises(UserError, match=r"d.jsonl:2: malformed JSON row"):
        read_jsonl(p)
    p.write_text(json.dumps({"text": "a"}) + "\n" + json.dumps({"txt": "b"}) + "\n")
    with pytest.raises(UserError, match=r"d.jsonl:2: missing field 'text'"):
        read_jsonl(p, ["text"])
    assert read_jsonl(p) == [{"text": "a"}, {"txt": "b"}]


def run_cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "shipit", *args], capture_output=True, text=True, cwd=cwd)


def test_cli_config_typo_is_one_line_exit_2(tmp_path):
    p = write(tmp_path, "model: m\noutput: o\ndatasets: [{path: d.jsonl}]\ntrainer:\n  max_step: 3\n")
    r = run_cli("train", "sft", str(p))
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [
        f"error: {p}:5: field 'trainer.max_step': unknown key 'max_step'; did you mean 'max_steps'? allowed keys: "
        + ", ".join(sorted(TrainerSettings.model_fields))]
    assert "Traceback" not in r.stderr


def test_cli_debug_shows_traceback(tmp_path):
    r = run_cli("--debug", "train", "sft", str(tmp_path / "missing.yaml"))
    assert r.returncode != 0 and "Traceback" in r.stderr and "UserError" in r.stderr


def test_cli_unknown_stage_and_missing_model(tmp_path):
    r = run_cli("train", "sfx", "x.yaml")
    assert r.returncode == 2 and r.stderr.strip() == "error: unknown training stage 'sfx'; available: cpt, sft, reward, dpo, ppo, grpo"
    p = write(tmp_path, f"model: {tmp_path}/nomodel\noutput: {tmp_path}/o\ndatasets: [{{path: d.jsonl}}]\n")
    r = run_cli("train", "sft", str(p))
    assert r.returncode == 2
    assert r.stderr.strip() == (f"error: model: file not found: {tmp_path}/nomodel/config.json "
                                "(expected a Hugging Face model directory)")


def test_help_imports_no_heavy_library():
    code = ("import sys, shipit.cli; "
            "heavy = [m for m in ('torch', 'transformers', 'trl', 'mergekit', 'vllm', 'llmcompressor', 'datasets') "
            "if m in sys.modules]; print(heavy)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.stdout.strip() == "[]"
    r = run_cli("--help")
    assert r.returncode == 0 and "demo" in r.stdout and "lineage" in r.stdout
