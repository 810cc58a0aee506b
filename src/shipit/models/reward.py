"""Scoring (prompt, completion) pairs with a reward model: used by training (PPO), the data engine and the bench."""

from __future__ import annotations

from typing import Callable

RewardFn = Callable[[list[str], list[str]], list[float]]


def reward_model_scorer(path, device: str = "cpu") -> RewardFn:
    """Score (prompt, completion) pairs with a sequence-classification reward model and its chat template."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForSequenceClassification.from_pretrained(path).to(device).eval()

    def score(prompts: list[str], completions: list[str]) -> list[float]:
        texts = [tok.apply_chat_template([{"role": "user", "content": p}, {"role": "assistant", "content": c}],
                                         tokenize=False) for p, c in zip(prompts, completions)]
        enc = tok(texts, return_tensors="pt", padding=True, truncation=True, max_length=512,
                  add_special_tokens=False).to(device)
        with torch.no_grad():
            return model(**enc).logits[:, 0].float().tolist()

    return score
