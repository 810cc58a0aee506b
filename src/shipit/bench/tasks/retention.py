"""Retention: general-knowledge questions the base model answered correctly before training, asked again."""

from __future__ import annotations

import re

from shipit.config import read_jsonl
from shipit.errors import UserError


def answered(answer: str, accepted: list[str]) -> bool:
    """True when the answer contains one of the accepted strings (case-insensitive) where a word starts: not inside a
    word ("bell" in "Campbell") or a number ("7" in "17", "0 degrees" in "-18.0 degrees"), and a number accepted whole
    ("100" not in "1000")."""
    text = answer.lower().replace("\u2019", "'")
    return any(re.search(r"(?<![\w.])" + re.escape(a.lower()) + (r"(?![\d])" if a[-1:].isdigit() else ""), text)
               for a in accepted)


def retention(model, tokenizer, ctx) -> dict:
    """Share of `retention.jsonl` questions whose greedy chat answer contains an accepted answer. The rows are the
    ones the base model answered correctly when the set was selected, so the base model scores 1.0 and a trained
    model's rate is the share of that knowledge it kept; there is no chance level (free-form answers)."""
    from shipit.models.generate import chat_generate

    path = ctx.data_dir / "retention.jsonl"
    if not path.is_file():
        raise UserError(f"bench task 'retention': {path} not found; it needs {{\"question\", \"answers\"}} rows the "
                        f"base model answers correctly (write them with `python -m shipit.demo.retention_select MODEL "
                        f"--out {path}`, or drop the task)")
    rows = ctx.subset(read_jsonl(path, ["question", "answers"], what="bench data"))
    answers = chat_generate(model, tokenizer, [r["question"] for r in rows], max_new_tokens=32)
    rate = sum(answered(a, r["answers"]) for a, r in zip(answers, rows)) / len(rows)
    return {"retention_rate": round(rate, 4), "n": len(rows), "score": round(rate, 4)}
