"""Log-probabilities of given continuations of a text under a causal language model: multiple-choice answers
(bench), and a judge's likelihood of an answer given its prompt (the data engine's `pmi` verdict)."""

from __future__ import annotations

import inspect


def choice_logprobs(model, tokenizer, head: str, continuations: list[str]) -> list[float]:
    """Summed log-probability of each continuation after the text `head` (lm-eval's `acc`)."""
    from transformers import PreTrainedModel

    head_ids = tokenizer(head, add_special_tokens=False)["input_ids"]
    tails = [tokenizer(c, add_special_tokens=False)["input_ids"] for c in continuations]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    if head_ids and isinstance(model, PreTrainedModel):  # it keeps a KV cache (ONNX Runtime's model here does not)
        return _after_shared_head(model, head_ids, tails, pad)
    return _each_whole(model, head_ids, tails, pad)


def _after_shared_head(model, head_ids: list[int], tails: list[list[int]], pad: int) -> list[float]:
    """The head through the model once, its KV cache copied to every continuation: a chat-rendered question is 3x
    the length of a choice, so scoring 12 choices whole ran the head 12 times (the multiple choice was 60% of
    domain_qa's time on SmolLM2; this path is 1.78x faster there, benchmarks/RESULTS.md)."""
    import torch

    device = next(model.parameters()).device
    width = max(map(len, tails))
    ids = torch.full((len(tails), width), pad)
    mask = torch.zeros(len(tails), len(head_ids) + width, dtype=torch.long)
    mask[:, :len(head_ids)] = 1
    for i, t in enumerate(tails):  # padded on the right: a real token's position never depends on the padding
        ids[i, :len(t)] = torch.tensor(t)
        mask[i, len(head_ids):len(head_ids) + len(t)] = 1
    with torch.no_grad():
        first = model(input_ids=torch.tensor([head_ids], device=device), use_cache=True)
        cache = first.past_key_values
        cache.batch_repeat_interleave(len(tails))
        logits = model(input_ids=ids.to(device), attention_mask=mask.to(device), past_key_values=cache,
                       use_cache=True).logits
    logp_first = first.logits[0, -1].float().log_softmax(-1)  # predicts every continuation's first token
    logp = logits.float().log_softmax(-1)  # position j predicts token j + 1
    return [(logp_first[t[0]] + logp[i, torch.arange(len(t) - 1), torch.tensor(t[1:])].sum()).item()
            for i, t in enumerate(tails)]


def _each_whole(model, head_ids: list[int], tails: list[list[int]], pad: int) -> list[float]:
    """Every head + continuation as one padded batch, in one forward pass (models without a KV cache: ONNX)."""
    import torch

    width = len(head_ids) + max(map(len, tails))
    ids = torch.full((len(tails), width), pad)
    mask = torch.zeros_like(ids)
    for i, t in enumerate(tails):
        ids[i, :len(head_ids) + len(t)] = torch.tensor(head_ids + t)
        mask[i, :len(head_ids) + len(t)] = 1
    device = next(model.parameters()).device
    # Only the positions that predict a continuation token need the vocabulary projection (on a 49k-token vocabulary
    # it costs as much as the rest of the model): the last `keep` positions, where the model takes `logits_to_keep`.
    keep = max(map(len, tails)) + 1
    kwargs = {"logits_to_keep": keep} if "logits_to_keep" in inspect.signature(model.forward).parameters else {}
    with torch.no_grad():
        logits = model(input_ids=ids.to(device), attention_mask=mask.to(device), **kwargs).logits
    logp = logits.float().log_softmax(-1)
    first = logp.shape[1] - width + len(head_ids) - 1  # the position predicting each continuation's first token
    out = []
    for i, t in enumerate(tails):
        pos = torch.arange(first, first + len(t))
        out.append(logp[i, pos, torch.tensor(t)].sum().item())
    return out
