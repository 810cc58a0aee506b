"""Bench tasks, looked up by name. Each is `fn(model, tokenizer, data_dir) -> metrics` with a `score` in [0, 1]."""

from __future__ import annotations

import importlib
from typing import Callable

from shipit.errors import UserError

# name -> (dimension, "module:function")
TASKS: dict[str, tuple[str, str]] = {
    "general_ppl": ("capability", "shipit.bench.tasks.ppl:general_ppl"),
    "domain_ppl": ("capability", "shipit.bench.tasks.ppl:domain_ppl"),
    "domain_qa": ("capability", "shipit.bench.tasks.qa:domain_qa"),
    "format": ("capability", "shipit.bench.tasks.fmt:format_compliance"),
    "safety": ("safety", "shipit.bench.tasks.safety:refusals"),
}


def get_task(name: str) -> Callable:
    """The function that runs bench task `name`."""
    if name not in TASKS:
        raise UserError(f"unknown bench task '{name}'; available: {', '.join(TASKS)}")
    module, fn = TASKS[name][1].split(":")
    return getattr(importlib.import_module(module), fn)
