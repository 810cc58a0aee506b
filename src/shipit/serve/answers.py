"""Reading upstream answers on the hot path: token counts, usage, and (when recording) the answer text."""

from __future__ import annotations

import json
import re

USAGE = re.compile(rb'"(prompt_tokens|completion_tokens)"\s*:\s*(\d+)')
EVENT_END = re.compile(rb"\r?\n\r?\n")  # vLLM ends an SSE event with \n\n; other servers with \r\n\r\n
USAGE_ONLY = re.compile(rb'"choices"\s*:\s*\[\]')
HAS_USAGE = re.compile(rb'"usage"\s*:\s*\{')


def count_content_events(chunk: bytes) -> int:
    """Content events in SSE bytes: at least one completion token each (vLLM merges the tokens of several steps
    into one event when its reader falls behind, so this is a lower bound, used only when no usage came)."""
    return chunk.count(b'"content":"') - chunk.count(b'"content":""') + chunk.count(b'"text":"') - \
        chunk.count(b'"text":""')


class StreamTally:
    """A streamed answer's tokens, read as it passes through event by event: from the upstream's usage
    event (the router asks vLLM for one with `stream_options.include_usage`), which is dropped again when the client
    did not ask for it; where an upstream sends none, from its content events (a lower bound)."""

    def __init__(self, drop_usage: bool):
        self.drop_usage, self.rest, self.events, self.usage = drop_usage, b"", 0, None

    def feed(self, chunk: bytes) -> bytes:
        """The events completed by `chunk`, to pass on now (an event cut by the network waits for its end)."""
        data, start, out = self.rest + chunk, 0, []
        for end in EVENT_END.finditer(data):
            out.append(self._event(data[start:end.end()]))
            start = end.end()
        self.rest = data[start:]
        return b"".join(out)

    def _event(self, event: bytes) -> bytes:
        """One whole event, its blank line included: passed on as it came, or b"" for a usage event to drop."""
        if HAS_USAGE.search(event):
            self.usage = {**(self.usage or {}), **usage_of(event)}
            if self.drop_usage and USAGE_ONLY.search(event):
                return b""
        self.events += count_content_events(event)
        return event

    def flush(self) -> bytes:
        """What is left when the upstream closed (an event it never ended): passed on as it came."""
        rest, self.rest = self.rest, b""
        self.events += count_content_events(rest)
        return rest

    @property
    def tokens(self) -> dict:
        """The row's `prompt_tokens` (only from a usage event) and `completion_tokens`."""
        return {"completion_tokens": self.events, **(self.usage or {})}


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
