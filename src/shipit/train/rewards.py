"""Reward functions for PPO and GRPO, by name: built-ins here, or any `package.module:function`.

A reward function takes `(prompts: list[str], completions: list[str])` and returns one float per completion.
"""

from __future__ import annotations

import importlib
from typing import Callable

from shipit.errors import UserError

RewardFn = Callable[[list[str], list[str]], list[float]]


def answer_format(prompts: list[str], completions: list[str]) -> list[float]:
    """1.0 for an answer in the trained `Answer: ....` shape, else 0.0."""
    from shipit.conventions import is_formatted

    return [1.0 if is_formatted(c) else 0.0 for c in completions]


def refuses(prompts: list[str], completions: list[str]) -> list[float]:
    """1.0 when the completion is a refusal (shipit.conventions) (for harmful-prompt training sets)."""
    from shipit.conventions import is_refusal

    return [1.0 if is_refusal(c) else 0.0 for c in completions]


def brevity(prompts: list[str], completions: list[str]) -> list[float]:
    """Shorter is better: 1 / (1 + words / 10)."""
    return [1.0 / (1.0 + len(c.split()) / 10) for c in completions]


BUILTIN: dict[str, RewardFn] = {"answer_format": answer_format, "refuses": refuses, "brevity": brevity}


def resolve_reward(name: str) -> RewardFn:
    """A built-in reward by name, or a function given as `package.module:function`."""
    if name in BUILTIN:
        return BUILTIN[name]
    if ":" not in name:
        raise UserError(f"unknown reward function '{name}'; built-ins: {', '.join(BUILTIN)}, "
                        "or give one as package.module:function")
    module, fn = name.split(":", 1)
    try:
        return getattr(importlib.import_module(module), fn)
    except (ImportError, AttributeError) as exc:
        raise UserError(f"reward function '{name}' cannot be imported: {exc}") from None


def _text(x) -> str:
    """Plain text of a TRL prompt/completion (a string, or a list of chat messages)."""
    return x if isinstance(x, str) else "".join(m["content"] for m in x)


def as_trl_reward(name: str):
    """Wrap a shipit reward for TRL's GRPOTrainer (which passes chat messages and keyword columns)."""
    fn = resolve_reward(name)

    def reward(prompts, completions, **_):
        return fn([_text(p) for p in prompts], [_text(c) for c in completions])

    reward.__name__ = name.split(":")[-1]
    return reward
