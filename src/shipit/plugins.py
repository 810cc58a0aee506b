"""Ground: every registry's names come from one dict of built-ins plus what installed packages add through Python
entry points (`shipit.tasks`, `shipit.quantizers`, `shipit.stages`). Help texts, validators and reports read the
merged dict, so a new entry is one module plus its registration, in shipit or in another package."""

from __future__ import annotations

from functools import lru_cache
from importlib import metadata
from typing import Any

GROUPS = ("shipit.tasks", "shipit.quantizers", "shipit.stages")


@lru_cache(maxsize=None)
def _installed(group: str) -> tuple[metadata.EntryPoint, ...]:
    return tuple(metadata.entry_points(group=group))


def registry(builtin: dict[str, Any], group: str, load: bool = False) -> dict[str, Any]:
    """Built-in entries, then those of installed packages under entry-point `group` (a built-in name wins).

    An entry point's value is a module path (`pkg.mod`, for quantizers and stages) or an object (`pkg.mod:TASK`,
    loaded when `load` is true)."""
    merged = dict(builtin)
    for ep in _installed(group):
        if ep.name not in merged:
            merged[ep.name] = ep.load() if load else ep.value
    return merged


def refresh() -> None:
    """Forget the cached entry points (after installing a package in the same process, e.g. in tests)."""
    _installed.cache_clear()
