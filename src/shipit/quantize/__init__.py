"""Quantize: one module per method, looked up by name (built-ins here, more from the entry-point group
`shipit.quantizers`)."""

from __future__ import annotations

import difflib
import importlib
from types import ModuleType

from shipit.errors import UserError
from shipit.plugins import registry

# name -> module; each defines DESCRIPTION, SERVABLE_BY (the serving backends that load its output), check(src)
# (fails fast on shapes the method cannot take) and quantize(src, out_dir, calibration_texts). A method with
# settings also lists them in OPTIONS (w4a16: group_size); its check(src, **given) returns the settings it chose,
# which are recorded in the manifest and passed to quantize(src, out_dir, calibration_texts, **chosen).
BUILTIN: dict[str, str] = {
    "w4a16": "shipit.quantize.w4a16",
    "w8a8": "shipit.quantize.w8a8",
    "fp8": "shipit.quantize.fp8",
    "onnx-int8": "shipit.quantize.onnx_int8",
}


def methods() -> dict[str, str]:
    """Every quantization method by name: the built-ins, then installed packages' `shipit.quantizers` entry points."""
    return registry(BUILTIN, "shipit.quantizers")


def get_method(name: str) -> ModuleType:
    """The module implementing quantization method `name`."""
    known = methods()
    if name not in known:
        close = difflib.get_close_matches(name, known, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise UserError(f"unknown quantization method '{name}'{hint}; available: {', '.join(known)}")
    return importlib.import_module(known[name])
