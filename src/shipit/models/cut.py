"""Cut a model to its first N decoder layers: same tokenizer, template, attention shape and embeddings, a fraction of
the compute. Tests run every stage on SmolLM2 cut to 2 layers; users get a quick stand-in for a big model."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

from shipit.config import require_path
from shipit.errors import UserError

LAYER = re.compile(r"(?:^|\.)layers\.(\d+)\.")
WEIGHT_FILES = re.compile(r".*\.safetensors$|.*\.safetensors\.index\.json$")


def truncate_layers(src: str | Path, out: str | Path, layers: int) -> Path:
    """Write `src` with only its first `layers` decoder layers to `out` (a safetensors model directory)."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    from shipit.registry import MANIFEST, stage_output

    src = require_path(Path(src), "cut: model", kind="dir")
    config = json.loads(require_path(src / "config.json", "cut: model", kind="file",
                                     hint="expected a Hugging Face model directory").read_text())
    total = config.get("num_hidden_layers")
    if not isinstance(total, int):
        raise UserError(f"cut: {src}/config.json has no num_hidden_layers; only decoder-layer models can be cut")
    if not 1 <= layers <= total:
        raise UserError(f"cut: layers must be between 1 and {total} (the model's num_hidden_layers), got {layers}")
    shards = sorted(src.glob("*.safetensors"))
    if not shards:
        raise UserError(f"cut: {src} has no *.safetensors weights (import it first: shipit base import)")
    with stage_output(out, "cut", {"source": str(src), "layers": layers}, inputs={"source": src}) as run:
        tensors, dropped = {}, 0
        for shard in shards:
            with safe_open(shard, framework="pt") as f:
                for key in f.keys():
                    m = LAYER.search(key)
                    if m and int(m.group(1)) >= layers:
                        dropped += 1
                        continue
                    tensors[key] = f.get_tensor(key)
        save_file(tensors, run.dir / "model.safetensors", metadata={"format": "pt"})
        config["num_hidden_layers"] = layers
        if isinstance(config.get("layer_types"), list):  # per-layer attention kinds (Qwen2, Gemma, ...)
            config["layer_types"] = config["layer_types"][:layers]
        (run.dir / "config.json").write_text(json.dumps(config, indent=2) + "\n")
        for f in src.iterdir():
            if f.is_file() and f.name not in ("config.json", MANIFEST) and not WEIGHT_FILES.match(f.name):
                shutil.copy2(f, run.dir / f.name)
        check_loads(run.dir)
        run.metrics.update(layers=layers, source_layers=total, tensors=len(tensors), tensors_dropped=dropped,
                           parameters=sum(t.numel() for t in tensors.values()),
                           size_mb=round((run.dir / "model.safetensors").stat().st_size / 1e6, 1))
    return Path(out)


def check_loads(path: Path) -> None:
    """Load the cut model with transformers; a missing or leftover tensor is an error, not a warning."""
    from transformers import AutoModelForCausalLM

    _, info = AutoModelForCausalLM.from_pretrained(path, output_loading_info=True)
    bad = {k: v for k, v in info.items() if k in ("missing_keys", "unexpected_keys", "mismatched_keys") and v}
    if bad:
        raise UserError(f"cut: the cut model does not load cleanly: {bad}")
