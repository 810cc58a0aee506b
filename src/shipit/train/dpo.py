"""Direct preference optimisation with TRL's DPOTrainer; soft preference labels from AI feedback are accepted."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from shipit.formats.mix import DatasetSpec, data_paths
from shipit.formats.prefs import SOFT_LABEL, load_pairs
from shipit.train.common import StageConfig, lora_config, metrics_callback, train_with_resume, trl_kwargs


class Config(StageConfig):
    """DPO on preference pairs against a frozen copy of the input model; reports the held-out preference of the
    model before and after (see `shipit.train.dpo_soft.own_preference`).

    Rows may carry `soft_label` (probability that `chosen` is better): each such pair is trained with the
    conservative-DPO loss for its own p (see `shipit.train.dpo_soft`).
    """

    datasets: list[DatasetSpec] = Field(min_length=1)
    """JSONL preference rows `{"prompt", "chosen", "rejected"[, "soft_label"]}`."""
    eval_fraction: float = Field(0.1, gt=0, lt=1)
    beta: float = Field(0.1, gt=0)
    loss_type: str | list[str] = "sigmoid"
    """Any loss TRL's DPOTrainer implements (sigmoid, ipo, hinge, robust, ...), or several combined, e.g.
    `[sigmoid, sft]`: the `sft` term (NLL of the chosen answers, as in RPO) keeps generation from drifting.
    Soft labels shape the `sigmoid` term."""
    loss_weights: list[float] | None = None


def make_trainer(model, tokenizer, train_rows: list[dict], eval_rows: list[dict], cfg: Config, work_dir: Path):
    """DPO trainer for these rows (soft labels carried to the loss); held-out pairs are oriented by their label."""
    from datasets import Dataset
    from trl import DPOConfig

    from shipit.train.dpo_soft import trainer_class

    eval_rows = [{"prompt": r["prompt"], "chosen": r["chosen"] if r.get(SOFT_LABEL, 1.0) >= 0.5 else r["rejected"],
                  "rejected": r["rejected"] if r.get(SOFT_LABEL, 1.0) >= 0.5 else r["chosen"]} for r in eval_rows]
    args = DPOConfig(**trl_kwargs(cfg.trainer, work_dir / "checkpoints"), max_length=cfg.trainer.max_length,
                     beta=cfg.beta, loss_weights=cfg.loss_weights,
                     loss_type=[cfg.loss_type] if isinstance(cfg.loss_type, str) else cfg.loss_type,
                     per_device_eval_batch_size=cfg.trainer.per_device_train_batch_size)
    return trainer_class()(model=model, args=args, train_dataset=Dataset.from_list(train_rows),
                           eval_dataset=Dataset.from_list(eval_rows), processing_class=tokenizer,
                           peft_config=lora_config(cfg.peft), callbacks=[metrics_callback(work_dir / "metrics.jsonl")])


def run(cfg: Config, resume: bool = False) -> Path:
    """DPO-train `cfg.model` and write it to `cfg.output`."""
    from shipit.models.check import require_model
    from shipit.formats.mix import split_eval
    from shipit.registry import stage_output
    from shipit.train.common import as_trained, load_model, save_trained, training_tokenizer
    from shipit.train.dpo_soft import own_preference

    require_model(cfg.model, "model", hint="expected a Hugging Face model directory")
    rows = load_pairs(cfg.datasets, seed=cfg.trainer.seed)
    train_rows, eval_rows = split_eval(rows, cfg.eval_fraction, seed=cfg.trainer.seed)
    inputs = {"model": cfg.model, **data_paths(cfg.datasets)}
    with stage_output(cfg.output, "train/dpo", cfg, inputs, resume=resume, keep_on_error=True) as out:
        tokenizer = training_tokenizer(cfg.model)
        trainer = make_trainer(load_model(cfg.model, cfg.peft), tokenizer, train_rows, eval_rows, cfg, out.dir)
        with as_trained(cfg.trainer, trainer.model):  # before and after in one precision (the trainer's)
            before = own_preference(trainer)
        out.metrics.update(train_with_resume(trainer, out.dir, resume))
        with as_trained(cfg.trainer, trainer.model):
            after = own_preference(trainer)
        implicit = trainer.evaluate()
        out.metrics.update({"eval_margin_before": before["margin"], "eval_margin": after["margin"],
                            "eval_accuracy_before": before["accuracy"], "eval_accuracy": after["accuracy"],
                            # TRL's implicit-reward numbers (policy vs reference): 0 before training by construction
                            "eval_reward_margin": round(implicit["eval_rewards/margins"], 4),
                            "eval_reward_accuracy": round(implicit["eval_rewards/accuracies"], 4),
                            "soft_labels": sum(r[SOFT_LABEL] < 1 for r in rows)})
        save_trained(trainer.model, tokenizer, out.dir, cfg.peft, trainer)
    return cfg.output
