"""Supervised fine-tuning (and plain language modelling on text rows) with TRL's SFTTrainer."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from shipit.formats.mix import DatasetSpec, data_paths, load_mix, split_eval
from shipit.train.common import (LoraSettings, StageConfig, TrainerSettings, lora_config, metrics_callback,
                                 train_with_resume, trl_kwargs)


class Config(StageConfig):
    """An SFT run: a model directory, one or more JSONL datasets mixed by weight, and trainer settings.

    Chat rows (`messages`) are rendered with the model's chat template and, by default, only the assistant's
    tokens are trained on; text rows train on every token.
    """

    datasets: list[DatasetSpec] = Field(min_length=1)
    eval_fraction: float = Field(0.05, ge=0, lt=1)
    assistant_only_loss: bool = True
    packing: bool = True


def masked_rows(tokenizer, rows: list[dict]) -> list[dict]:
    """Chat rows as `{"input_ids", "assistant_masks"}`: the answer-only mask built from the template itself."""
    from shipit.formats.chatmask import assistant_mask

    out = []
    for row in rows:
        ids, mask = assistant_mask(tokenizer, row["messages"], where=f"chat template of {tokenizer.name_or_path}")
        out.append({"input_ids": ids, "assistant_masks": mask})
    return out


def make_trainer(model, tokenizer, train_rows: list[dict], eval_rows: list[dict], settings: TrainerSettings,
                 work_dir: Path, *, assistant_only_loss: bool = True, packing: bool = True,
                 peft: LoraSettings | None = None):
    """TRL's SFTTrainer for these rows; checkpoints go to work_dir/checkpoints, logs to work_dir/metrics.jsonl."""
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    from shipit.formats.chatmask import has_generation_markers

    chat = "messages" in train_rows[0]
    # A template without {% generation %} markers (stock ChatML, Llama 3, Qwen2.5) is masked here and handed to TRL
    # pre-tokenized with `assistant_masks`, which TRL folds into the labels; TRL itself only patches templates it knows.
    own_mask = assistant_only_loss and chat and not has_generation_markers(tokenizer.chat_template)
    if own_mask:
        train_rows, eval_rows = masked_rows(tokenizer, train_rows), masked_rows(tokenizer, eval_rows)
    args = SFTConfig(
        **trl_kwargs(settings, work_dir / "checkpoints"),
        max_length=settings.max_length,
        packing=packing,
        assistant_only_loss=assistant_only_loss and chat and not own_mask,
        per_device_eval_batch_size=settings.per_device_train_batch_size,
    )
    return SFTTrainer(
        model=model,
        args=args,
        train_dataset=Dataset.from_list(train_rows),
        eval_dataset=Dataset.from_list(eval_rows) if eval_rows else None,
        processing_class=tokenizer,
        peft_config=lora_config(peft),
        callbacks=[metrics_callback(work_dir / "metrics.jsonl")],
    )


def fit(model, tokenizer, train_rows: list[dict], eval_rows: list[dict], settings: TrainerSettings, work_dir: Path,
        *, assistant_only_loss: bool = True, packing: bool = True, resume: bool = False,
        peft: LoraSettings | None = None) -> tuple[object, dict]:
    """Train with TRL's SFTTrainer; returns the trainer (its model is a PeftModel under LoRA) and metrics."""
    trainer = make_trainer(model, tokenizer, train_rows, eval_rows, settings, work_dir,
                           assistant_only_loss=assistant_only_loss, packing=packing, peft=peft)
    metrics = train_with_resume(trainer, work_dir, resume)
    if eval_rows:
        metrics["eval_loss"] = round(trainer.evaluate()["eval_loss"], 4)
    return trainer, metrics


def run(cfg: Config, resume: bool = False) -> Path:
    """Train `cfg.model` on the mixed datasets and write the result to `cfg.output`."""

    from shipit.models.check import require_model
    from shipit.registry import stage_output
    from shipit.train.common import load_model, save_trained, training_tokenizer

    require_model(cfg.model, "model", hint="expected a Hugging Face model directory")
    rows = load_mix(cfg.datasets, seed=cfg.trainer.seed)
    train_rows, eval_rows = split_eval(rows, cfg.eval_fraction, seed=cfg.trainer.seed)
    with stage_output(cfg.output, "train/sft", cfg, {"model": cfg.model, **data_paths(cfg.datasets)},
                      resume=resume, keep_on_error=True) as out:
        tokenizer = training_tokenizer(cfg.model)
        trainer, metrics = fit(load_model(cfg.model, cfg.peft), tokenizer, train_rows, eval_rows, cfg.trainer,
                               out.dir, assistant_only_loss=cfg.assistant_only_loss, packing=cfg.packing,
                               resume=resume, peft=cfg.peft)
        out.metrics.update(metrics)
        save_trained(trainer.model, tokenizer, out.dir, cfg.peft, trainer)
    return cfg.output
