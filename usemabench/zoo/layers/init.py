"""The Swin/ViT weight initialisation that several reference codes (Swin-UNet, VM-UNet's VSSM, MLLA) share."""

from __future__ import annotations

from timm.layers import trunc_normal_
from torch import nn


def init_transformer_weights(module: nn.Module) -> None:
    """Truncated normal std 0.02 for Linear weights, zero biases, LayerNorm set to identity; use with `Module.apply`."""
    if isinstance(module, nn.Linear):
        trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)
