"""Group relative policy optimisation with TRL's GRPOTrainer and rule-based or reward-model rewards."""

from __future__ import annotations

import sys
from pathlib import Path

from pydantic import Field, model_validator

from shipit.train.common import StageConfig, TrainerSettings, lora_config, metrics_callback, train_with_resume, \
    trl_kwargs


class Config(StageConfig):
    """GRPO: sample `num_generations` answers per prompt, score them, and push the policy towards the better ones."""

    prompts: list[Path] = Field(min_length=1)
    """JSONL rows with `prompt` (a user message) or `messages` (the first user turn is used)."""
    reward_functions: list[str] = []
    """Built-in reward names (answer_format, refuses, brevity) or `package.module:function`."""
    reward_model: Path | None = None
    """A sequence-classification reward model directory (from `shipit train reward`)."""
    reward_weights: list[float] | None = None
    num_generations: int = Field(4, ge=2)
    max_completion_length: int = Field(32, ge=1)
    temperature: float = Field(1.0, gt=0)
    beta: float = Field(0.0, ge=0)
    """KL penalty against the input model (0 disables the reference model, as TRL defaults)."""
    use_vllm: bool = False
    """Generate with vLLM (TRL's colocate mode; GPU machines)."""
    trainer: TrainerSettings = TrainerSettings(learning_rate=1e-5, per_device_train_batch_size=8, logging_steps=1)

    @model_validator(mode="after")
    def _some_reward(self):
        if not self.reward_functions and self.reward_model is None:
            raise ValueError("give reward_functions, a reward_model, or both")
        n = len(self.reward_functions) + (self.reward_model is not None)
        if self.reward_weights is not None and len(self.reward_weights) != n:
            raise ValueError(f"reward_weights has {len(self.reward_weights)} entries for {n} rewards")
        return self


def load_prompts(paths: list[Path]) -> list[str]:
    """User prompts from JSONL rows with `prompt` or `messages`."""
    from shipit.config import read_jsonl
    from shipit.errors import UserError

    out = []
    for path in paths:
        for i, row in enumerate(read_jsonl(path, what="prompts"), 1):
            if "prompt" in row and isinstance(row["prompt"], str):
                out.append(row["prompt"])
            elif "messages" in row:
                out.append(next(m["content"] for m in row["messages"] if m["role"] == "user"))
            else:
                raise UserError(f"{path}:{i}: expected a 'prompt' string or 'messages'; has {', '.join(row)}")
    return out


def grpo_args(cfg: Config):
    """TRL's GRPOConfig for `cfg`, built before the stage's output exists (the caller sets `output_dir`), so its
    batch-shape error becomes one line naming shipit's fields and leaves nothing behind."""
    from trl import GRPOConfig

    from shipit.errors import UserError

    try:
        return GRPOConfig(**trl_kwargs(cfg.trainer, Path("checkpoints")), num_generations=cfg.num_generations,
                          max_completion_length=cfg.max_completion_length, temperature=cfg.temperature,
                          beta=cfg.beta, reward_weights=cfg.reward_weights, use_vllm=cfg.use_vllm,
                          vllm_mode="colocate")
    except ValueError as exc:
        if "divisible by num_generations" not in str(exc):
            raise
        t = cfg.trainer
        raise UserError(f"trainer.per_device_train_batch_size ({t.per_device_train_batch_size}) x "
                        f"trainer.gradient_accumulation_steps ({t.gradient_accumulation_steps}) x processes must be "
                        f"a multiple of num_generations ({cfg.num_generations}), so that a step holds every "
                        f"completion of its prompts; e.g. --set trainer.per_device_train_batch_size="
                        f"{cfg.num_generations}") from None


def run(cfg: Config, resume: bool = False) -> Path:
    """GRPO-train `cfg.model`; the manifest holds the mean reward of the first and last steps."""
    from datasets import Dataset
    from trl import GRPOTrainer

    from shipit.config import require_path
    from shipit.models.check import require_model
    from shipit.registry import stage_output
    from shipit.train.common import load_model, save_trained, training_tokenizer
    from shipit.train.rewards import as_trl_reward

    require_model(cfg.model, "model", hint="expected a Hugging Face model directory")
    rewards = [as_trl_reward(name) for name in cfg.reward_functions]
    if cfg.reward_model is not None:
        rewards.append(str(require_path(cfg.reward_model, "reward_model", kind="dir")))
    prompts = [{"prompt": [{"role": "user", "content": p}]} for p in load_prompts(cfg.prompts)]
    inputs = {"model": cfg.model, **{f"prompts{i}": p for i, p in enumerate(cfg.prompts)}}
    if cfg.reward_model is not None:
        inputs["reward_model"] = cfg.reward_model
    args = grpo_args(cfg)
    with stage_output(cfg.output, "train/grpo", cfg, inputs, resume=resume, keep_on_error=True) as out:
        args.output_dir = str(out.dir / "checkpoints")
        tokenizer = training_tokenizer(cfg.model)
        trainer = GRPOTrainer(model=load_model(cfg.model, cfg.peft), reward_funcs=rewards, args=args,
                              train_dataset=Dataset.from_list(prompts), processing_class=tokenizer,
                              peft_config=lora_config(cfg.peft),
                              callbacks=[metrics_callback(out.dir / "metrics.jsonl")])
        out.metrics.update(train_with_resume(trainer, out.dir, resume))
        logged = [r["reward"] for r in trainer.state.log_history if "reward" in r]
        k = max(1, len(logged) // 4)
        out.metrics.update({"reward_first": round(sum(logged[:k]) / k, 4), "reward_last": round(sum(logged[-k:]) / k, 4)})
        no_signal = [r["frac_reward_zero_std"] for r in trainer.state.log_history if "frac_reward_zero_std" in r]
        if no_signal:
            out.metrics["frac_reward_zero_std"] = round(sum(no_signal) / len(no_signal), 4)
            if min(no_signal) == 1.0:
                print(f"warning: at every logged step each prompt's {cfg.num_generations} completions got equal "
                      f"rewards (mean {out.metrics['reward_last']}), so GRPO had no signal and the model did not "
                      f"learn; use rewards that tell this model's answers apart (e.g. SFT it into the answer form "
                      f"first)",
                      file=sys.stderr, flush=True)
        save_trained(trainer.model, tokenizer, out.dir, cfg.peft, trainer)
    return cfg.output
