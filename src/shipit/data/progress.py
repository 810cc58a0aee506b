"""Append-only JSONL with a progress index, so an interrupted run resumes without redoing written rows."""

from __future__ import annotations

import json
from pathlib import Path


class ProgressLog:
    """Rows appended to `path`; `path.progress.json` records the committed byte length and the keys done.

    Rows written after the last commit (a crash mid-batch, a half-written line) are cut off on reopen, so the
    file and the index always agree and a resumed run redoes exactly the uncommitted keys.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.index_path = self.path.with_name(self.path.name + ".progress.json")
        index = json.loads(self.index_path.read_text()) if self.index_path.is_file() else {"bytes": 0, "done": []}
        self.done: set[str] = set(index["done"])
        self.resumed = len(self.done)
        self.path.touch()
        with self.path.open("r+b") as f:
            f.truncate(index["bytes"])

    def __contains__(self, key: str) -> bool:
        return key in self.done

    def commit(self, key: str, rows: list[dict]) -> None:
        """Append the rows produced for `key`, then record `key` as done."""
        self.commit_many([key], rows)

    def commit_many(self, keys: list[str], rows: list[dict]) -> None:
        """Append the rows produced for `keys`, then record all of them as done (one index write)."""
        with self.path.open("a") as f:
            f.write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
        self.done.update(keys)
        tmp = self.index_path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"bytes": self.path.stat().st_size, "done": sorted(self.done)}))
        tmp.replace(self.index_path)

    def rows(self) -> list[dict]:
        """Every committed row."""
        return [json.loads(ln) for ln in self.path.read_text().splitlines() if ln.strip()]


def write_jsonl(path: Path, rows: list[dict]) -> int:
    """Write rows as JSONL; returns how many."""
    Path(path).write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    return len(rows)
