"""Post-training quantization through llm-compressor (compressed-tensors output, which vLLM loads natively)."""

from __future__ import annotations

import os
from pathlib import Path


def oneshot_quantize(src: Path, out_dir: Path, recipe: list, calibration_texts: list[str], max_length: int = 256) -> None:
    """Run llm-compressor's oneshot with `recipe` on `src`, calibrated on `calibration_texts`; save to out_dir."""
    os.environ.setdefault("LLM_COMPRESSOR_LOG_LEVEL", "WARNING")
    from datasets import Dataset
    from llmcompressor import oneshot
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(src)
    model = AutoModelForCausalLM.from_pretrained(src, dtype="auto")
    calib = Dataset.from_list([dict(tokenizer(t, truncation=True, max_length=max_length)) for t in calibration_texts])
    oneshot(model=model, dataset=calib, recipe=recipe, max_seq_length=max_length,
            num_calibration_samples=len(calibration_texts), output_dir=str(out_dir))
    tokenizer.save_pretrained(out_dir)


def check_group_divisible(src: Path, group: int) -> None:
    """Group-wise schemes need every Linear input dim divisible by the group size; say so before any work."""
    import json

    from shipit.errors import UserError

    cfg = json.loads((Path(src) / "config.json").read_text())
    dims = {"hidden_size": cfg.get("hidden_size"), "intermediate_size": cfg.get("intermediate_size")}
    bad = {k: v for k, v in dims.items() if v and v % group}
    if bad:
        k, v = next(iter(bad.items()))
        raise UserError(f"{src}: {k}={v} is not a multiple of the group size {group}; "
                        f"use method w8a8 (per-channel) for this model")
