"""Post-training quantization through llm-compressor (compressed-tensors output, which vLLM loads natively)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from shipit.errors import UserError

GROUP_SIZES = (128, 64, 32)  # largest first: a bigger group stores fewer scales; a smaller one loses less


def oneshot_quantize(src: Path, out_dir: Path, recipe: list, calibration_texts: list[str], max_length: int = 256) -> None:
    """Run llm-compressor's oneshot with `recipe` on `src`, calibrated on `calibration_texts`; save to out_dir."""
    os.environ.setdefault("LLM_COMPRESSOR_LOG_LEVEL", "WARNING")
    from datasets import Dataset
    from llmcompressor import oneshot
    from transformers import AutoModelForCausalLM, AutoTokenizer

    # Calibration samples go through one at a time (llm-compressor's default truncation collator), unpadded: a
    # tokenizer without a pad token (SmolLM2, Llama 3) needs nothing here; verification pads (see tokens.py). Not
    # shuffled (its default draws the order from torch's unseeded generator): the same texts give the same weights.
    tokenizer = AutoTokenizer.from_pretrained(src)
    model = AutoModelForCausalLM.from_pretrained(src, dtype="auto")
    calib = Dataset.from_list([dict(tokenizer(t, truncation=True, max_length=max_length)) for t in calibration_texts])
    oneshot(model=model, dataset=calib, recipe=recipe, max_seq_length=max_length, batch_size=1,
            data_collator="truncation", num_calibration_samples=len(calibration_texts), output_dir=str(out_dir),
            shuffle_calibration_samples=False)
    tokenizer.save_pretrained(out_dir)


def layer_input_sizes(src: Path) -> dict[str, int]:
    """The input widths of a decoder's Linear layers, by the config field they come from."""
    cfg = json.loads((Path(src) / "config.json").read_text())
    cfg = cfg.get("text_config", cfg)  # multimodal configs nest the language model's
    sizes = {"hidden_size": cfg.get("hidden_size"), "intermediate_size": cfg.get("intermediate_size")}
    heads, head_dim = cfg.get("num_attention_heads"), cfg.get("head_dim")
    if heads and head_dim:  # o_proj's input; differs from hidden_size when head_dim is set on its own
        sizes["num_attention_heads*head_dim"] = heads * head_dim
    return {k: v for k, v in sizes.items() if v}


def pick_group_size(src: Path, requested: int | None = None) -> int:
    """`requested` when it divides every layer input of `src`, else the largest of GROUP_SIZES that does."""
    sizes = layer_input_sizes(src)
    fits = [g for g in GROUP_SIZES if all(v % g == 0 for v in sizes.values())]
    shape = ", ".join(f"{k}={v}" for k, v in sizes.items())
    if requested is not None:
        if requested not in GROUP_SIZES:
            raise UserError(f"quantize: group size {requested} is not one of {', '.join(map(str, GROUP_SIZES))}")
        if requested not in fits:
            bad = next(f"{k}={v}" for k, v in sizes.items() if v % requested)
            hint = f"use --group-size {fits[0]}" if fits else "use method w8a8 (per-channel)"
            raise UserError(f"{src}: {bad} is not a multiple of the group size {requested}; {hint} for this model")
        return requested
    if not fits:
        raise UserError(f"{src}: no group size in {', '.join(map(str, GROUP_SIZES))} divides every layer input "
                        f"({shape}); use method w8a8 (per-channel) for this model")
    return fits[0]
