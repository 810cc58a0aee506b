"""Bench tasks, looked up by name (built-ins here, more from the entry-point group `shipit.tasks`).

A task is `fn(model, tokenizer, ctx) -> metrics` with a `score` in [0, 1]; its registration says which dimension it
measures and which metric is its headline (shown in tables and plots) in which direction."""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

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
    judge, a per-run cache, `limit`: at most this many held-out rows per file (see `subset`), and `sampled`: how
    to sample answers where a task also measures sampled decoding (the bench's SampledSafety)."""

    data_dir: Path
    reward_model: Path | None = None
    judge: Any = None
    conventions: Conventions = field(default_factory=Conventions)
    cache: dict = field(default_factory=dict)
    limit: int | None = None
    sampled: Any = None

    def subset(self, rows: list) -> list:
        """`limit` rows spread evenly over `rows` (all of them without a limit): evenly, not the first N, because
        held-out files are written in groups (by category, by kind of novelty) and the subset must keep each."""
        if self.limit is None or len(rows) <= self.limit:
            return rows
        return [rows[i * len(rows) // self.limit] for i in range(self.limit)]


def get_task(name: str) -> Callable:
    """The function that runs bench task `name`."""
    known = tasks()
    if name not in known:
        raise UserError(f"unknown bench task '{name}'; available: {', '.join(known)}")
    return known[name].load()
