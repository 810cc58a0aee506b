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


def read_prompts(src: PromptSource) -> list[dict]:
    """Rows `{"prompt", "topic"}` from one source; a row without the field is named by file:line."""
    rows = read_jsonl(src.path, what="prompts")
    out = []
    for i, row in enumerate(rows, 1):
        if any(str(row.get(k)) != v for k, v in src.where.items()):
            continue
        value = row.get(src.field)
        if src.field == "messages" and isinstance(value, list):
            value = next((m.get("content") for m in value if isinstance(m, dict) and m.get("role") == "user"), None)
        if not isinstance(value, str) or not value.strip():
            raise UserError(f"{src.path}:{i}: field '{src.field}' must be a non-empty prompt string"
                            + (" (or chat messages with a user turn)" if src.field == "messages" else ""))
        topic = str(row.get(src.topic_field)) if src.topic_field else (src.label or src.path.stem)
        out.append({"prompt": value.strip(), "topic": topic})
        if src.limit and len(out) >= src.limit:
            break
    return out
