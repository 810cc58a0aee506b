"""GPTQ 4-bit weights, 16-bit activations, group size 128 (compressed-tensors; vLLM loads it on CPU and GPU)."""

from __future__ import annotations

from pathlib import Path

DESCRIPTION = "GPTQ int4 weights (group 128), 16-bit activations"
SERVABLE_BY = frozenset({"vllm", "vllm-cpu"})


def check(src: Path) -> None:
    """Fail before any work when the model's shapes do not fit group-128 quantization."""
    from shipit.quantize.llmc import check_group_divisible

    check_group_divisible(src, 128)


def quantize(src: Path, out_dir: Path, calibration_texts: list[str]) -> None:
    """Quantize `src` into `out_dir`."""
    from llmcompressor.modifiers.quantization import GPTQModifier

    from shipit.quantize.llmc import oneshot_quantize

    oneshot_quantize(src, out_dir, [GPTQModifier(targets="Linear", scheme="W4A16", ignore=["lm_head"])],
                     calibration_texts)
