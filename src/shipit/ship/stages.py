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
    over_bound: Literal["fail", "keep"] = "fail"
    """keep: a candidate over the bound is still written, with `over_bound: true` in its manifest and a warning, so
    that a recipe's bench measures it and its gates decide (a demo that shows what 4 bits cost a small model)."""
    calibration: Path | None = None
    """JSONL with a `text` field to calibrate on (the first 64 rows); unset: the bundled set (quantize/data)."""
    eval_data: Path | None = None
    """JSONL with a `text` field the perplexity bound is measured on (the first 64 rows); unset: the bundled
    held-out set, which is the tiny world's sentences: a recipe on a real model should name real held-out text."""

    @field_validator("method")
    @classmethod
    def _known(cls, method: str) -> str:
        from shipit.quantize import methods

        if method not in methods():
            raise ValueError(f"unknown quantization method '{method}'; allowed: {', '.join(methods())}")
        return method


class BaseImportStage(StrictModel):
    """The recipe's starting model: a catalog name (`shipit base fetch` downloads and imports it into the cache once)
    or a Hugging Face directory or GGUF file of your own, written to the stage's output as a verified safetensors
    model; `layers` keeps only the first N decoder layers (a fast stand-in with the same tokenizer and template)."""

    source: str
    """A catalog name (e.g. smollm2-135m-instruct) or a path to a model directory or .gguf file."""
    layers: int | None = Field(None, ge=1)
    dtype: Literal["float32", "bfloat16"] = "float32"
    """Weights dtype of the imported copy (ignored with `layers`, which copies the source's tensors as they are)."""
