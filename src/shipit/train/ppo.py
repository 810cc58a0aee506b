"""PPO for language models, owned by shipit (TRL 1.13+ no longer ships a PPO trainer).

One iteration: sample completions for a batch of prompts with the policy; score them (reward model or function);
subtract a per-token KL penalty against a frozen reference; estimate advantages with GAE from a value model; then
a few epochs of clipped policy and value updates on minibatches. The config sits beside the trainer, as in TRL.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from shipit.config import StrictModel
from shipit.train.common import ModelStageConfig


class PPOSettings(StrictModel):
    """PPO hyper-parameters (defaults suit small models; see Ziegler et al. 2019 and Ouyang et al. 2022)."""

    iterations: int = Field(20, ge=1)
    """Rollout + update rounds."""
    rollout_batch_size: int = Field(16, ge=1)
    mini_batch_size: int = Field(8, ge=1)
    ppo_epochs: int = Field(2, ge=1)
    max_new_tokens: int = Field(16, ge=1)
    temperature: float = Field(1.0, gt=0)
    learning_rate: float = Field(1e-4, gt=0)
    value_learning_rate: float = Field(1e-4, gt=0)
    clip_range: float = Field(0.2, gt=0)
    clip_range_value: float = Field(0.2, gt=0)
    gamma: float = Field(1.0, ge=0, le=1)
    lam: float = Field(0.95, ge=0, le=1)
    kl_coef: float = Field(0.05, ge=0)
    kl_control: Literal["fixed", "adaptive"] = "fixed"
    target_kl: float = Field(1.0, gt=0)
    """Adaptive control: the per-sequence KL the coefficient steers towards."""
    kl_horizon: int = Field(10000, ge=1)
    max_grad_norm: float = Field(1.0, gt=0)
    whiten_advantages: bool = True
    save_every: int = Field(10, ge=1)
    """Checkpoint every this many iterations (a killed run resumes from it)."""
    seed: int = 0


class Config(ModelStageConfig):
    """A PPO run: policy model, prompts, a reward (model or functions), and PPO settings. With `peft`, LoRA adapters
    are trained on the policy and the reference is the same model with adapters disabled."""

    prompts: list[Path] = Field(min_length=1)
    """JSONL rows with `prompt` (a user message) or `messages` (the first user turn is used)."""
    reward_functions: list[str] = []
    """Built-in reward names (answer_format, refuses, brevity) or `package.module:function`; their sum is the reward."""
    reward_model: Path | None = None
    ppo: PPOSettings = PPOSettings()

    @model_validator(mode="after")
    def _one_reward(self):
        if bool(self.reward_functions) == (self.reward_model is not None):
            raise ValueError("give reward_functions or a reward_model (one of the two)")
        return self


def masked_mean(x, mask, dim=None):
    """Mean of `x` where `mask` is 1."""
    return (x * mask).sum(dim) / mask.sum(dim).clamp(min=1)


def masked_whiten(x, mask):
    """Zero-mean, unit-variance `x` over the masked entries."""
    mean = masked_mean(x, mask)
    var = masked_mean((x - mean) ** 2, mask)
    return (x - mean) * (var + 1e-8).rsqrt() * mask


def gae(rewards, values, mask, gamma: float, lam: float):
    """Generalised advantage estimates and returns over completion tokens (B x T tensors)."""
    import torch

    adv = torch.zeros_like(rewards)
    last = torch.zeros(rewards.shape[0], device=rewards.device)
    T = rewards.shape[1]
    for t in reversed(range(T)):
        next_v = values[:, t + 1] * mask[:, t + 1] if t + 1 < T else torch.zeros_like(last)
        delta = rewards[:, t] + gamma * next_v - values[:, t]
        last = (delta + gamma * lam * last) * mask[:, t]
        adv[:, t] = last
    return adv, (adv + values) * mask


class ValueModel:
    """A scalar value per position: the policy's transformer body (a separate copy) plus a linear head."""

    def __new__(cls, path: Path):
        import torch
        from transformers import AutoModel

        class _Value(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.body = AutoModel.from_pretrained(path, dtype=torch.float32)
                self.head = torch.nn.Linear(self.body.config.hidden_size, 1)
                torch.nn.init.zeros_(self.head.weight), torch.nn.init.zeros_(self.head.bias)

            def forward(self, input_ids, attention_mask, position_ids):
                h = self.body(input_ids=input_ids, attention_mask=attention_mask,
                              position_ids=position_ids).last_hidden_state
                return self.head(h).squeeze(-1)

        return _Value()


class PPOTrainer:
    """Rollouts, rewards, GAE and clipped updates for a causal LM policy."""

    def __init__(self, cfg: Config, prompts: list[str], reward_fn, work_dir: Path):
        import copy

        import torch

        from shipit.device import torch_device
        from shipit.train.common import load_model, lora_config, training_tokenizer

        self.cfg, self.s, self.prompts, self.reward_fn, self.work_dir = cfg, cfg.ppo, prompts, reward_fn, work_dir
        self.device = torch_device()
        torch.manual_seed(self.s.seed)
        self.rng = random.Random(self.s.seed)
        self.tok = training_tokenizer(cfg.model)
        self.tok.padding_side = "left"
        self.policy = load_model(cfg.model, cfg.peft).to(self.device)
        if cfg.peft is not None:
            from peft import get_peft_model

            self.policy = get_peft_model(self.policy, lora_config(cfg.peft))
            self.ref = None  # the reference is the policy with its adapters disabled
        else:
            self.ref = copy.deepcopy(self.policy).eval().requires_grad_(False)
        self.value = ValueModel(cfg.model).to(self.device)
        trainable = [p for p in self.policy.parameters() if p.requires_grad]
        self.opt = torch.optim.AdamW(trainable, lr=self.s.learning_rate)
        self.vopt = torch.optim.AdamW(self.value.parameters(), lr=self.s.value_learning_rate)
        self.kl_coef = self.s.kl_coef
        self.iteration = 0
        self.history: list[dict] = []

    # --- scoring -------------------------------------------------------------------------------------------------
    def _logprobs(self, model, seq, attn, prompt_len: int):
        import torch

        pos = (attn.cumsum(-1) - 1).clamp(min=0)
        logits = model(input_ids=seq, attention_mask=attn, position_ids=pos).logits[:, prompt_len - 1:-1]
        logp = torch.log_softmax(logits.float() / self.s.temperature, -1)
        return logp.gather(-1, seq[:, prompt_len:, None]).squeeze(-1)

    def _values(self, seq, attn, prompt_len: int):
        pos = (attn.cumsum(-1) - 1).clamp(min=0)
        return self.value(seq, attn, pos)[:, prompt_len - 1:-1]

    def _ref_logprobs(self, seq, attn, prompt_len: int):
        if self.ref is not None:
            return self._logprobs(self.ref, seq, attn, prompt_len)
        with self.policy.disable_adapter():
            return self._logprobs(self.policy, seq, attn, prompt_len)

    # --- one iteration -------------------------------------------------------------------------------------------
    def rollout(self) -> dict:
        """Sample completions for a batch of prompts and compute everything the update needs."""
        import torch

        batch = self.rng.sample(self.prompts, min(self.s.rollout_batch_size, len(self.prompts)))
        texts = [self.tok.apply_chat_template([{"role": "user", "content": p}], tokenize=False,
                                              add_generation_prompt=True) for p in batch]
        enc = self.tok(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(self.device)
        P = enc["input_ids"].shape[1]
        self.policy.eval()
        with torch.no_grad():
            seq = self.policy.generate(**enc, do_sample=True, temperature=self.s.temperature, top_k=0, top_p=1.0,
                                       max_new_tokens=self.s.max_new_tokens, pad_token_id=self.tok.pad_token_id,
                                       eos_token_id=self.tok.eos_token_id)
            comp = seq[:, P:]
            is_eos = (comp == self.tok.eos_token_id).long()
            after_eos = (is_eos.cumsum(-1) - is_eos) > 0  # tokens after the first eos
            mask = (~after_eos).float()
            attn = torch.cat([enc["attention_mask"], mask.long()], dim=1)
            old_logp = self._logprobs(self.policy, seq, attn, P) * mask
            ref_logp = self._ref_logprobs(seq, attn, P) * mask
            values = self._values(seq, attn, P) * mask
        completions = self.tok.batch_decode(comp * mask.long() + self.tok.pad_token_id * (1 - mask.long()),
                                            skip_special_tokens=True)
        scores = torch.tensor(self.reward_fn(batch, completions), dtype=torch.float32, device=self.device)
        kl = (old_logp - ref_logp) * mask
        rewards = -self.kl_coef * kl
        last = (mask.sum(-1).long() - 1).clamp(min=0)
        rewards[torch.arange(len(batch)), last] += scores
        adv, returns = gae(rewards, values, mask, self.s.gamma, self.s.lam)
        if self.s.whiten_advantages:
            adv = masked_whiten(adv, mask)
        return dict(seq=seq, attn=attn, P=P, mask=mask, old_logp=old_logp, values=values, adv=adv, returns=returns,
                    scores=scores, kl=kl.sum(-1), completions=completions)

    def update(self, r: dict) -> dict:
        """Clipped policy and value updates over minibatches of one rollout."""
        import torch

        self.policy.train(), self.value.train()
        n = r["seq"].shape[0]
        stats = {"pg_loss": [], "vf_loss": [], "clipfrac": []}
        for _ in range(self.s.ppo_epochs):
            order = torch.randperm(n)
            for i in range(0, n, self.s.mini_batch_size):
                idx = order[i:i + self.s.mini_batch_size]
                seq, attn, m = r["seq"][idx], r["attn"][idx], r["mask"][idx]
                logp = self._logprobs(self.policy, seq, attn, r["P"])
                ratio = torch.exp(logp - r["old_logp"][idx])
                adv = r["adv"][idx]
                pg = torch.max(-adv * ratio, -adv * ratio.clamp(1 - self.s.clip_range, 1 + self.s.clip_range))
                pg_loss = masked_mean(pg, m)
                self.opt.zero_grad()
                pg_loss.backward()
                torch.nn.utils.clip_grad_norm_([p for p in self.policy.parameters() if p.requires_grad],
                                               self.s.max_grad_norm)
                self.opt.step()
                v, v_old, ret = self._values(seq, attn, r["P"]), r["values"][idx], r["returns"][idx]
                v_clip = v_old + (v - v_old).clamp(-self.s.clip_range_value, self.s.clip_range_value)
                vf_loss = 0.5 * masked_mean(torch.max((v - ret) ** 2, (v_clip - ret) ** 2), m)
                self.vopt.zero_grad()
                vf_loss.backward()
                torch.nn.utils.clip_grad_norm_(self.value.parameters(), self.s.max_grad_norm)
                self.vopt.step()
                stats["pg_loss"].append(pg_loss.item())
                stats["vf_loss"].append(vf_loss.item())
                stats["clipfrac"].append(masked_mean(((ratio - 1).abs() > self.s.clip_range).float(), m).item())
        return {k: sum(v) / len(v) for k, v in stats.items()}

    def _adapt_kl(self, kl: float, n: int) -> None:
        if self.s.kl_control == "adaptive":
            error = max(-0.2, min(0.2, kl / self.s.target_kl - 1))
            self.kl_coef *= 1 + error * n / self.s.kl_horizon

    # --- checkpoints ---------------------------------------------------------------------------------------------
    @property
    def ckpt(self) -> Path:
        return self.work_dir / "checkpoints" / "ppo.pt"

    def save_checkpoint(self) -> None:
        """Write the full training state (atomically) so a killed run can resume."""
        import torch

        self.ckpt.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.ckpt.with_suffix(".tmp")
        torch.save({"iteration": self.iteration, "policy": self.policy.state_dict(), "value": self.value.state_dict(),
                    "opt": self.opt.state_dict(), "vopt": self.vopt.state_dict(), "kl_coef": self.kl_coef,
                    "history": self.history, "rng": self.rng.getstate(), "torch_rng": torch.get_rng_state()}, tmp)
        tmp.replace(self.ckpt)

    def load_checkpoint(self) -> bool:
        """Restore the state written by save_checkpoint; False when there is none."""
        import torch

        if not self.ckpt.exists():
            return False
        state = torch.load(self.ckpt, weights_only=False)
        self.policy.load_state_dict(state["policy"]), self.value.load_state_dict(state["value"])
        self.opt.load_state_dict(state["opt"]), self.vopt.load_state_dict(state["vopt"])
        self.iteration, self.kl_coef, self.history = state["iteration"], state["kl_coef"], state["history"]
        self.rng.setstate(state["rng"]), torch.set_rng_state(state["torch_rng"])
        return True

    def train(self, resume: bool = False) -> list[dict]:
        """Run the remaining iterations (with a progress bar); returns one stats row per iteration."""
        from tqdm.auto import tqdm

        if resume and self.load_checkpoint():
            print(f"resumed PPO from iteration {self.iteration}", flush=True)
        bar = tqdm(total=self.s.iterations, initial=self.iteration, desc="ppo")
        while self.iteration < self.s.iterations:
            r = self.rollout()
            stats = self.update(r)
            row = {"iteration": self.iteration + 1, "reward": r["scores"].mean().item(),
                   "kl": r["kl"].mean().item(), "kl_coef": self.kl_coef, **stats}
            self._adapt_kl(row["kl"], len(r["scores"]))
            self.history.append(row)
            with open(self.work_dir / "metrics.jsonl", "a") as f:
                f.write(json.dumps(row) + "\n")
            self.iteration += 1
            bar.update(1)
            bar.set_postfix(reward=f"{row['reward']:.3f}", kl=f"{row['kl']:.3f}")
            if self.iteration % self.s.save_every == 0 and self.iteration < self.s.iterations:
                self.save_checkpoint()
        bar.close()
        return self.history


def run(cfg: Config, resume: bool = False) -> Path:
    """PPO-train `cfg.model`; the manifest holds mean reward and KL at the start and the end."""
    import shutil

    from shipit.config import require_path
    from shipit.models.check import require_model
    from shipit.registry import stage_output
    from shipit.train.common import save_trained
    from shipit.train.grpo import load_prompts
    from shipit.models.reward import reward_model_scorer
    from shipit.train.rewards import resolve_reward

    from shipit.errors import UserError
    from shipit.registry import world_size

    if world_size() > 1:
        # Each rank would roll out, update and save its own copy: refuse rather than train N unsynchronised models.
        raise UserError(f"train ppo: shipit's PPO runs in one process, and this launch has {world_size()}; run it "
                        "without accelerate launch / torchrun (or use grpo, which trains on several)")
    require_model(cfg.model, "model", hint="expected a Hugging Face model directory")
    prompts = load_prompts(cfg.prompts)
    if cfg.reward_model is not None:
        from shipit.device import torch_device

        reward_fn = reward_model_scorer(require_path(cfg.reward_model, "reward_model", kind="dir"), torch_device())
    else:
        fns = [resolve_reward(name) for name in cfg.reward_functions]

        def reward_fn(prompts, completions):
            return [sum(col) for col in zip(*(fn(prompts, completions) for fn in fns))]
    inputs = {"model": cfg.model, **{f"prompts{i}": p for i, p in enumerate(cfg.prompts)}}
    if cfg.reward_model is not None:
        inputs["reward_model"] = cfg.reward_model
    with stage_output(cfg.output, "train/ppo", cfg, inputs, resume=resume, keep_on_error=True) as out:
        trainer = PPOTrainer(cfg, prompts, reward_fn, out.dir)
        history = trainer.train(resume=resume)
        k = max(1, len(history) // 4)
        mean = lambda rows, key: round(sum(r[key] for r in rows) / len(rows), 4)  # noqa: E731
        out.metrics.update({"iterations": len(history), "reward_first": mean(history[:k], "reward"),
                            "reward_last": mean(history[-k:], "reward"), "kl_last": mean(history[-k:], "kl"),
                            "kl_coef_last": round(trainer.kl_coef, 5)})
        shutil.rmtree(out.dir / "checkpoints", ignore_errors=True)
        save_trained(trainer.policy, trainer.tok, out.dir, cfg.peft)
    return cfg.output
