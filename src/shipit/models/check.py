"""Cheap checks that a model directory is whole, before any stage spends minutes on it."""

from __future__ import annotations

import json
import struct
from pathlib import Path

from shipit.config import require_path
from shipit.errors import UserError


def check_safetensors(path: Path, what: str) -> None:
    """A safetensors file's header parses and the file is as long as the header says (a copy cut short is not)."""
    size = path.stat().st_size
    with path.open("rb") as f:
        head = f.read(8)
        n = struct.unpack("<Q", head)[0] if len(head) == 8 else None
        header = f.read(n) if n is not None and 8 + n <= size else b""
    try:
        meta = json.loads(header)
    except (ValueError, UnicodeDecodeError):
        meta = None
    if not isinstance(meta, dict):
        raise UserError(f"{what}: {path} is not a readable safetensors file (bad or truncated header); "
                        "copy or download it again")
    end = max((t["data_offsets"][1] for k, t in meta.items() if k != "__metadata__"), default=0)
    if size < 8 + n + end:
        raise UserError(f"{what}: {path} is truncated ({size} bytes, the header describes {8 + n + end}); "
                        "copy or download it again")


def require_model(path: str | Path, what: str, hint: str = "expected a Hugging Face model directory") -> Path:
    """`path` is a model directory with a config.json whose safetensors weights (and index shards) are whole."""
    path = Path(path)
    require_path(path / "config.json", what, kind="file", hint=hint)
    for index in path.glob("*.safetensors.index.json"):
        for shard in sorted(set(json.loads(index.read_text()).get("weight_map", {}).values())):
            require_path(path / shard, what, kind="file", hint=f"listed in {index.name}")
    for f in sorted(path.glob("*.safetensors")):
        check_safetensors(f, what)
    return path
