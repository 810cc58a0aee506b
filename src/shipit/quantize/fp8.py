"""FP8 (e4m3) weights per channel with dynamic per-token FP8 activations; no calibration (compressed-tensors)."""

from __future__ import annotations

from pathlib import Path

DESCRIPTION = "FP8 e4m3 weights (per channel), dynamic FP8 activations"
SERVABLE_BY = frozenset({"vllm", "vllm-cpu"})


def check(src: Path) -> None:
    """FP8 per-channel fits any shape: nothing to check."""


def quantize(src: Path, out_dir: Path, calibration_texts: list[str]) -> None:
    """Quantize `src` into `out_dir` (the calibration texts are not needed: scales are per channel / dynamic)."""
    from llmcompressor.modifiers.quantization import QuantizationModifier

    from shipit.quantize.llmc import oneshot_quantize

    oneshot_quantize(src, out_dir, [QuantizationModifier(targets="Linear", scheme="FP8_DYNAMIC", ignore=["lm_head"])],
                     calibration_texts[:1])
