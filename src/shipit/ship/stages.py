"""Stage configs that exist only for recipes."""

from __future__ import annotations

from pathlib import Path

from pydantic import field_validator

from shipit.config import StrictModel


class QuantizeStage(StrictModel):
    """Quantize `model` with `method` (w4a16, w8a8, fp8, onnx-int8) for `backend`."""

    method: str
    model: Path
    backend: str | None = None

    @field_validator("method")
    @classmethod
    def _known(cls, method: str) -> str:
        from shipit.quantize import METHODS

        if method not in METHODS:
            raise ValueError(f"unknown quantization method '{method}'; allowed: {', '.join(METHODS)}")
        return method
