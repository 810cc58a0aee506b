"""Token-level perplexity of a causal LM on held-out text."""

from __future__ import annotations

import math


def perplexity(model, tokenizer, texts: list[str], max_length: int = 256, batch_size: int = 16) -> float:
    """exp(mean next-token negative log-likelihood) over all tokens of `texts` (each truncated to max_length)."""
    import torch

    model.eval()
    device = next(model.parameters()).device
    side, tokenizer.padding_side = tokenizer.padding_side, "right"  # positions start at 0 for every text
    if tokenizer.pad_token is None:  # SmolLM2 ships without one; padded positions are masked out of the loss
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
    total_nll, total_tokens = 0.0, 0
    with torch.no_grad():
        for i in range(0, len(texts), batch_size):
            enc = tokenizer(texts[i:i + batch_size], return_tensors="pt", padding=True, truncation=True,
                            max_length=max_length).to(device)
            logits = model(**enc).logits[:, :-1].float()
            target = enc["input_ids"][:, 1:]
            mask = enc["attention_mask"][:, 1:].bool()
            nll = torch.nn.functional.cross_entropy(logits.transpose(1, 2), target, reduction="none")
            total_nll += nll[mask].sum().item()
            total_tokens += int(mask.sum())
    tokenizer.padding_side = side
    return math.exp(total_nll / max(total_tokens, 1))
