"""`shipit iterate`: rounds of generate -> filter -> pairs -> train -> score, keeping the best model, until
`patience` rounds pass without an improvement of at least `min_delta`."""

from __future__ import annotations

import importlib
import json
import shutil
from pathlib import Path
from typing import Callable, Literal

from pydantic import Field, field_validator

from shipit.config import StrictModel
from shipit.data.synth import SynthSettings
from shipit.errors import UserError
from shipit.train.common import TrainerSettings

RoundScorer = Callable[[Path, "IterateConfig", Path], float]
"""`fn(model_dir, config, round_dir) -> score`: higher is better."""


def bench_score(model: Path, cfg: "IterateConfig", round_dir: Path) -> float:
    """The weighted bench score of `model` on `cfg.score.tasks` (shipit.bench.run)."""
    from shipit.bench.config import BenchConfig, EfficiencySettings
    from shipit.bench.run import run as bench

    s = cfg.score
    bc = BenchConfig(models={"candidate": model}, tasks=s.tasks, weights=s.weights, output=round_dir / "bench",
                     efficiency=EfficiencySettings(prompts=1, max_new_tokens=2), on_no_winner="report",
                     data_dir=s.data_dir or _demo_data())
    return float(bench(bc)["results"]["candidate"]["score"])


def _demo_data() -> Path:
    from shipit.demo.world import DATA_DIR

    return DATA_DIR


ROUND_SCORERS: dict[str, RoundScorer] = {"bench": bench_score}


def get_round_scorer(name: str) -> RoundScorer:
    """A registered round scorer, or one given as `package.module:function`."""
    if name in ROUND_SCORERS:
        return ROUND_SCORERS[name]
    module, _, fn = name.partition(":")
    try:
        return getattr(importlib.import_module(module), fn)
    except (ImportError, AttributeError, ValueError) as exc:
        raise UserError(f"round scorer '{name}' cannot be imported: {exc}") from None


class ScoreSettings(StrictModel):
    """How a round's model is scored: `bench` (weighted bench score on `tasks`) or a registered/importable scorer."""

    name: str = "bench"
    tasks: list[str] = ["format"]
    weights: dict[str, float] = {}
    data_dir: Path | None = None
    """The bench data directory; default: the demo world's."""

    @field_validator("name")
    @classmethod
    def _known(cls, name):
        if name not in ROUND_SCORERS and ":" not in name:
            raise ValueError(f"unknown round scorer '{name}'; allowed: {', '.join(ROUND_SCORERS)}, "
                             "or package.module:function")
        return name


class TrainSettings(StrictModel):
    """Which shipit training stages each round runs on its data: sft on the kept rows, dpo on the pairs."""

    stages: list[Literal["sft", "dpo"]] = Field(["sft"], min_length=1)
    sft: TrainerSettings = TrainerSettings(max_steps=20, warmup_steps=2)
    dpo: TrainerSettings = TrainerSettings(max_steps=10, warmup_steps=0, per_device_train_batch_size=4)
    beta: float = Field(0.1, gt=0)


class IterateConfig(StrictModel):
    """Iterative data rounds. Each round generates data with `data` (its generator defaults to the current best
    model), trains it with `train`, and scores it with `score`; the best model lands in `output/best`, the history
    in the manifest and `output/scores.png`."""

    model: Path
    output: Path
    data: SynthSettings
    train: TrainSettings = TrainSettings()
    score: ScoreSettings = ScoreSettings()
    max_rounds: int = Field(5, ge=1)
    patience: int = Field(2, ge=1)
    min_delta: float = Field(0.0, ge=0)


def train_round(cfg: IterateConfig, start: Path, data_dir: Path, round_dir: Path) -> tuple[Path, dict]:
    """Train `start` on the round's data with the configured stages; returns the model and row counts."""
    from shipit.formats.mix import DatasetSpec
    from shipit.train import get_stage

    model, used = start, {}
    sft_rows = sum(1 for _ in open(data_dir / "sft.jsonl"))
    pair_rows = sum(1 for _ in open(data_dir / "pairs.jsonl"))
    if "sft" in cfg.train.stages and sft_rows:
        sft = get_stage("sft")
        model = sft.run(sft.Config(model=model, output=round_dir / "sft", trainer=cfg.train.sft, eval_fraction=0,
                                   datasets=[DatasetSpec(path=data_dir / "sft.jsonl")]))
        used["sft_rows"] = sft_rows
    if "dpo" in cfg.train.stages and pair_rows >= 2:
        dpo = get_stage("dpo")
        model = dpo.run(dpo.Config(model=model, output=round_dir / "dpo", trainer=cfg.train.dpo, beta=cfg.train.beta,
                                   datasets=[data_dir / "pairs.jsonl"]))
        used["pairs"] = pair_rows
    return model, used


def plot_history(history: list[dict], path: Path) -> None:
    """Score per round (round 0 is the starting model), the best round marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3))
    ax.plot([h["round"] for h in history], [h["score"] for h in history], marker="o")
    best = max(history, key=lambda h: (h["score"], -h["round"]))
    ax.scatter([best["round"]], [best["score"]], s=120, facecolors="none", edgecolors="red", label="best")
    ax.set_xlabel("round")
    ax.set_ylabel("score")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def run(cfg: IterateConfig, resume: bool = False) -> Path:
    """Run rounds until patience runs out or `max_rounds`; the best model is `cfg.output / 'best'`."""
    from shipit.models.check import require_model
    from shipit.data import synth
    from shipit.data.progress import ProgressLog
    from shipit.registry import stage_output

    require_model(cfg.model, "model", hint="expected a Hugging Face model directory")
    scorer = get_round_scorer(cfg.score.name)
    with stage_output(cfg.output, "iterate", cfg, {"model": cfg.model}, resume=resume, keep_on_error=True) as out:
        log = ProgressLog(out.dir / "history.jsonl")
        if "0" not in log:
            log.commit("0", [{"round": 0, "model": str(cfg.model), "score": scorer(cfg.model, cfg, out.dir / "round0"),
                              "improved": True}])
        history = log.rows()
        best = max(history, key=lambda h: (h["score"] if h["improved"] else float("-inf"), h["round"]))
        stale, reason = 0, f"max_rounds {cfg.max_rounds} reached"
        for h in history[1:]:
            stale = 0 if h["improved"] else stale + 1
        for k in range(len(history), cfg.max_rounds + 1):
            if stale >= cfg.patience:
                break
            rdir = out.dir / f"round{k}"
            gen = cfg.data.generator
            data_cfg = synth.SynthConfig(**cfg.data.model_dump(exclude={"generator"}), output=rdir / "data",
                                         generator=gen if gen.model else gen.model_copy(
                                             update={"model": Path(best["model"])}))
            synth.run(data_cfg, resume=True)
            model, used = train_round(cfg, Path(best["model"]), rdir / "data", rdir)
            score = scorer(model, cfg, rdir)
            gain = score - best["score"]
            improved = gain > 0 and gain >= cfg.min_delta - 1e-12  # a tie is never an improvement
            row = {"round": k, "model": str(model), "score": score, "improved": improved,
                   "best_before": best["score"], **used}
            log.commit(str(k), [row])
            history.append(row)
            print(f"  iterate round {k}: score {score:.4f} (best {best['score']:.4f})"
                  f"{' improved' if improved else ''}", flush=True)
            if improved:
                best, stale = row, 0
            else:
                stale += 1
        if stale >= cfg.patience:
            reason = f"no improvement of at least {cfg.min_delta} in {cfg.patience} rounds"
        if (out.dir / "best").exists():
            shutil.rmtree(out.dir / "best")
        shutil.copytree(best["model"], out.dir / "best", ignore=shutil.ignore_patterns("manifest.json"))
        (out.dir / "best" / "origin.json").write_text(json.dumps({"round": best["round"], "model": best["model"]}))
        plot_history(history, out.dir / "scores.png")
        out.metrics.update({"rounds": len(history) - 1, "best_round": best["round"], "best_score": best["score"],
                            "start_score": history[0]["score"]})
        # Round models were written inside the partial dir, which becomes cfg.output when this block ends.
        final = str(Path(cfg.output).resolve())
        history = [{**h, "model": h["model"].replace(str(out.dir), final)} for h in history]
        out.extra.update({"history": history, "stopped": reason})
    return cfg.output
