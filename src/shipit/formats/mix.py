"""Loading training rows and mixing several datasets by weight."""

from __future__ import annotations

import random
from pathlib import Path

from pydantic import Field, model_validator

from shipit.config import StrictModel, read_jsonl
from shipit.errors import UserError


class DatasetSpec(StrictModel):
    """One JSONL dataset in a mix. Rows are `{"messages": [...]}` (chat) or `{"text": ...}` (plain text)."""

    path: Path
    weight: float = Field(1.0, gt=0)
    """Sampling multiplier: 1.0 uses each row once, 2.0 twice, 0.5 a random half."""

    @model_validator(mode="before")
    @classmethod
    def _bare_path(cls, value):
        """A plain path is a dataset of weight 1 (so `datasets: [a.jsonl, {path: b.jsonl, weight: 2}]` works)."""
        return {"path": value} if isinstance(value, (str, Path)) else value


def sample_by_weight(rows: list, weight: float, rng: random.Random) -> list:
    """Each row `int(weight)` times, plus a random `frac(weight)` share of them."""
    whole, frac = divmod(weight, 1.0)
    return rows * int(whole) + rng.sample(rows, round(frac * len(rows)))


def row_format(row: dict) -> str:
    """`chat` for rows with messages, `text` for plain text rows."""
    return "chat" if "messages" in row else "text" if "text" in row else "unknown"


def load_mix(specs: list[DatasetSpec], seed: int = 0) -> list[dict]:
    """Rows of every dataset, each sampled by its weight, shuffled together; all must share one format."""
    rng = random.Random(seed)
    out: list[dict] = []
    formats = set()
    for spec in specs:
        rows = read_jsonl(spec.path, what="dataset", allow_empty=len(specs) > 1)  # not all: checked below
        fmt = {row_format(r) for r in rows}
        if "unknown" in fmt:
            line = next(i for i, r in enumerate(rows, 1) if row_format(r) == "unknown")
            raise UserError(f"{spec.path}:{line}: row has neither 'messages' (chat) nor 'text'; add one of them")
        formats |= fmt
        picked = sample_by_weight(rows, spec.weight, rng)
        out += [{k: r[k] for k in ("messages", "text") if k in r} for r in picked]
    if len(formats) > 1:
        raise UserError(f"datasets mix chat rows and text rows ({', '.join(str(s.path) for s in specs)}); "
                        "use one format per stage")
    if not out:
        raise UserError(f"{', '.join(str(s.path) for s in specs)}: no rows (an empty dataset cannot be used)")
    rng.shuffle(out)
    return out


def split_eval(rows: list[dict], fraction: float, seed: int = 0) -> tuple[list[dict], list[dict]]:
    """Hold out `fraction` of the rows (at least one when fraction > 0) for evaluation."""
    if fraction <= 0:
        return rows, []
    n = max(1, int(len(rows) * fraction))
    rows = rows[:]
    random.Random(seed + 1).shuffle(rows)
    return rows[n:], rows[:n]


def data_paths(specs: list[DatasetSpec]) -> dict[str, Path]:
    """Stage inputs named data0, data1, ... for the manifest."""
    return {f"data{i}": s.path for i, s in enumerate(specs)}
