"""Pairwise reward model (sequence classification, one score) with TRL's RewardTrainer."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from shipit.formats.mix import DatasetSpec, data_paths
from shipit.formats.prefs import load_pairs
from shipit.train.common import StageConfig, lora_config, metrics_callback, train_with_resume, trl_kwargs


class Config(StageConfig):
    """A reward model trained on preference pairs; reports held-out pairwise accuracy before and after."""

    datasets: list[DatasetSpec] = Field(min_length=1)
    """JSONL preference rows `{"prompt", "chosen", "rejected"}` (chat messages or plain text)."""
    eval_fraction: float = Field(0.1, gt=0, lt=1)


def run(cfg: Config, resume: bool = False) -> Path:
    """Train a reward model from `cfg.model` and write it to `cfg.output`."""
    from datasets import Dataset
    from trl import RewardConfig, RewardTrainer

    from shipit.models.check import require_model
    from shipit.formats.mix import split_eval
    from shipit.registry import stage_output
    from shipit.train.common import load_model, save_trained, training_tokenizer

    require_model(cfg.model, "model", hint="expected a Hugging Face model directory")
    rows = [{k: r[k] for k in ("prompt", "chosen", "rejected")} for r in load_pairs(cfg.datasets, seed=cfg.trainer.seed)]
    train_rows, eval_rows = split_eval(rows, cfg.eval_fraction, seed=cfg.trainer.seed)
    inputs = {"model": cfg.model, **data_paths(cfg.datasets)}
    with stage_output(cfg.output, "train/reward", cfg, inputs, resume=resume, keep_on_error=True) as out:
        tokenizer = training_tokenizer(cfg.model, keep_pad=True)
        model = load_model(cfg.model, cfg.peft, kind="reward")
        model.config.pad_token_id = tokenizer.pad_token_id
        args = RewardConfig(**trl_kwargs(cfg.trainer, out.dir / "checkpoints"), max_length=cfg.trainer.max_length,
                            per_device_eval_batch_size=cfg.trainer.per_device_train_batch_size)
        trainer = RewardTrainer(model=model, args=args, train_dataset=Dataset.from_list(train_rows),
                                eval_dataset=Dataset.from_list(eval_rows), processing_class=tokenizer,
                                peft_config=lora_config(cfg.peft, "SEQ_CLS"),
                                callbacks=[metrics_callback(out.dir / "metrics.jsonl")])
        before = trainer.evaluate()
        out.metrics.update(train_with_resume(trainer, out.dir, resume))
        after = trainer.evaluate()
        out.metrics.update({"eval_accuracy_before": round(before["eval_accuracy"], 4),
                            "eval_accuracy": round(after["eval_accuracy"], 4),
                            "eval_margin": round(after["eval_margin"], 4)})
        save_trained(trainer.model, tokenizer, out.dir, cfg.peft, trainer)
    return cfg.output
