"""Swin-UMamba (Liu et al., MICCAI 2024): a VMamba encoder in a UNETR-style U-Net, 2D.

Paper: Liu, Yang, Zhou, Xi, Yu, Yu, Liang, Shi, Zhang, Zheng, Wang. Swin-UMamba: Mamba-based UNet with
ImageNet-based pretraining. MICCAI 2024 (arXiv:2402.03302). Reference code: https://github.com/JiarunLiu/Swin-UMamba
(`swin_umamba/nnunetv2/nets/SwinUMamba.py`, the model with the conv decoder; Swin-UMamba-dagger, with a Mamba
decoder, is not here).

Layout (widths w0..w4, 48..768 in the paper): a 7x7 stride-2 stem (w0, 1/2); VMamba-Tiny's encoder on it
(2x2 patch embedding to w1 at 1/4, four stages of VSS blocks, depths 2-2-9-2, patch merging between them, so
w1..w4 at 1/4..1/32); each of the stem and the first three stages feeds a residual conv block (MONAI's
UnetrBasicBlock) that widens it to the next width as a skip, the raw input feeds a fifth at full resolution;
the last stage is the bottleneck. The decoder is five MONAI UnetrUpBlocks and one UnetrBasicBlock; 1x1 heads
on the four finest decoder maps give deep supervision. The VSS block, SS2D scan, patch embedding and patch
merging are VM-UNet's (`zoo/vmunet.py`), which follow the same VMamba code.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from monai.networks.blocks.dynunet_block import UnetOutBlock
from monai.networks.blocks.unetr_block import UnetrBasicBlock, UnetrUpBlock
from torch import Tensor, nn

from usemabench.zoo.features import stage_info
from usemabench.zoo.layers.init import init_transformer_weights
from usemabench.zoo.registry import register_model
from usemabench.zoo.vmunet import PatchEmbed, PatchMerging, VSSBlock

PAPER = "Liu et al., Swin-UMamba: Mamba-based UNet with ImageNet-based pretraining, MICCAI 2024 (arXiv:2402.03302)"
CODE = "https://github.com/JiarunLiu/Swin-UMamba (swin_umamba/nnunetv2/nets/SwinUMamba.py)"
SIZE_DIVISOR = 32  # stem /2, patch embedding /2, three patch mergings


def residual_block(in_channels: int, out_channels: int) -> UnetrBasicBlock:
    """3x3 residual conv block with instance norm, as the reference builds every skip and the last decoder block."""
    return UnetrBasicBlock(2, in_channels, out_channels, kernel_size=3, stride=1, norm_name="instance", res_block=True)


def up_block(in_channels: int, out_channels: int) -> UnetrUpBlock:
    """2x2 transposed conv up, concatenate the skip, residual conv block."""
    return UnetrUpBlock(2, in_channels, out_channels, kernel_size=3, upsample_kernel_size=2, norm_name="instance", res_block=True)


class VSSEncoder(nn.Module):
    """VMamba's encoder: patch embedding, VSS stages with patch merging between them; returns each stage's NCHW map."""

    def __init__(self, in_channels: int, dims: Sequence[int], depths: Sequence[int], d_state: int, drop_path_rate: float, scan_backend: str) -> None:
        super().__init__()
        rates = torch.linspace(0, drop_path_rate, sum(depths), device="cpu").tolist()
        self.patch_embed = PatchEmbed(in_channels, dims[0], patch_size=2)
        self.stages = nn.ModuleList(
            nn.Sequential(*(VSSBlock(dim, rates[sum(depths[:index]) + block], d_state, scan_backend) for block in range(depth)))
            for index, (dim, depth) in enumerate(zip(dims, depths, strict=True))
        )
        self.downsamples = nn.ModuleList(PatchMerging(dim) for dim in dims[:-1])
        self.apply(init_transformer_weights)  # trunc-normal Linear, unit LayerNorm, as the reference's encoder

    def forward(self, x: Tensor) -> list[Tensor]:
        x = self.patch_embed(x)
        maps = []
        for index, stage in enumerate(self.stages):
            x = stage(x)
            maps.append(x.permute(0, 3, 1, 2))
            if index < len(self.downsamples):
                x = self.downsamples[index](x)
        return maps


class SwinUMamba(nn.Module):
    """Swin-UMamba: VMamba encoder, residual conv skips and a residual conv decoder (see the module docstring).

    Args:
        in_channels, num_classes: input channels and output classes.
        widths: the stem's width and the four VSS stages' (the paper: 48, 96, 192, 384, 768).
        depths: VSS blocks per stage (VMamba-Tiny: 2, 2, 9, 2).
        d_state: SSM state size; drop_path_rate: stochastic depth, linear over the VSS blocks;
        deep_supervision: in training mode return the logits of the four finest decoder maps, full size first;
        scan_backend: selective-scan backend (`zoo.layers.scan`).

    >>> model = SwinUMamba(1, 2, widths=(8, 16, 32, 64, 128), depths=(1, 1, 1, 1))
    >>> model.eval()(torch.randn(1, 1, 64, 64)).shape   # torch.Size([1, 2, 64, 64])
    """

    decoder_modules = ("skips", "decoder", "last_block", "heads")  # what `features_only` drops (zoo.features)

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        widths: Sequence[int] = (48, 96, 192, 384, 768),
        depths: Sequence[int] = (2, 2, 9, 2),
        d_state: int = 16,
        drop_path_rate: float = 0.2,
        deep_supervision: bool = True,
        scan_backend: str = "auto",
    ) -> None:
        super().__init__()
        if len(widths) != 5 or len(depths) != 4:
            raise ValueError(f"Swin-UMamba needs 5 widths (stem + 4 stages) and 4 depths; got {widths}, {depths}")
        self.deep_supervision = deep_supervision
        self.feature_info = stage_info(widths, [2, 4, 8, 16, 32], "encoder")
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, widths[0], kernel_size=7, stride=2, padding=3),
            nn.InstanceNorm2d(widths[0], affine=True),
        )
        self.encoder = VSSEncoder(widths[0], widths[1:], depths, d_state, drop_path_rate, scan_backend)
        # Skips, full resolution first: the raw input, the stem map and the first three stages, each widened.
        self.skips = nn.ModuleList(
            residual_block(cin, cout) for cin, cout in zip((in_channels, *widths[:-1]), widths, strict=True)
        )
        # Decoder in order of computation, from the bottleneck (w4, 1/32) up to full resolution (w0).
        self.decoder = nn.ModuleList(
            up_block(cin, cout) for cin, cout in zip((widths[4], *widths[4:0:-1]), widths[::-1], strict=True)
        )
        self.last_block = residual_block(widths[0], widths[0])
        self.heads = nn.ModuleList(UnetOutBlock(2, width, num_classes) for width in widths[:4])

    def forward_features(self, x: Tensor) -> list[Tensor]:
        """The stem's map (1/2) and the four VSS stages' (1/4 .. 1/32), NCHW."""
        stem = self.stem(x)
        return [stem, *self.encoder(stem)]

    def forward(self, x: Tensor) -> Tensor | list[Tensor]:
        stem, *stages = self.forward_features(x)
        skips = [block(source) for block, source in zip(self.skips, (x, stem, *stages[:3]), strict=True)]
        y = stages[3]
        decoded = []
        for block, skip in zip(self.decoder, reversed(skips), strict=True):
            y = block(y, skip)
            decoded.append(y)
        finest = self.last_block(y)
        if not (self.training and self.deep_supervision):
            return self.heads[0](finest)
        # Deep supervision on the full-resolution map and the 1/2, 1/4, 1/8 decoder maps (the reference's choice).
        return [head(feature) for head, feature in zip(self.heads, (finest, *decoded[-2:-5:-1]), strict=True)]


RECONSTRUCTED = (
    "deviation: no ImageNet VMamba-Tiny initialisation of the encoder (the paper's point; not available offline): "
    "trained from scratch",
    "the stem takes in_channels directly, as the reference does",
)
RESOLUTION_POLICY = "any size: zero-padded to a multiple of 32 (stem, patch embedding, 3 merges), output cropped back"
PAPER_CONFIG = dict(widths=(48, 96, 192, 384, 768), depths=(2, 2, 9, 2), d_state=16, drop_path_rate=0.2, deep_supervision=True)
SMALL = dict(widths=(8, 16, 32, 64, 128), depths=(1, 1, 1, 1), d_state=8, drop_path_rate=0.1, deep_supervision=True)


@register_model(
    family="mamba",
    paper=PAPER,
    code=CODE,
    config=PAPER_CONFIG,
    size_divisor=SIZE_DIVISOR,
    size_policy="pad",
    resolution_policy=RESOLUTION_POLICY,
    reconstructed=RECONSTRUCTED,
    test_variant="swin_umamba_small",
)
def swin_umamba(in_channels: int, num_classes: int, **config) -> SwinUMamba:
    """Swin-UMamba (VMamba-Tiny encoder, conv decoder), the paper's configuration."""
    return SwinUMamba(in_channels, num_classes, **config)


@register_model(
    family="mamba",
    paper=PAPER,
    code=CODE,
    config=SMALL,
    size_divisor=SIZE_DIVISOR,
    size_policy="pad",
    resolution_policy=RESOLUTION_POLICY,
    reconstructed=RECONSTRUCTED,
    small=True,
)
def swin_umamba_small(in_channels: int, num_classes: int, **config) -> SwinUMamba:
    """Swin-UMamba with widths 8..128 and one VSS block per stage: the CPU test variant."""
    return SwinUMamba(in_channels, num_classes, **config)
