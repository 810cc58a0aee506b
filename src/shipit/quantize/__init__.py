"""Quantize: one module per method, looked up by name."""

from __future__ import annotations

import importlib
from types import ModuleType

from shipit.errors import UserError

# name -> module; each defines `DESCRIPTION`, `VLLM_LOADABLE`, `check(src)` (fails fast)
# and `quantize(src, out_dir, calibration_texts)`.
METHODS: dict[str, str] = {
    "w4a16": "shipit.quantize.w4a16",
    "w8a8": "shipit.quantize.w8a8",
}


def get_method(name: str) -> ModuleType:
    """The module implementing quantization method `name`."""
    if name not in METHODS:
        raise UserError(f"unknown quantization method '{name}'; available: {', '.join(METHODS)}")
    return importlib.import_module(METHODS[name])
