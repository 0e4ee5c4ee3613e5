"""Which kernels a model actually ran, for `environment.backends` of its records.

SEMA: the backend each SEMA module resolves to on the device. Selective scan: the backend the scan
dispatched to during a probe forward (for models with Mamba SSM parameters, named `A_log`/`A_logs`
as in mamba-ssm and VMamba). SDPA kernels are not observed here (that needs the profiler, which is
noisy and slow); the profile records name them.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from usemabench.runners.precision import autocast
from usemabench.zoo.layers import scan, sema
from usemabench.zoo.layers.mixers import SEMAAttention

SCAN_PARAMETER_NAMES = ("A_log", "A_logs")


def kernel_backends(model: nn.Module, sample: torch.Tensor, device: torch.device, precision: str = "fp32") -> dict[str, Any]:
    """Backends of the SEMA and selective-scan kernels `model` runs on `sample` (B, C, H, W)."""
    backends: dict[str, Any] = {}
    sema_modules = [module for module in model.modules() if isinstance(module, SEMAAttention)]
    if sema_modules:
        backends["sema"] = sorted({sema.resolve_backend(module.backend, device) for module in sema_modules})
    if any(name.rsplit(".", 1)[-1] in SCAN_PARAMETER_NAMES for name, _ in model.named_parameters()):
        model.eval()
        with torch.inference_mode(), autocast(precision, device):
            model(sample.to(device))  # the probe: the scan's last backend is now this model's
        backends["selective_scan"] = scan.last_backend_used()
    return backends
