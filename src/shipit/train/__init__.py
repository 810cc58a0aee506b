"""Training stages over TRL, one module per stage, looked up by name."""

from __future__ import annotations

import importlib
from types import ModuleType

from shipit.errors import UserError

# name -> module; each module defines `Config` (a StrictModel) and `run(config, resume=False) -> Path`.
STAGES: dict[str, str] = {
    "cpt": "shipit.train.cpt",
    "sft": "shipit.train.sft",
    "reward": "shipit.train.reward",
    "dpo": "shipit.train.dpo",
    "ppo": "shipit.train.ppo",
    "grpo": "shipit.train.grpo",
}


def get_stage(name: str) -> ModuleType:
    """The module implementing training stage `name`."""
    if name not in STAGES:
        raise UserError(f"unknown training stage '{name}'; available: {', '.join(STAGES)}")
    return importlib.import_module(STAGES[name])
