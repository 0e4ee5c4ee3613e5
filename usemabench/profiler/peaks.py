"""Device peaks and utilisation: achieved FLOP/s of a profiled call, and MFU against the device's peak.

Peaks are NVIDIA's datasheet figures for dense tensor-core math (no 2:4 sparsity) per precision; fp32 is the
non-tensor-core rate. A device is matched by its CUDA name (`torch.cuda.get_device_name`), most specific
entry first. CPUs have no entry: their records carry achieved FLOP/s and say that MFU is not computed.

fp32 runs: PyTorch lets cuDNN convolutions use TF32 by default (`torch.backends.cudnn.allow_tf32`), and
matmuls when `torch.backends.cuda.matmul.allow_tf32` is set. If either is on, the TF32 peak is used, which
makes the MFU a lower bound [our choice]; with both off, the fp32 peak.
"""

from __future__ import annotations

from typing import Any

import torch

TERA = 1e12
# (name fragment, {precision: dense peak FLOP/s}), most specific first; matched case-insensitively.
DEVICE_PEAKS: tuple[tuple[str, dict[str, float]], ...] = (
    ("H200 NVL", {"bf16": 835 * TERA, "fp16": 835 * TERA, "tf32": 418 * TERA, "fp32": 60 * TERA}),
    ("H200", {"bf16": 989 * TERA, "fp16": 989 * TERA, "tf32": 494 * TERA, "fp32": 67 * TERA}),
    ("H100 NVL", {"bf16": 835 * TERA, "fp16": 835 * TERA, "tf32": 418 * TERA, "fp32": 60 * TERA}),
    ("H100 PCIe", {"bf16": 756 * TERA, "fp16": 756 * TERA, "tf32": 378 * TERA, "fp32": 51 * TERA}),
    ("H100", {"bf16": 989 * TERA, "fp16": 989 * TERA, "tf32": 494 * TERA, "fp32": 67 * TERA}),  # SXM5
    ("A100", {"bf16": 312 * TERA, "fp16": 312 * TERA, "tf32": 156 * TERA, "fp32": 19.5 * TERA}),
)
PEAK_SOURCE = "NVIDIA datasheet, dense tensor-core peak (no sparsity)"


def tf32_allowed() -> bool:
    """Whether convolutions or matmuls may run fp32 work as TF32 in this process."""
    return bool(torch.backends.cudnn.allow_tf32 or torch.backends.cuda.matmul.allow_tf32)


def peak_precision(precision: str) -> str:
    """The peak column a run at `precision` is held against (fp32 -> tf32 when TF32 is allowed; see above)."""
    if precision != "fp32":
        return precision
    return "tf32" if tf32_allowed() else "fp32"


def device_peak(device_name: str, precision: str) -> tuple[str, float] | None:
    """(matched table entry, peak FLOP/s) for `device_name` at `precision`, or None for an unknown device."""
    for fragment, peaks in DEVICE_PEAKS:
        if fragment.lower() in device_name.lower() and precision in peaks:
            return fragment, peaks[precision]
    return None


def utilisation(
    flops_per_image: int, batch: int, median_ms: float, device_type: str, device_name: str, precision: str
) -> dict[str, Any]:
    """Achieved FLOP/s (FLOPs per image x batch / median call time) and MFU when the device has a peak."""
    achieved = flops_per_image * batch / (median_ms / 1e3)
    summary: dict[str, Any] = {"achieved_flops_per_s": achieved}
    if device_type != "cuda":
        return {**summary, "mfu": None, "peak_note": "no peak table for CPUs: MFU not computed"}
    held_against = peak_precision(precision)
    match = device_peak(device_name, held_against)
    if match is None:
        return {**summary, "mfu": None, "peak_note": f"no peak for {device_name!r} at {held_against} in the table"}
    entry, peak = match
    return {
        **summary, "mfu": achieved / peak, "peak_flops_per_s": peak, "peak_precision": held_against,
        "peak_source": f"{PEAK_SOURCE}: {entry} {held_against}",
    }
