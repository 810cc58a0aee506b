"""SmoothQuant + GPTQ int8 weights and dynamic per-token int8 activations (compressed-tensors; vLLM loads it)."""

from __future__ import annotations

from pathlib import Path

DESCRIPTION = "SmoothQuant + GPTQ int8 weights (per channel), int8 dynamic activations"
SERVABLE_BY = frozenset({"vllm", "vllm-cpu"})


def check(src: Path) -> None:
    """Per-channel int8 fits any shape: nothing to check."""


def quantize(src: Path, out_dir: Path, calibration_texts: list[str]) -> None:
    """Quantize `src` into `out_dir`."""
    from llmcompressor.modifiers.quantization import GPTQModifier
    from llmcompressor.modifiers.transform import SmoothQuantModifier

    from shipit.quantize.llmc import oneshot_quantize

    recipe = [SmoothQuantModifier(smoothing_strength=0.8),
              GPTQModifier(targets="Linear", scheme="W8A8", ignore=["lm_head"])]
    oneshot_quantize(src, out_dir, recipe, calibration_texts)
