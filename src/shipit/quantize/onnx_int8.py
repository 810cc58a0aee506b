"""ONNX export (torch.onnx) plus dynamic int8 weight quantization (onnxruntime), for CPU and edge runtimes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from shipit.models.ort_model import ONNX_FILE

DESCRIPTION = "ONNX graph, int8 weights (dynamic quantization), for ONNX Runtime"
SERVABLE_BY = frozenset({"onnxruntime"})


def check(src: Path) -> None:
    """Any causal LM that traces exports: nothing to check up front."""


def export_onnx(src: Path, path: Path) -> None:
    """Export `src` as a cache-free graph: (input_ids, attention_mask, position_ids) -> logits, dynamic shapes."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(src, dtype=torch.float32).eval()

    class _Logits(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, input_ids, attention_mask, position_ids):
            return self.m(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                          use_cache=False).logits

    ids = torch.ones(2, 8, dtype=torch.long)
    axes = {0: "batch", 1: "sequence"}
    names = ["input_ids", "attention_mask", "position_ids"]
    torch.onnx.export(_Logits(model), (ids, torch.ones_like(ids), torch.arange(8).expand(2, 8)), str(path),
                      input_names=names, output_names=["logits"],
                      dynamic_axes={**{n: axes for n in names}, "logits": axes}, opset_version=18, dynamo=False)


def quantize(src: Path, out_dir: Path, calibration_texts: list[str]) -> None:
    """Export `src` to ONNX, quantize its weights to int8, and keep the tokenizer and config beside it."""
    import warnings

    from onnxruntime.quantization import QuantType, quantize_dynamic
    from transformers import AutoTokenizer

    fp32 = out_dir / "model-fp32.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        export_onnx(src, fp32)
    quantize_dynamic(str(fp32), str(out_dir / ONNX_FILE), weight_type=QuantType.QInt8)
    fp32.unlink()
    for extra in fp32.parent.glob("model-fp32.onnx*"):
        extra.unlink()
    AutoTokenizer.from_pretrained(src).save_pretrained(out_dir)
    shutil.copy(Path(src) / "config.json", out_dir / "config.json")
    if (Path(src) / "generation_config.json").exists():
        shutil.copy(Path(src) / "generation_config.json", out_dir / "generation_config.json")
    (out_dir / "shipit_onnx.json").write_text(json.dumps({"file": ONNX_FILE, "inputs": ["input_ids", "attention_mask", "position_ids"],
                                                          "outputs": ["logits"], "kv_cache": False}, indent=2))
