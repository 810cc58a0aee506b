"""Reading upstream answers on the hot path: token counts, usage, and (when recording) the answer text."""

from __future__ import annotations

import json
import re

USAGE = re.compile(rb'"(prompt_tokens|completion_tokens)"\s*:\s*(\d+)')


def count_stream_tokens(chunk: bytes) -> int:
    """Completion tokens in an SSE chunk of vLLM's (one token per content event)."""
    return chunk.count(b'"content":"') - chunk.count(b'"content":""') + chunk.count(b'"text":"') - \
        chunk.count(b'"text":""')


def usage_of(body: bytes) -> dict:
    """Prompt and completion tokens from a JSON answer's `usage` (a scan, not a parse: this is the hot path)."""
    return {k.decode(): int(v) for k, v in USAGE.findall(body)}  # the last match (the top-level usage) wins


def _choice_text(choice: dict, key: str) -> str:
    part = choice.get(key) or {}
    return (part.get("content") or "") if isinstance(part, dict) else ""


def answer_text(body: bytes) -> str | None:
    """The first choice's text of a JSON chat or completion answer, or None when it is not one."""
    try:
        choice = json.loads(body)["choices"][0]
    except (ValueError, KeyError, IndexError, TypeError):
        return None
    return choice["text"] if isinstance(choice.get("text"), str) else _choice_text(choice, "message")


def stream_text(body: bytes) -> str | None:
    """The first choice's text accumulated over an SSE stream's `data:` events, or None when there is none."""
    pieces, seen = [], False
    for line in body.split(b"\n"):
        if not line.startswith(b"data:") or line[5:].strip() == b"[DONE]":
            continue
        try:
            choices = json.loads(line[5:])["choices"]
        except (ValueError, KeyError, TypeError):
            continue
        for c in choices:
            if c.get("index", 0) == 0:
                seen = True
                pieces.append(c["text"] if isinstance(c.get("text"), str) else _choice_text(c, "delta"))
    return "".join(pieces) if seen else None


def prompt_of(payload: dict):
    """What was asked: a chat request's messages, or a completion request's prompt."""
    return payload.get("messages") if "messages" in payload else payload.get("prompt")
