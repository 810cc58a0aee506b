"""Domain knowledge on held-out entities: a cloze probe (is the fact stored?), chat QA by likelihood and by greedy
answer, exact or containing the fact (can the model answer with it?), each beside chance."""

from __future__ import annotations

import re

from shipit.config import read_jsonl
from shipit.models.likelihood import choice_logprobs


def extract_answer(text: str) -> str:
    """The bare value of an `Answer: <value>.` reply (or the first line, lowercased, when the format is off)."""
    m = re.search(r"Answer:\s*(.+?)\.?\s*$", text.splitlines()[0] if text else "")
    return (m.group(1) if m else text.split("\n")[0]).strip().rstrip(".").lower()


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
                                 what="bench data"), group="entity")
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
