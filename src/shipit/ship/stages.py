"""Stage configs that exist only for recipes."""

from __future__ import annotations

from pathlib import Path

from pydantic import field_validator

from shipit.config import StrictModel


class QuantizeStage(StrictModel):
    """Quantize `model` with `method` (a name of the quantize registry) for `backend`."""

    method: str
    model: Path
    backend: str | None = None

    @field_validator("method")
    @classmethod
    def _known(cls, method: str) -> str:
        from shipit.quantize import methods

        if method not in methods():
            raise ValueError(f"unknown quantization method '{method}'; allowed: {', '.join(methods())}")
        return method
