"""Padding for calibration and verification batches, on tokenizers that ship without a pad token (SmolLM2, Llama 3)."""

from __future__ import annotations

from pathlib import Path

from shipit.errors import UserError


def with_pad_token(tokenizer, where: str | Path):
    """`tokenizer`, padding with its eos (else unk) token when it has no pad token; fails when it has neither.

    Only batching needs it: padded positions are masked out of every logit, loss and calibration statistic, so
    which token fills them does not matter. The saved output keeps the source tokenizer unchanged."""
    if tokenizer.pad_token is None:
        fill = tokenizer.eos_token or tokenizer.unk_token
        if fill is None:
            raise UserError(f"{where}: the tokenizer has no pad, eos or unk token to pad batches with; "
                            f"set pad_token in {Path(where) / 'tokenizer_config.json'}")
        tokenizer.pad_token = fill
    return tokenizer


def padded_tokenizer(path: Path):
    """The tokenizer of the model at `path`, able to pad (see with_pad_token)."""
    from transformers import AutoTokenizer

    return with_pad_token(AutoTokenizer.from_pretrained(path), path)
