"""Bench tasks, looked up by name (built-ins here, more from the entry-point group `shipit.tasks`).

A task is `fn(model, tokenizer, ctx) -> metrics` with a `score` in [0, 1]; its registration says which dimension it
measures and which metric is its headline (shown in tables and plots) in which direction."""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Callable

from pydantic import AfterValidator

from shipit.conventions import Conventions
from shipit.errors import UserError
from shipit.plugins import registry


@dataclass(frozen=True)
class Task:
    """A bench task's registration: `target` is `module:function`; `headline` the metric tables show."""

    dimension: str
    target: str
    headline: str
    higher_is_better: bool = True

    def load(self) -> Callable:
        module, fn = self.target.split(":")
        return getattr(importlib.import_module(module), fn)


BUILTIN: dict[str, Task] = {
    "general_ppl": Task("capability", "shipit.bench.tasks.ppl:general_ppl", "ppl", higher_is_better=False),
    "domain_ppl": Task("capability", "shipit.bench.tasks.ppl:domain_ppl", "ppl", higher_is_better=False),
    "domain_qa": Task("capability", "shipit.bench.tasks.qa:domain_qa", "cloze_accuracy"),
    "format": Task("capability", "shipit.bench.tasks.fmt:format_compliance", "compliance"),
    "safety": Task("safety", "shipit.bench.tasks.safety:refusals", "refusal_rate"),
    "retention": Task("capability", "shipit.bench.tasks.retention:retention", "retention_rate"),
    "reward_score": Task("alignment", "shipit.bench.tasks.alignment:reward_score", "mean_reward"),
    "judge_winrate": Task("alignment", "shipit.bench.tasks.alignment:judge_winrate", "win_rate"),
}


def tasks() -> dict[str, Task]:
    """Every bench task by name: the built-ins, then installed packages' `shipit.tasks` entry points (Task objects)."""
    return registry(BUILTIN, "shipit.tasks", load=True)


@dataclass
class TaskContext:
    """What a task may need beyond the model: the data, the conventions answers are read by, the reward model, the
    judge, a per-run cache, `part`: (k, n), only the k-th of n disjoint parts of each held-out file (see `subset`),
    `limit`: at most this many held-out rows per file, and `sampled`: how to sample answers where a task also
    measures sampled decoding (the bench's SampledSafety)."""

    data_dir: Path
    reward_model: Path | None = None
    judge: Any = None
    conventions: Conventions = field(default_factory=Conventions)
    cache: dict = field(default_factory=dict)
    limit: int | None = None
    sampled: Any = None
    part: tuple[int, int] | None = None

    def subset(self, rows: list, group: str | None = None, strata: tuple[str, ...] = ()) -> list:
        """The rows a task scores: with `part` (k, n), the k-th of n disjoint parts, made of whole groups (rows
        sharing the value of `group`, e.g. one entity's questions; each row its own group without one) dealt out in
        turn in the file's order within each stratum (rows sharing the values of `strata`, e.g. category and kind of
        novelty), so each part keeps every kind of row and no group is in two parts; then, with `limit`, that many
        of them spread evenly (evenly, not the first N, because held-out files are written in groups)."""
        if self.part:
            k, n = self.part
            turn: dict[tuple, int] = {}  # group -> its turn within its stratum
            dealt: dict[tuple, int] = {}  # stratum -> groups dealt so far
            for i, r in enumerate(rows):
                if (g := _group(r, group, i)) not in turn:
                    stratum = tuple(r.get(f) for f in strata)
                    turn[g] = dealt.get(stratum, 0)
                    dealt[stratum] = turn[g] + 1
            kept = [r for i, r in enumerate(rows) if turn[_group(r, group, i)] % n == k - 1]
            if rows and not kept:
                most = max(dealt.values())
                raise UserError(f"eval_part {k}/{n}: part {k} of a held-out file is empty: its {len(turn)} "
                                f"groups of rows (one per {group or 'row'}) fill at most {most} parts; use at most "
                                f"{most} parts")
            rows = kept
        if self.limit is None or len(rows) <= self.limit:
            return rows
        return [rows[i * len(rows) // self.limit] for i in range(self.limit)]


def _group(row: dict, field: str | None, index: int):
    return ("group", row[field]) if field and row.get(field) is not None else ("row", index)


def _part(value: str | None) -> str | None:
    if value is None:
        return value
    k, sep, n = value.partition("/")
    if not (sep and k.isdigit() and n.isdigit() and 1 <= int(k) <= int(n) and int(n) >= 2):
        raise ValueError(f"{value!r} should be 'K/N', part K of N disjoint parts of the held-out rows "
                         "(1 <= K <= N, N >= 2), e.g. '1/2'")
    return value


EvalPart = Annotated[str | None, AfterValidator(_part)]
"""A config's `eval_part`: 'K/N' scores part K of N disjoint parts of each held-out file (see TaskContext.subset)."""


def parse_part(value: str | None) -> tuple[int, int] | None:
    """`'1/2'` -> (1, 2), for TaskContext.part."""
    return tuple(int(x) for x in value.split("/")) if value else None


def get_task(name: str) -> Callable:
    """The function that runs bench task `name`."""
    known = tasks()
    if name not in known:
        raise UserError(f"unknown bench task '{name}'; available: {', '.join(known)}")
    return known[name].load()
