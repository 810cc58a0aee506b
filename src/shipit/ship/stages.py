"""Stage configs that exist only for recipes."""

from __future__ import annotations

from pathlib import Path

from typing import Literal

from pydantic import Field, field_validator

from shipit.config import StrictModel


class QuantizeStage(StrictModel):
    """Quantize `model` with `method` (a name of the quantize registry) for `backend`."""

    method: str
    model: Path
    backend: str | None = None
    group_size: Literal[128, 64, 32] | None = None
    """w4a16 only: input channels per int4 scale; unset picks the largest that divides the model's layer inputs."""
    max_ppl_increase: float = Field(5.0, ge=0)
    """The stage fails unless held-out perplexity rises by at most this many percent over the source's."""

    @field_validator("method")
    @classmethod
    def _known(cls, method: str) -> str:
        from shipit.quantize import methods

        if method not in methods():
            raise ValueError(f"unknown quantization method '{method}'; allowed: {', '.join(methods())}")
        return method
