"""GPTQ 4-bit weights, 16-bit activations, group size 128, 64 or 32 (compressed-tensors; vLLM loads it)."""

from __future__ import annotations

from pathlib import Path

DESCRIPTION = "GPTQ int4 weights (groups of 128, 64 or 32), 16-bit activations"
SERVABLE_BY = frozenset({"vllm", "vllm-cpu"})
OPTIONS = frozenset({"group_size"})


def check(src: Path, group_size: int | None = None) -> dict:
    """The group size to use (the given one, else the largest that divides every layer input); fails before work."""
    from shipit.quantize.llmc import pick_group_size

    return {"group_size": pick_group_size(src, group_size)}


def quantize(src: Path, out_dir: Path, calibration_texts: list[str], group_size: int = 128) -> None:
    """Quantize `src` into `out_dir` with int4 weight groups of `group_size` input channels."""
    from compressed_tensors.quantization import preset_name_to_scheme
    from llmcompressor.modifiers.quantization import GPTQModifier

    from shipit.quantize.llmc import oneshot_quantize

    scheme = preset_name_to_scheme("W4A16", ["Linear"])
    scheme.weights.group_size = group_size
    oneshot_quantize(src, out_dir, [GPTQModifier(config_groups={"group_0": scheme}, ignore=["lm_head"])],
                     calibration_texts)
