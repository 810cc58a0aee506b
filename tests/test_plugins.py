"""Registries take entries from installed packages through entry points: a task, a quantizer and a training stage
registered by a package outside shipit are found by name, validated, listed in errors and run."""

from __future__ import annotations

import json
import sys

import pytest

PLUGIN = '''
from shipit.bench.tasks import Task

def word_count(model, tokenizer, ctx):
    from shipit.models.generate import chat_generate
    answers = chat_generate(model, tokenizer, ["Say hello."], max_new_tokens=4)
    return {"words": float(len(answers[0].split())), "score": 0.25}

WORDS = Task("capability", "shipit_plugin_probe:word_count", "words", higher_is_better=False)
'''
ENTRY_POINTS = """[shipit.tasks]
words = shipit_plugin_probe:WORDS

[shipit.quantizers]
noop-int8 = shipit_plugin_probe

[shipit.stages]
kto = shipit_plugin_probe
"""


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    """An installed package (a module plus its dist-info with entry_points.txt) on sys.path."""
    from shipit import plugins

    (tmp_path / "shipit_plugin_probe.py").write_text(PLUGIN)
    info = tmp_path / "shipit_plugin_probe-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: shipit-plugin-probe\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(ENTRY_POINTS)
    monkeypatch.syspath_prepend(str(tmp_path))
    plugins.refresh()
    yield
    plugins.refresh()
    sys.modules.pop("shipit_plugin_probe", None)


def test_without_the_plugin_its_names_are_unknown():
    from shipit.bench.tasks import tasks
    from shipit.quantize import methods
    from shipit.train import stages

    assert "words" not in tasks() and "noop-int8" not in methods() and "kto" not in stages()


def test_entry_points_extend_every_registry(plugin):
    from shipit.errors import UserError
    from shipit.quantize import methods
    from shipit.train import get_stage, stages

    assert methods()["noop-int8"] == "shipit_plugin_probe"
    assert list(stages())[-1] == "kto" and get_stage("kto").__name__ == "shipit_plugin_probe"
    with pytest.raises(UserError, match="unknown training stage 'ktoo'; available: cpt, sft, reward, dpo, ppo, grpo, kto"):
        get_stage("ktoo")


@pytest.mark.slow
def test_a_plugin_task_runs_in_the_bench_with_its_headline(plugin, tiny_base, tmp_path):
    from shipit.bench.config import BenchConfig
    from shipit.bench.run import run
    from shipit.demo.world import DATA_DIR

    cfg = BenchConfig(data_dir=DATA_DIR, models={"a": tiny_base}, tasks=["words"], output=tmp_path / "bench",
                      efficiency={"prompts": 1, "max_new_tokens": 2})
    summary = run(cfg)
    assert summary["results"]["a"]["words"]["score"] == 0.25
    assert summary["results"]["a"]["score"] == 0.25
    assert "words words ↓" in (tmp_path / "bench" / "report.md").read_text()
    assert json.loads((tmp_path / "bench" / "results.json").read_text())["tasks"] == ["words"]
