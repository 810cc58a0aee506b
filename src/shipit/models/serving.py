"""Which serving backend models are meant for, and what that backend cannot serve on this machine."""

from __future__ import annotations

import json
import os
from pathlib import Path

from shipit.errors import UserError

BACKENDS = ("vllm", "vllm-cpu", "onnxruntime")


def serving_backend(explicit: str | None = None) -> str:
    """The backend models are meant for: explicit, else $SHIPIT_SERVE_BACKEND, else vllm / vllm-cpu."""
    name = explicit or os.environ.get("SHIPIT_SERVE_BACKEND")
    if name is None:
        from shipit.device import has_cuda

        name = "vllm" if has_cuda() else "vllm-cpu"
    if name not in BACKENDS:
        raise UserError(f"unknown serving backend '{name}'; available: {', '.join(BACKENDS)}")
    return name


def int4_weight_only(model: Path) -> bool:
    """True for a checkpoint with 4-bit weights and 16-bit activations (compressed-tensors W4A16, GPTQ, AWQ), read
    from its config.json."""
    try:
        q = json.loads((Path(model) / "config.json").read_text()).get("quantization_config") or {}
    except (OSError, ValueError):
        return False
    if q.get("quant_method") in ("gptq", "awq"):
        return q.get("bits") == 4
    return any((g.get("weights") or {}).get("num_bits") == 4 and not g.get("input_activations")
               for g in (q.get("config_groups") or {}).values())


def serve_problem(model: Path, backend: str | None = None) -> str | None:
    """Why `backend` (default: `serving_backend()`) cannot serve `model` on this machine, as a clause ("it has ...");
    None when shipit knows of no reason. Checked before a server starts and before the bench picks a winner to serve."""
    if not int4_weight_only(model):  # cheap, first: serving_backend() may import torch
        return None
    from shipit.device import vllm_cpu_has_int4_kernel

    if serving_backend(backend) != "vllm-cpu" or vllm_cpu_has_int4_kernel():
        return None
    return ("it has 4-bit weights (w4a16), and vLLM's CPU build has that kernel only for CPUs with AVX-512, which "
            "this CPU lacks; serve the unquantized or w8a8 model here, or this one on a GPU or an AVX-512 CPU")
