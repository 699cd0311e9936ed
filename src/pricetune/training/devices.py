"""Which device a fit runs on, and in which precision."""

from __future__ import annotations

import os

import torch

from pricetune.training.config import PRECISIONS


def local_gpu() -> torch.device:
    """``cuda``, or ``cuda:LOCAL_RANK`` under ``torchrun`` with several
    processes: one GPU per process from the start, so that no process opens
    a context on another's GPU."""
    local = os.environ.get("LOCAL_RANK")
    if local is not None and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        return torch.device("cuda", int(local))
    return torch.device("cuda")


def resolve_device(device: str | torch.device) -> torch.device:
    """``"auto"`` picks CUDA, then Apple MPS, then the CPU; ``"auto"`` or
    ``"cuda"`` under ``torchrun`` is the process's own GPU."""
    if isinstance(device, torch.device):
        return device
    if not isinstance(device, str):
        raise TypeError(
            f"device must be a string such as 'auto' or 'cpu', got {device!r}"
        )
    if device == "auto":
        if torch.cuda.is_available():
            return local_gpu()
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    resolved = torch.device(device)
    if resolved.type == "cuda" and resolved.index is None:
        resolved = local_gpu()
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError(f"device={device!r} but CUDA is not available here")
        count = torch.cuda.device_count()
        if resolved.index is not None and resolved.index >= count:
            raise RuntimeError(
                f"device={device!r}, but only {count} CUDA device(s) are visible"
            )
    return resolved


def resolve_precision(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype, or ``None`` for plain float32.

    ``"auto"`` uses bfloat16 autocast on CUDA devices that support it.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "fp32":
        return None
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    if precision == "bf16":
        raise ValueError(
            f"precision='bf16' needs a CUDA device with bf16, got {device}"
        )
    return None
