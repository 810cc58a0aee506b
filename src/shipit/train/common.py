"""Settings shared by every training stage, and the TRL keyword arguments they become."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import Field

from shipit.config import StrictModel

ReportTo = Literal["none", "tensorboard", "mlflow", "wandb", "trackio"]


class TrainerSettings(StrictModel):
    """Optimisation settings, passed through to TRL's config for the stage.

    `bf16` and `gradient_checkpointing` default to "auto": on for a CUDA GPU that supports them, off on CPU,
    so the same recipe runs on a laptop and on a GPU node.
    """

    learning_rate: float = Field(5e-4, gt=0)
    max_steps: int = -1
    """Stop after this many optimizer steps; -1 trains for `num_train_epochs`."""
    num_train_epochs: float = Field(1.0, gt=0)
    per_device_train_batch_size: int = Field(16, ge=1)
    gradient_accumulation_steps: int = Field(1, ge=1)
    max_length: int = Field(128, ge=8)
    """Tokens per packed sequence (or truncation length when packing is off)."""
    warmup_steps: int = Field(20, ge=0)
    lr_scheduler_type: Literal["cosine", "linear", "constant", "constant_with_warmup"] = "cosine"
    weight_decay: float = Field(0.0, ge=0)
    seed: int = 0
    logging_steps: int = Field(10, ge=1)
    save_steps: int = Field(50, ge=1)
    """Checkpoint every this many steps (a crashed run resumes from the last one)."""
    bf16: bool | Literal["auto"] = "auto"
    gradient_checkpointing: bool | Literal["auto"] = "auto"
    report_to: list[ReportTo] = ["none"]


def trl_kwargs(s: TrainerSettings, output_dir: Path) -> dict:
    """Keyword arguments common to TRL's configs (SFTConfig, DPOConfig, ...) for these settings."""
    from shipit.device import bf16_supported, has_cuda

    cuda = has_cuda()
    return dict(
        output_dir=str(output_dir),
        learning_rate=s.learning_rate,
        max_steps=s.max_steps,
        num_train_epochs=s.num_train_epochs,
        per_device_train_batch_size=s.per_device_train_batch_size,
        gradient_accumulation_steps=s.gradient_accumulation_steps,
        warmup_steps=s.warmup_steps,
        lr_scheduler_type=s.lr_scheduler_type,
        weight_decay=s.weight_decay,
        seed=s.seed,
        data_seed=s.seed,
        logging_steps=s.logging_steps,
        save_strategy="steps",
        save_steps=s.save_steps,
        save_total_limit=1,
        use_cpu=not cuda,
        bf16=bf16_supported() if s.bf16 == "auto" else s.bf16,
        gradient_checkpointing=cuda if s.gradient_checkpointing == "auto" else s.gradient_checkpointing,
        report_to=[r for r in s.report_to if r != "none"] or "none",
        dataloader_num_workers=0,
    )


def metrics_callback(path: Path):
    """A TrainerCallback that appends every log record (loss, lr, step) to `path` as JSONL."""
    from transformers import TrainerCallback

    class _MetricsToJsonl(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and state.is_world_process_zero:
                with open(path, "a") as f:
                    f.write(json.dumps({"step": state.global_step, **logs}) + "\n")

    return _MetricsToJsonl()


def last_checkpoint(output_dir: Path) -> str | None:
    """The newest `checkpoint-N` under `output_dir`, for resuming."""
    ckpts = sorted(Path(output_dir).glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[-1]))
    return str(ckpts[-1]) if ckpts else None


def loss_summary(log_history: list[dict]) -> dict:
    """First and last logged training loss (the headline 'did it learn' numbers)."""
    losses = [r["loss"] for r in log_history if "loss" in r]
    if not losses:
        return {}
    return {"train_loss_first": round(losses[0], 4), "train_loss_last": round(losses[-1], 4)}
