"""Device and numeric precision: which ran is decided here, once, and written into every record."""

from __future__ import annotations

import contextlib
import warnings

import torch

from usemabench.runners.errors import UsageError

AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_device(requested: str = "auto", local_rank: int = 0) -> torch.device:
    """`auto`: this process's GPU when CUDA is available (LOCAL_RANK under torchrun), else the CPU."""
    if requested == "auto":
        return torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else torch.device("cpu")
    try:
        device = torch.device(requested)
    except RuntimeError as error:  # torch's message lists the device types
        raise UsageError(f"device {requested!r}: {error}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"device {requested!r} requested but CUDA is not available on this machine")
    return device


def resolve_precision(requested: str, device: torch.device) -> str:
    """The precision that will actually run: mixed precision only on CUDA, bf16 only where supported.

    On the CPU autocast is slower than fp32 for these models and is not what a GPU protocol measures,
    so a bf16/fp16 request runs in fp32 there (with a warning, and the record says fp32).
    """
    if requested == "fp32":
        return "fp32"
    if device.type != "cuda":
        warnings.warn(f"{requested} requested on {device}; running fp32", stacklevel=2)
        return "fp32"
    if requested == "bf16" and not torch.cuda.is_bf16_supported():
        warnings.warn("bf16 is not supported by this GPU; running fp32", stacklevel=2)
        return "fp32"
    return requested


def autocast(precision: str, device: torch.device) -> contextlib.AbstractContextManager:
    """Autocast for bf16/fp16, a no-op for fp32."""
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=AUTOCAST_DTYPES[precision])
