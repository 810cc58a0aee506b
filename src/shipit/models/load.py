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


def load_for_eval(path: Path):
    """(model, tokenizer, backend) for evaluation: ONNX Runtime for ONNX dirs, else transformers on the best device."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from shipit.device import torch_device

    tokenizer = AutoTokenizer.from_pretrained(path)
    if is_onnx_dir(path):
        return OrtCausalLM(path), tokenizer, "onnxruntime"
    return AutoModelForCausalLM.from_pretrained(path, dtype="auto").to(torch_device()).eval(), tokenizer, "hf"
