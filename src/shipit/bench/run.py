"""`shipit bench CONFIG`: every candidate model through every task, a weighted score, and the winner."""

from __future__ import annotations

import json
import time
from pathlib import Path

from pydantic import Field, field_validator, model_validator

from shipit.bench.tasks import TASKS, get_task
from shipit.config import StrictModel, require_path
from shipit.demo.world import DATA_DIR

# The number shown for each task in tables: (metric, higher_is_better).
HEADLINE = {"general_ppl": ("ppl", False), "domain_ppl": ("ppl", False), "domain_qa": ("exact_match", True),
            "format": ("compliance", True), "safety": ("refusal_rate", True)}


class BenchConfig(StrictModel):
    """Candidates (name -> model directory) and the tasks to run on each; the winner has the best weighted score.

    Each task reports a `score` in [0, 1]; a model's score is the mean of its task scores weighted by `weights`
    (a task missing from `weights` has weight 1).
    """

    models: dict[str, Path] = Field(min_length=1)
    tasks: list[str] = Field(default_factory=lambda: list(TASKS), min_length=1)
    weights: dict[str, float] = {}
    data_dir: Path = DATA_DIR
    """Directory of the bench data files (the bundled demo world by default)."""
    output: Path

    @field_validator("tasks")
    @classmethod
    def _known_tasks(cls, tasks):
        unknown = [t for t in tasks if t not in TASKS]
        if unknown:
            raise ValueError(f"unknown task '{unknown[0]}'; allowed: {', '.join(TASKS)}")
        return tasks

    @model_validator(mode="after")
    def _weights_name_tasks(self):
        extra = [k for k in self.weights if k not in self.tasks]
        if extra:
            raise ValueError(f"weights name task '{extra[0]}' which is not in tasks ({', '.join(self.tasks)})")
        return self


def bench_model(path: Path, tasks: list[str], data_dir: Path) -> dict:
    """Load one model and run every task on it; returns {task: metrics, 'efficiency': {...}}."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from shipit.device import torch_device
    from shipit.quantize.run import dir_size_mb

    t0 = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype="auto").to(torch_device()).eval()
    load_s = time.perf_counter() - t0
    result = {task: get_task(task)(model, tokenizer, data_dir) for task in tasks}
    result["efficiency"] = {"size_mb": round(dir_size_mb(path), 3), "load_s": round(load_s, 3)}
    return result


def weighted_score(result: dict, weights: dict[str, float], tasks: list[str]) -> float:
    """Mean of task scores weighted by `weights` (default 1 each)."""
    w = {t: weights.get(t, 1.0) for t in tasks}
    return round(sum(result[t]["score"] * w[t] for t in tasks) / sum(w.values()), 4)


def run(cfg: BenchConfig) -> dict:
    """Bench every candidate; write results.json and report.md to cfg.output; return the results."""
    from shipit.bench.report import bench_markdown
    from shipit.registry import stage_output

    for name, path in cfg.models.items():
        require_path(path / "config.json", f"bench: model '{name}'", kind="file",
                     hint="expected a Hugging Face model directory")
    with stage_output(cfg.output, "bench", cfg, dict(cfg.models)) as out:
        results = {}
        for name, path in cfg.models.items():
            results[name] = bench_model(path, cfg.tasks, cfg.data_dir)
            results[name]["score"] = weighted_score(results[name], cfg.weights, cfg.tasks)
        winner = max(results, key=lambda n: results[n]["score"])
        summary = {"tasks": cfg.tasks, "weights": cfg.weights, "results": results, "winner": winner,
                   "winner_path": str(cfg.models[winner].resolve()),
                   "reason": f"highest weighted score {results[winner]['score']:.4f} over {len(results)} candidates"}
        (out.dir / "results.json").write_text(json.dumps(summary, indent=2) + "\n")
        (out.dir / "report.md").write_text(bench_markdown(summary))
        out.metrics.update({"winner_score": results[winner]["score"], "candidates": len(results)})
        out.extra["winner"] = winner
    return summary
