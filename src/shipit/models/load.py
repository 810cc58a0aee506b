"""Loading any model shipit wrote for evaluation (transformers or ONNX Runtime), and its size on disk."""

from __future__ import annotations

from pathlib import Path

from shipit.models.ort_model import ONNX_FILE, OrtCausalLM


def dir_size_mb(path: Path) -> float:
    """Size of the weight files (safetensors or ONNX) under `path`, in MB."""
    files = [p for p in Path(path).rglob("*") if p.suffix in (".safetensors", ".onnx") or ".onnx" in p.name]
    return sum(p.stat().st_size for p in files if p.is_file()) / 1e6


def is_onnx_dir(path: Path) -> bool:
    """True for an output of the onnx-int8 method."""
    return (Path(path) / ONNX_FILE).is_file()


def load_for_eval(path: Path, dtype: str = "auto"):
    """(model, tokenizer, backend) for evaluation: ONNX Runtime for ONNX dirs, else transformers on the best device,
    in the inference dtype (`shipit.device.inference_dtype`: bf16 where the hardware has it, `dtype` overrides;
    `dtype="checkpoint"` keeps the checkpoint's own, for comparisons against a source loaded that way)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from shipit.device import inference_dtype, torch_device

    tokenizer = AutoTokenizer.from_pretrained(path)
    if is_onnx_dir(path):
        return OrtCausalLM(path), tokenizer, "onnxruntime"
    # A quantized checkpoint runs in the inference dtype like every other candidate, so the bench compares a merge
    # with its quantization like for like (and as vLLM serves it: in bf16). In float32 a w4a16 SmolLM2 took 2.1x the
    # bench time of its source in bf16 (benchmarks/RESULTS.md). The quantize stage's own check passes "checkpoint".
    torch_dtype = "auto" if dtype == "checkpoint" else inference_dtype(dtype)
    return AutoModelForCausalLM.from_pretrained(path, dtype=torch_dtype).to(torch_device()).eval(), tokenizer, "hf"
