"""Domain QA exact match on held-out entities, reported beside its chance level."""

from __future__ import annotations

import re

from shipit.config import read_jsonl


def extract_answer(text: str) -> str:
    """The bare value of an `Answer: <value>.` reply (or the first line, lowercased, when the format is off)."""
    m = re.search(r"Answer:\s*(.+?)\.?\s*$", text.splitlines()[0] if text else "")
    return (m.group(1) if m else text.split("\n")[0]).strip().rstrip(".").lower()


def domain_qa(model, tokenizer, ctx) -> dict:
    """Exact match of greedy answers to questions about facts seen only in the domain corpus."""
    from shipit.bench.generate import chat_generate

    rows = read_jsonl(ctx.data_dir / "domain_qa_heldout.jsonl", ["question", "answer", "choices"], what="bench data")
    answers = chat_generate(model, tokenizer, [r["question"] for r in rows], max_new_tokens=16)
    em = sum(extract_answer(a) == r["answer"].lower() for a, r in zip(answers, rows)) / len(rows)
    chance = sum(1 / len(r["choices"]) for r in rows) / len(rows)
    return {"exact_match": round(em, 4), "chance": round(chance, 4), "score": round(em, 4)}
