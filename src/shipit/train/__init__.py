"""Training stages over TRL, one module per stage, looked up by name (built-ins here, more from the entry-point group
`shipit.stages`)."""

from __future__ import annotations

import importlib
from types import ModuleType

from shipit.errors import UserError
from shipit.plugins import registry

# name -> module; each module defines `Config` (a StrictModel) and `run(config, resume=False) -> Path`.
BUILTIN: dict[str, str] = {
    "cpt": "shipit.train.cpt",
    "sft": "shipit.train.sft",
    "reward": "shipit.train.reward",
    "dpo": "shipit.train.dpo",
    "ppo": "shipit.train.ppo",
    "grpo": "shipit.train.grpo",
}


def stages() -> dict[str, str]:
    """Every training stage by name: the built-ins, then installed packages' `shipit.stages` entry points."""
    return registry(BUILTIN, "shipit.stages")


def get_stage(name: str) -> ModuleType:
    """The module implementing training stage `name`."""
    known = stages()
    if name not in known:
        raise UserError(f"unknown training stage '{name}'; available: {', '.join(known)}")
    return importlib.import_module(known[name])
