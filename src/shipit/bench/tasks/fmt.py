"""Format compliance: answers to held-out instructions in the trained shape (`conventions.answer_format`)."""

from __future__ import annotations

from shipit.config import read_jsonl


def format_compliance(model, tokenizer, ctx) -> dict:
    """Share of greedy answers that match the format exactly, and share that equal the reference."""
    from shipit.models.generate import chat_generate

    rows = read_jsonl(ctx.data_dir / "instructions_heldout.jsonl", ["messages"], what="bench data")
    answers = chat_generate(model, tokenizer, [r["messages"][0]["content"] for r in rows], max_new_tokens=24)
    ok = sum(ctx.conventions.is_formatted(a) for a in answers) / len(rows)
    exact = sum(a == r["messages"][1]["content"] for a, r in zip(answers, rows)) / len(rows)
    return {"compliance": round(ok, 4), "exact": round(exact, 4), "score": round(ok, 4)}
