"""Batched chat generation with a Hugging Face model (the bench's reference backend): greedy, or sampled."""

from __future__ import annotations

import contextlib


def chat_generate(model, tokenizer, prompts: list[str], max_new_tokens: int = 32, batch_size: int = 64,
                  min_new_tokens: int = 0, temperature: float = 0.0, top_p: float = 1.0,
                  seed: int = 0) -> list[str]:
    """Answers to single-turn user `prompts`, rendered with the tokenizer's chat template: greedy, or sampled at
    `temperature` > 0 (nucleus `top_p`, no top-k: as vLLM samples) with the random generator seeded by `seed`, so
    a rerun samples the same answers (the caller's random state is restored afterwards). 64 prompts a batch: on
    SmolLM2 in float32 on 2 cores, 128-133 tokens/s against 82-92 at 32 and 65-82 at 16, the same greedy answers
    (benchmarks/bench_generate_batch.py)."""
    import torch

    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:  # SmolLM2 ships without one; padded positions are masked, so any token will do
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
    device = next(model.parameters()).device
    decoding = {"do_sample": True, "temperature": temperature, "top_p": top_p, "top_k": 0} if temperature > 0 \
        else {"do_sample": False}
    out = []
    with seeded(seed, device, enabled=temperature > 0):
        for i in range(0, len(prompts), batch_size):
            texts = [tokenizer.apply_chat_template([{"role": "user", "content": p}], tokenize=False,
                                                   add_generation_prompt=True) for p in prompts[i:i + batch_size]]
            enc = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(device)
            with torch.no_grad():
                gen = model.generate(**enc, max_new_tokens=max_new_tokens, **decoding,
                                     pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
                                     **({"min_new_tokens": min_new_tokens} if min_new_tokens else {}))
            out += tokenizer.batch_decode(gen[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
    return [o.strip() for o in out]


@contextlib.contextmanager
def seeded(seed: int, device, enabled: bool = True):
    """Torch's random generators (CPU, and `device` if it is CUDA) seeded with `seed` inside the block and restored
    after it, so seeded sampling neither depends on nor moves the caller's random state. A no-op when not enabled."""
    import torch

    with torch.random.fork_rng(devices=[device.index or 0] if device.type == "cuda" else [], enabled=enabled):
        if enabled:
            torch.manual_seed(seed)
        yield
