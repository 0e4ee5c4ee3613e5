"""Convolution blocks shared by the U-shaped models (nnU-Net conventions: InstanceNorm + LeakyReLU).

The residual block is nnU-Net's `BasicBlockD` (MIC-DKFZ/dynamic-network-architectures
`building_blocks/residual.py`, which U-Mamba uses after the first block of a stage): conv3x3-norm-act,
conv3x3-norm, the skip added, then the activation. When the block changes width or stride its skip is a
strided 1x1 conv + norm; BasicBlockD average-pools and then applies a stride-1 1x1 conv + norm, and
U-Mamba's `BasicResBlock` uses a 1x1 conv with bias and no norm (`umamba.ProjectedResidualBlock`).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def norm_2d(channels: int) -> nn.Module:
    """nnU-Net's default normalisation: InstanceNorm with affine parameters, eps 1e-5."""
    return nn.InstanceNorm2d(channels, eps=1e-5, affine=True)


def activation() -> nn.Module:
    """nnU-Net's default nonlinearity."""
    return nn.LeakyReLU(negative_slope=0.01, inplace=True)


class ConvNormAct(nn.Sequential):
    """conv(kernel, stride) -> InstanceNorm -> LeakyReLU."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1) -> None:
        super().__init__(
            nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding=kernel_size // 2, bias=True),
            norm_2d(out_channels),
            activation(),
        )


class ResidualBlock(nn.Module):
    """Two 3x3 convs with a residual connection; `stride` 2 downsamples in the first conv."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = ConvNormAct(in_channels, out_channels, 3, stride)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, padding=1, bias=True)
        self.norm2 = norm_2d(out_channels)
        self.skip = (
            nn.Identity()
            if in_channels == out_channels and stride == 1
            else nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride, bias=False), norm_2d(out_channels))
        )
        self.act = activation()

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.norm2(self.conv2(self.conv1(x))) + self.skip(x))


class ResidualStage(nn.Sequential):
    """`depth` residual blocks; the first changes width and (with `stride` 2) halves the size."""

    def __init__(self, in_channels: int, out_channels: int, depth: int, stride: int = 1) -> None:
        blocks = [ResidualBlock(in_channels, out_channels, stride)]
        blocks += [ResidualBlock(out_channels, out_channels) for _ in range(depth - 1)]
        super().__init__(*blocks)


class UpsampleConcat(nn.Module):
    """Transposed-conv x2 upsampling to the skip's width, then concatenation with the skip (nnU-Net)."""

    def __init__(self, in_channels: int, skip_channels: int) -> None:
        super().__init__()
        self.up = nn.ConvTranspose2d(in_channels, skip_channels, kernel_size=2, stride=2)

    def forward(self, x: Tensor, skip: Tensor) -> Tensor:
        return torch.cat([self.up(x), skip], dim=1)
