"""Prompts read from JSONL files (a field, or the first user message of chat rows), optionally filtered."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from shipit.config import StrictModel, read_jsonl
from shipit.errors import UserError


class PromptSource(StrictModel):
    """A JSONL file of prompts: `field` holds the prompt (or `messages`, whose first user turn is used)."""

    path: Path
    field: str = "prompt"
    topic_field: str | None = None
    """Row field used as the topic for topic-balanced sampling (e.g. `category`)."""
    where: dict[str, str] = {}
    """Keep rows whose fields equal these values, e.g. {split: train}."""
    limit: int | None = Field(None, ge=1)
    """First N matching rows."""
    label: str | None = None
    """Topic for every row of this file when there is no topic_field (default: the file name)."""


def _turn_after_user(messages: list) -> tuple[str | None, str | None]:
    """The first user turn's content and the assistant turn's right after it (None where absent)."""
    turns = [m if isinstance(m, dict) else {} for m in messages]
    at = next((i for i, m in enumerate(turns) if m.get("role") == "user"), None)
    if at is None:
        return None, None
    after = turns[at + 1] if at + 1 < len(turns) else {}
    return turns[at].get("content"), after.get("content") if after.get("role") == "assistant" else None


def read_prompts(src: PromptSource, answers: bool = False) -> list[dict]:
    """Rows `{"prompt", "topic"}` from one source; a row without the field is named by file:line. With `answers`,
    chat rows also give `"answer"` (the assistant turn after the prompt, or None) and `"line"`."""
    rows = read_jsonl(src.path, what="prompts")
    out = []
    for i, row in enumerate(rows, 1):
        if any(str(row.get(k)) != v for k, v in src.where.items()):
            continue
        value, answer = row.get(src.field), None
        if src.field == "messages" and isinstance(value, list):
            value, answer = _turn_after_user(value)
        if not isinstance(value, str) or not value.strip():
            raise UserError(f"{src.path}:{i}: field '{src.field}' must be a non-empty prompt string"
                            + (" (or chat messages with a user turn)" if src.field == "messages" else ""))
        topic = str(row.get(src.topic_field)) if src.topic_field else (src.label or src.path.stem)
        out.append({"prompt": value.strip(), "topic": topic, **({"answer": answer, "line": i} if answers else {})})
        if src.limit and len(out) >= src.limit:
            break
    return out
