"""Held-out perplexity tasks; the score is 1 - ln(ppl)/ln(vocab): 0 for a uniform guess, 1 for certainty."""

from __future__ import annotations

import math
from pathlib import Path

from shipit.config import read_jsonl


def _ppl_task(model, tokenizer, path: Path) -> dict:
    from shipit.models.perplexity import perplexity

    texts = [r["text"] for r in read_jsonl(path, ["text"], what="bench data")]
    ppl = perplexity(model, tokenizer, texts)
    return {"ppl": round(ppl, 3), "score": round(max(0.0, 1 - math.log(ppl) / math.log(len(tokenizer))), 4)}


def general_ppl(model, tokenizer, ctx) -> dict:
    """Perplexity on held-out general text (the forgetting check)."""
    return _ppl_task(model, tokenizer, ctx.data_dir / "general_heldout.jsonl")


def domain_ppl(model, tokenizer, ctx) -> dict:
    """Perplexity on held-out domain prose (knowledge injection)."""
    return _ppl_task(model, tokenizer, ctx.data_dir / "domain_heldout.jsonl")
