"""Supervised fine-tuning (and plain language modelling on text rows) with TRL's SFTTrainer."""

from __future__ import annotations

import shutil
from pathlib import Path

from pydantic import Field

from shipit.config import StrictModel, require_path
from shipit.data.mix import DatasetSpec, data_paths, load_mix, split_eval
from shipit.train.common import TrainerSettings, last_checkpoint, loss_summary, metrics_callback, trl_kwargs


class Config(StrictModel):
    """An SFT run: a model directory, one or more JSONL datasets mixed by weight, and trainer settings.

    Chat rows (`messages`) are rendered with the model's chat template and, by default, only the assistant's
    tokens are trained on; text rows train on every token.
    """

    model: Path
    """A Hugging Face model directory (safetensors, config, tokenizer with a chat template)."""
    output: Path
    """Where the trained model is written (atomically)."""
    datasets: list[DatasetSpec] = Field(min_length=1)
    eval_fraction: float = Field(0.05, ge=0, lt=1)
    assistant_only_loss: bool = True
    packing: bool = True
    trainer: TrainerSettings = TrainerSettings()


def fit(model, tokenizer, train_rows: list[dict], eval_rows: list[dict], settings: TrainerSettings, work_dir: Path,
        *, assistant_only_loss: bool = True, packing: bool = True, resume: bool = False) -> dict:
    """Train `model` in place with TRL's SFTTrainer; returns metrics. Checkpoints go to work_dir/checkpoints."""
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    chat = "messages" in train_rows[0]
    ckpt_dir = work_dir / "checkpoints"
    args = SFTConfig(
        **trl_kwargs(settings, ckpt_dir),
        max_length=settings.max_length,
        packing=packing,
        assistant_only_loss=assistant_only_loss and chat,
        eval_strategy="no",
        per_device_eval_batch_size=settings.per_device_train_batch_size,
        disable_tqdm=False,
    )
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=Dataset.from_list(train_rows),
        eval_dataset=Dataset.from_list(eval_rows) if eval_rows else None,
        processing_class=tokenizer,
        callbacks=[metrics_callback(work_dir / "metrics.jsonl")],
    )
    trainer.train(resume_from_checkpoint=last_checkpoint(ckpt_dir) if resume else None)
    metrics = loss_summary(trainer.state.log_history)
    metrics["steps"] = trainer.state.global_step
    tokens = [r["num_tokens"] for r in trainer.state.log_history if "num_tokens" in r]
    if tokens:
        metrics["train_tokens"] = int(tokens[-1])
    if eval_rows:
        metrics["eval_loss"] = round(trainer.evaluate()["eval_loss"], 4)
    shutil.rmtree(ckpt_dir, ignore_errors=True)
    return metrics


def run(cfg: Config, resume: bool = False) -> Path:
    """Train `cfg.model` on the mixed datasets and write the result to `cfg.output`."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from shipit.registry import stage_output

    require_path(cfg.model / "config.json", "model", kind="file", hint="expected a Hugging Face model directory")
    rows = load_mix(cfg.datasets, seed=cfg.trainer.seed)
    train_rows, eval_rows = split_eval(rows, cfg.eval_fraction, seed=cfg.trainer.seed)
    with stage_output(cfg.output, "train/sft", cfg, {"model": cfg.model, **data_paths(cfg.datasets)},
                      resume=resume, keep_on_error=True) as out:
        tokenizer = AutoTokenizer.from_pretrained(cfg.model)
        model = AutoModelForCausalLM.from_pretrained(cfg.model, dtype="auto")
        out.metrics.update(fit(model, tokenizer, train_rows, eval_rows, cfg.trainer, out.dir,
                               assistant_only_loss=cfg.assistant_only_loss, packing=cfg.packing, resume=resume))
        model.save_pretrained(out.dir)
        tokenizer.save_pretrained(out.dir)
    return cfg.output
