"""Bench tasks, looked up by name. Each is `fn(model, tokenizer, ctx) -> metrics` with a `score` in [0, 1]."""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from shipit.errors import UserError

# name -> (dimension, "module:function")
TASKS: dict[str, tuple[str, str]] = {
    "general_ppl": ("capability", "shipit.bench.tasks.ppl:general_ppl"),
    "domain_ppl": ("capability", "shipit.bench.tasks.ppl:domain_ppl"),
    "domain_qa": ("capability", "shipit.bench.tasks.qa:domain_qa"),
    "format": ("capability", "shipit.bench.tasks.fmt:format_compliance"),
    "safety": ("safety", "shipit.bench.tasks.safety:refusals"),
    "reward_score": ("alignment", "shipit.bench.tasks.alignment:reward_score"),
    "judge_winrate": ("alignment", "shipit.bench.tasks.alignment:judge_winrate"),
}


@dataclass
class TaskContext:
    """What a task may need beyond the model: the data, the reward model, the judge, and a per-run cache."""

    data_dir: Path
    reward_model: Path | None = None
    judge: Any = None
    cache: dict = field(default_factory=dict)


def get_task(name: str) -> Callable:
    """The function that runs bench task `name`."""
    if name not in TASKS:
        raise UserError(f"unknown bench task '{name}'; available: {', '.join(TASKS)}")
    module, fn = TASKS[name][1].split(":")
    return getattr(importlib.import_module(module), fn)
