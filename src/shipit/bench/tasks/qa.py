"""Domain knowledge on held-out entities: a cloze probe (is the fact stored?), chat QA by likelihood and by greedy
answer, exact or containing the fact (can the model answer with it?), each beside chance."""

from __future__ import annotations

import inspect
import re

from shipit.config import read_jsonl


def extract_answer(text: str) -> str:
    """The bare value of an `Answer: <value>.` reply (or the first line, lowercased, when the format is off)."""
    m = re.search(r"Answer:\s*(.+?)\.?\s*$", text.splitlines()[0] if text else "")
    return (m.group(1) if m else text.split("\n")[0]).strip().rstrip(".").lower()


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


def contains(answer: str, fact: str) -> bool:
    """True when the answer states the fact anywhere, case-insensitively (a real model answers in a sentence)."""
    return fact.lower() in answer.lower()


def pick(model, tokenizer, head: str, choices: list[str], template: str) -> str:
    """The choice whose `template.format(choice)` is likeliest after `head`."""
    scores = choice_logprobs(model, tokenizer, head, [template.format(c) for c in choices])
    return choices[scores.index(max(scores))]


def domain_qa(model, tokenizer, ctx) -> dict:
    """Held-out entities' facts, seen only in the domain corpus. `cloze_accuracy`: 1-of-N choice completing the start
    of a corpus sentence (the knowledge is stored); `mc_accuracy`: 1-of-N choice of the row's `answer_template`
    (default `Answer: {}.`) filled with each choice, after the chat-rendered question (the knowledge is usable in
    chat); `exact_match`: the greedy chat answer's value is the fact; `contains`: the greedy chat answer contains it.
    The score is the mean of the two multiple-choice accuracies."""
    from shipit.models.generate import chat_generate

    model.eval()
    rows = ctx.subset(read_jsonl(ctx.data_dir / "domain_qa_heldout.jsonl", ["question", "answer", "choices"],
                                 what="bench data"))
    # A sentence answer ("The patron animal of Caldrevin is the brindlecrab.") needs more tokens than `Answer: X.`;
    # rows without a template keep 16, so the house world's numbers are what they were.
    long = any(r.get("answer_template") for r in rows)
    answers = chat_generate(model, tokenizer, [r["question"] for r in rows], max_new_tokens=32 if long else 16)
    em = sum(extract_answer(a) == r["answer"].lower() for a, r in zip(answers, rows)) / len(rows)
    has = sum(contains(a, r["answer"]) for a, r in zip(answers, rows)) / len(rows)
    chat = [tokenizer.apply_chat_template([{"role": "user", "content": r["question"]}], tokenize=False,
                                          add_generation_prompt=True) for r in rows]
    mc = sum(pick(model, tokenizer, h, r["choices"], r.get("answer_template") or "Answer: {}.") == r["answer"]
             for h, r in zip(chat, rows))
    clozed = [r for r in rows if r.get("cloze")]
    cloze = sum(pick(model, tokenizer, r["cloze"], r["choices"], " {}.") == r["answer"] for r in clozed)
    chance = sum(1 / len(r["choices"]) for r in rows) / len(rows)
    out = {"exact_match": round(em, 4), "contains": round(has, 4), "mc_accuracy": round(mc / len(rows), 4),
           "chance": round(chance, 4)}
    if clozed:
        out["cloze_accuracy"] = round(cloze / len(clozed), 4)
    out["score"] = round((out["mc_accuracy"] + out.get("cloze_accuracy", out["mc_accuracy"])) / 2, 4)
    return out
