"""What hardware this process trains and evaluates on, decided once, the same way everywhere."""

from __future__ import annotations


def has_cuda() -> bool:
    """True when a CUDA device is usable."""
    import torch

    return torch.cuda.is_available()


def bf16_supported() -> bool:
    """True on a GPU that trains in bf16 (Ampere and newer)."""
    import torch

    return has_cuda() and torch.cuda.is_bf16_supported()


def torch_device() -> str:
    """`cuda` when available, else `cpu`."""
    return "cuda" if has_cuda() else "cpu"
