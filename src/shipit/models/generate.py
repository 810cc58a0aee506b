"""Batched chat generation with a Hugging Face model (the bench's reference backend): greedy, or sampled."""

from __future__ import annotations

import contextlib


def chat_generate(model, tokenizer, prompts: list[str], max_new_tokens: int = 32, batch_size: int = 64,
                  min_new_tokens: int = 0, temperature: float = 0.0, top_p: float = 1.0,
                  seed: int = 0, share_prefix: bool = True) -> list[str]:
    """Answers to single-turn user `prompts`, rendered with the tokenizer's chat template: greedy, or sampled at
    `temperature` > 0 (nucleus `top_p`, no top-k: as vLLM samples) with the random generator seeded by `seed`, so
    a rerun samples the same answers (the caller's random state is restored afterwards). 64 prompts a batch: on
    SmolLM2 in float32 on 2 cores, 128-133 tokens/s against 82-92 at 32 and 65-82 at 16, the same greedy answers
    (benchmarks/bench_generate_batch.py). The chat template's shared start runs once a batch (`prompt_batch`)."""
    import torch

    device = next(model.parameters()).device
    decoding = {"do_sample": True, "temperature": temperature, "top_p": top_p, "top_k": 0} if temperature > 0 \
        else {"do_sample": False}
    out = []
    with seeded(seed, device, enabled=temperature > 0):
        for i in range(0, len(prompts), batch_size):
            texts = [tokenizer.apply_chat_template([{"role": "user", "content": p}], tokenize=False,
                                                   add_generation_prompt=True) for p in prompts[i:i + batch_size]]
            enc = prompt_batch(model, tokenizer, texts, share_prefix)
            with torch.no_grad():
                gen = model.generate(**enc, max_new_tokens=max_new_tokens, **decoding,
                                     pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
                                     **({"min_new_tokens": min_new_tokens} if min_new_tokens else {}))
            out += tokenizer.batch_decode(gen[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
    return [o.strip() for o in out]


# The fewest leading tokens worth running once for a whole batch (a chat template's system prompt: 24 of the ~45
# tokens SmolLM2's template makes of a one-line request).
MIN_SHARED_PREFIX = 8


def prompt_batch(model, tokenizer, texts: list[str], share_prefix: bool = True) -> dict:
    """`model.generate` inputs for a batch of rendered prompts, padded on the left, so the new tokens start at
    `input_ids.shape[1]`. Where the texts start with the same >= MIN_SHARED_PREFIX tokens (the chat template's
    system prompt) and the model keeps a KV cache, those tokens run through the model once: their cache, copied to
    every row, comes as `past_key_values`, and the padding goes after them (masked; positions count real tokens
    only, so a row's answer does not change). SmolLM2's bench requests then cost about half the prompt compute."""
    import torch
    from transformers import PreTrainedModel
    from transformers.cache_utils import DynamicLayer

    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:  # SmolLM2 ships without one; padded positions are masked, so any token will do
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
    device = next(model.parameters()).device
    ids = tokenizer(texts, add_special_tokens=False)["input_ids"]
    shared = 0
    while shared < min(map(len, ids)) - 1 and all(row[shared] == ids[0][shared] for row in ids):
        shared += 1  # at least one token of each row left for generate to run

    def plain():
        return tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(device)

    if (not share_prefix or len(texts) < 2 or shared < MIN_SHARED_PREFIX or not isinstance(model, PreTrainedModel)
            or getattr(model.generation_config, "cache_implementation", None)):
        return plain()
    with torch.no_grad():
        cache = model(input_ids=torch.tensor([ids[0][:shared]], device=device), use_cache=True).past_key_values
    # Only full attention caches: a sliding window, or a recurrent state (linear attention, Mamba layers) that padding
    # in the middle would run through, goes left-padded as before.
    if not all(type(layer) is DynamicLayer for layer in getattr(cache, "layers", [None])):
        return plain()
    cache.batch_repeat_interleave(len(texts))
    width = max(map(len, ids))
    pads = [width - len(row) for row in ids]
    input_ids = torch.tensor([row[:shared] + [tokenizer.pad_token_id] * n + row[shared:] for row, n in zip(ids, pads)])
    mask = torch.tensor([[1] * shared + [0] * n + [1] * (len(row) - shared) for row, n in zip(ids, pads)])
    return {"input_ids": input_ids.to(device), "attention_mask": mask.to(device), "past_key_values": cache}


@contextlib.contextmanager
def seeded(seed: int, device, enabled: bool = True):
    """Torch's random generators (CPU, and `device` if it is CUDA) seeded with `seed` inside the block and restored
    after it, so seeded sampling neither depends on nor moves the caller's random state. A no-op when not enabled."""
    import torch

    with torch.random.fork_rng(devices=[device.index or 0] if device.type == "cuda" else [], enabled=enabled):
        if enabled:
            torch.manual_seed(seed)
        yield
