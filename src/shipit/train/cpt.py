"""Continued pretraining (post-pretraining): domain text mixed with general text by token ratio, via TRL."""

from __future__ import annotations

import random
from pathlib import Path

from pydantic import Field, field_validator

from shipit.config import read_jsonl
from shipit.formats.mix import DatasetSpec, data_paths
from shipit.models.check import require_model
from shipit.train.common import StageConfig, TrainerSettings


class Config(StageConfig):
    """Post-pretraining on domain text, with general text mixed in so the model does not forget.

    `mix_ratio` is domain:general in tokens (the default 1:5 keeps general perplexity near where it was;
    `1:0` trains on domain text alone). Held-out sets measure the domain gain and the general retention.
    """

    domain: list[DatasetSpec] = Field(min_length=1)
    """JSONL `{"text"}` rows of domain text (chat rows are used as plain text, one turn per line)."""
    general: list[DatasetSpec] = []
    """JSONL `{"text"}` rows of general text to mix in (required unless mix_ratio is 1:0)."""
    mix_ratio: str = "1:5"
    domain_heldout: Path
    general_heldout: Path
    trainer: TrainerSettings = TrainerSettings(learning_rate=5e-4, num_train_epochs=1.0)

    @field_validator("mix_ratio", mode="before")
    @classmethod
    def _ratio(cls, v):
        if isinstance(v, int):  # YAML 1.1 read an unquoted 1:5 as the base-60 number 65
            raise ValueError(f"got the number {v}; quote the ratio so YAML keeps it as text, e.g. mix_ratio: \"1:5\"")
        parts = v.split(":") if isinstance(v, str) else []
        try:
            ok = len(parts) == 2 and float(parts[0]) > 0 and float(parts[1]) >= 0
        except ValueError:
            ok = False
        if not ok:
            raise ValueError(f"mix_ratio must look like 'domain:general' in tokens, e.g. '1:5' or '1:0'")
        return v

    @property
    def general_per_domain(self) -> float:
        d, g = (float(x) for x in self.mix_ratio.split(":"))
        return g / d


def _texts(specs: list[DatasetSpec]) -> list[str]:
    """Plain text of every row: `text`, or a chat row's turns joined by newlines (QA-form text for knowledge)."""
    from shipit.formats.mix import row_format
    from shipit.errors import UserError

    out = []
    for s in specs:
        texts = []
        for i, r in enumerate(read_jsonl(s.path, what="dataset"), 1):
            fmt = row_format(r)
            if fmt == "unknown":
                raise UserError(f"{s.path}:{i}: row has neither 'text' nor 'messages'; add one of them")
            texts.append(r["text"] if fmt == "text" else "\n".join(m["content"] for m in r["messages"]))
        whole, frac = divmod(s.weight, 1.0)
        out += texts * int(whole) + texts[:round(frac * len(texts))]
    return out


def mix_by_tokens(domain: list[str], general: list[str], ratio: float, count, seed: int = 0) -> list[str]:
    """Domain texts plus general texts (cycled if needed) until general tokens ~= ratio x domain tokens."""
    rng = random.Random(seed)
    want = ratio * sum(count(t) for t in domain)
    picked, got, pool = [], 0, []
    while got < want and general:
        if not pool:
            pool = general[:]
            rng.shuffle(pool)
        t = pool.pop()
        picked.append(t)
        got += count(t)
    mixed = domain + picked
    rng.shuffle(mixed)
    return mixed


def run(cfg: Config, resume: bool = False) -> Path:
    """Post-pretrain `cfg.model` on the domain/general mix; the manifest holds domain gain and general retention."""

    from shipit.models.perplexity import perplexity
    from shipit.errors import UserError
    from shipit.registry import stage_output
    from shipit.train.common import as_trained, load_model, save_trained, training_tokenizer
    from shipit.train.sft import fit

    require_model(cfg.model, "model", hint="expected a Hugging Face model directory")
    if cfg.general_per_domain > 0 and not cfg.general:
        raise UserError(f"field 'general': mix_ratio {cfg.mix_ratio} needs general datasets (or set mix_ratio: '1:0')")
    domain, general = _texts(cfg.domain), _texts(cfg.general)
    held_d = [r["text"] for r in read_jsonl(cfg.domain_heldout, ["text"], what="domain_heldout")]
    held_g = [r["text"] for r in read_jsonl(cfg.general_heldout, ["text"], what="general_heldout")]
    inputs = {"model": cfg.model, **data_paths(cfg.domain + cfg.general)}
    with stage_output(cfg.output, "train/cpt", cfg, inputs, resume=resume, keep_on_error=True) as out:
        tokenizer = training_tokenizer(cfg.model)
        model = load_model(cfg.model, cfg.peft)
        with as_trained(cfg.trainer, model):  # before and after in one precision (the trainer's)
            before = perplexity(model, tokenizer, held_d), perplexity(model, tokenizer, held_g)
        count = lambda t: len(tokenizer(t)["input_ids"])  # noqa: E731
        rows = [{"text": t} for t in mix_by_tokens(domain, general, cfg.general_per_domain, count, cfg.trainer.seed)]
        general_tokens = sum(count(r["text"]) for r in rows) - sum(count(t) for t in domain)
        trainer, metrics = fit(model, tokenizer, rows, [], cfg.trainer, out.dir, resume=resume, peft=cfg.peft)
        model = trainer.model
        with as_trained(cfg.trainer, model):
            after = perplexity(model, tokenizer, held_d), perplexity(model, tokenizer, held_g)
        out.metrics.update(metrics)
        out.metrics.update({
            "domain_ppl_before": round(before[0], 3), "domain_ppl_after": round(after[0], 3),
            "general_ppl_before": round(before[1], 3), "general_ppl_after": round(after[1], 3),
            "domain_ppl_gain": round(before[0] / after[0], 3),
            "general_ppl_retention": round(before[1] / after[1], 3),
            "domain_tokens": sum(count(t) for t in domain), "general_tokens": general_tokens,
        })
        save_trained(model, tokenizer, out.dir, cfg.peft, trainer)
    return cfg.output
