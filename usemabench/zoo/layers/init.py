"""Weight initialisations shared by several reference codes: nnU-Net's He init for the conv U-Nets
(nnU-Net, U-Mamba, USEMA) and the Swin/ViT init (Swin-UNet, VM-UNet's VSSM, MLLA)."""

from __future__ import annotations

from timm.layers import trunc_normal_
from torch import nn


def init_conv_he(module: nn.Module) -> None:
    """nnU-Net's InitWeights_He(1e-2): Kaiming-normal 2D conv and transposed-conv weights (LeakyReLU slope
    0.01), zero biases; other layers (Mamba's conv1d included) keep theirs. Use with `Module.apply`."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.kaiming_normal_(module.weight, a=1e-2)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


def init_transformer_weights(module: nn.Module) -> None:
    """Truncated normal std 0.02 for Linear weights, zero biases, LayerNorm set to identity; use with `Module.apply`."""
    if isinstance(module, nn.Linear):
        trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)
