"""TransUNet: a ResNet-50 + ViT-B/16 hybrid encoder with global self-attention and a cascaded upsampler.

Paper: Chen et al., "TransUNet: Transformers Make Strong Encoders for Medical Image Segmentation",
arXiv 2102.04306 (2021). Reference code: Beckschen/TransUNet `networks/vit_seg_modeling.py`,
`vit_seg_modeling_resnet_skip.py` and `vit_seg_configs.py` (`get_r50_b16_config`).

Structure (R50-ViT-B/16, the paper's main model):
- R50 stem: StdConv 7x7/2 + GroupNorm + ReLU (1/2, 64 ch, first skip), 3x3/2 max-pool without padding,
  then three stages of bottleneck units (3, 4, 9) with widths 256 (1/4), 512 (1/8), 1024 (1/16).
  The units are conv-GN-ReLU bottlenecks with weight-standardised convs, the stride on the 3x3 conv,
  and a 1x1 projection + GroupNorm(one group per channel) on the shortcut when the shape changes.
- ViT-B: a 1x1 patch embedding of the 1/16 R50 features to 768 dims, learned position embeddings,
  12 pre-norm Transformer layers (12 heads, MLP 3072, dropout 0.1), final LayerNorm. Every token attends
  to every other token: global attention over (H/16)*(W/16) tokens.
- Cascaded upsampler: conv3x3-BN-ReLU 768->512, then four blocks (bilinear x2 with aligned corners,
  concatenate the 1/8, 1/4, 1/2 skips, 2x conv3x3-BN-ReLU) to 256, 128, 64, 16 channels, and a 3x3 head.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from timm.layers import Mlp, StdConv2d, resample_abs_pos_embed, trunc_normal_
from timm.models.vision_transformer import Attention
from torch import Tensor, nn

from usemabench.zoo.registry import register_model

PATCH_GRID_STRIDE = 16
PAPER = "Chen et al., TransUNet: Transformers Make Strong Encoders for Medical Image Segmentation, arXiv 2102.04306"
CODE = "https://github.com/Beckschen/TransUNet (networks/vit_seg_modeling.py, vit_seg_modeling_resnet_skip.py)"


def std_conv(in_channels: int, out_channels: int, kernel_size: int, stride: int = 1) -> StdConv2d:
    """Weight-standardised conv without bias; eps 1e-5 inside the square root, as in the reference."""
    return StdConv2d(in_channels, out_channels, kernel_size, stride, padding=kernel_size // 2, bias=False, eps=1e-5)


class Bottleneck(nn.Module):
    """1x1 -> 3x3 (stride) -> 1x1 bottleneck with GroupNorm(32) after each conv and ReLU after the sum."""

    def __init__(self, in_channels: int, out_channels: int, mid_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = std_conv(in_channels, mid_channels, 1)
        self.gn1 = nn.GroupNorm(32, mid_channels, eps=1e-6)
        self.conv2 = std_conv(mid_channels, mid_channels, 3, stride)
        self.gn2 = nn.GroupNorm(32, mid_channels, eps=1e-6)
        self.conv3 = std_conv(mid_channels, out_channels, 1)
        self.gn3 = nn.GroupNorm(32, out_channels, eps=1e-6)
        self.act = nn.ReLU(inplace=True)
        self.shortcut = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            # The reference normalises the projection with one group per channel (and default eps 1e-5).
            self.shortcut = nn.Sequential(
                std_conv(in_channels, out_channels, 1, stride), nn.GroupNorm(out_channels, out_channels)
            )

    def forward(self, x: Tensor) -> Tensor:
        y = self.act(self.gn1(self.conv1(x)))
        y = self.act(self.gn2(self.conv2(y)))
        y = self.gn3(self.conv3(y))
        return self.act(self.shortcut(x) + y)


class ResNetEncoder(nn.Module):
    """The R50 part of R50-ViT: stem and three stages; returns 1/16 features and the 1/8, 1/4, 1/2 skips."""

    def __init__(self, in_channels: int, units: Sequence[int] = (3, 4, 9), width: int = 64) -> None:
        super().__init__()
        # reconstructed: the stem takes in_channels directly (the reference repeats grey input to 3 channels)
        self.stem = nn.Sequential(std_conv(in_channels, width, 7, 2), nn.GroupNorm(32, width, eps=1e-6), nn.ReLU(inplace=True))
        # No padding: a 2k feature map becomes k-1 wide; the 1/4 skip is zero-filled back to k below.
        self.pool = nn.MaxPool2d(kernel_size=3, stride=2, padding=0)
        stage_inputs = [width, 4 * width, 8 * width]
        stage_outputs = [4 * width, 8 * width, 16 * width]
        self.stages = nn.ModuleList()
        for index, (count, cin, cout) in enumerate(zip(units, stage_inputs, stage_outputs)):
            mid = width * 2**index
            blocks = [Bottleneck(cin, cout, mid, stride=1 if index == 0 else 2)]
            blocks += [Bottleneck(cout, cout, mid) for _ in range(count - 1)]
            self.stages.append(nn.Sequential(*blocks))
        self.out_channels = stage_outputs[-1]
        self.skip_channels = (8 * width, 4 * width, width)

    def forward(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        height, width = x.shape[-2:]
        half = self.stem(x)
        quarter = self.stages[0](self.pool(half))
        eighth = self.stages[1](quarter)
        sixteenth = self.stages[2](eighth)
        quarter = F.pad(quarter, (0, width // 4 - quarter.shape[-1], 0, height // 4 - quarter.shape[-2]))
        return sixteenth, [eighth, quarter, half]


class TransformerLayer(nn.Module):
    """Pre-norm ViT layer: x + MHSA(LN(x)), then x + MLP(LN(x)); dropout only in the MLP, as configured."""

    def __init__(self, dim: int, num_heads: int, mlp_dim: int, dropout: float, attention_dropout: float) -> None:
        super().__init__()
        self.attention_norm = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, num_heads=num_heads, qkv_bias=True, attn_drop=attention_dropout, proj_drop=attention_dropout)
        self.ffn_norm = nn.LayerNorm(dim, eps=1e-6)
        self.ffn = Mlp(dim, mlp_dim, act_layer=nn.GELU, drop=dropout)
        for linear in (self.ffn.fc1, self.ffn.fc2):
            nn.init.xavier_uniform_(linear.weight)
            nn.init.normal_(linear.bias, std=1e-6)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(self.attention_norm(x))
        return x + self.ffn(self.ffn_norm(x))


class ConvBNReLU(nn.Sequential):
    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(
            nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False), nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True)
        )


class DecoderBlock(nn.Module):
    """Bilinear x2 (aligned corners, as nn.UpsamplingBilinear2d), optional skip concat, two conv-BN-ReLU."""

    def __init__(self, in_channels: int, out_channels: int, skip_channels: int) -> None:
        super().__init__()
        self.conv1 = ConvBNReLU(in_channels + skip_channels, out_channels)
        self.conv2 = ConvBNReLU(out_channels, out_channels)

    def forward(self, x: Tensor, skip: Tensor | None) -> Tensor:
        x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True)
        if skip is not None:
            x = torch.cat([x, skip], dim=1)
        return self.conv2(self.conv1(x))


class TransUNet(nn.Module):
    """TransUNet (R50-ViT-B/16): an R50 stem, a ViT on its 1/16 features, and a cascaded upsampler.

    Args:
        in_channels, num_classes: input channels and output classes.
        img_size: the size the position embeddings are learned for ((img_size/16)^2 tokens); other
            sizes (multiples of 16) use a bicubic resample of them, computed on the fly.
        resnet_units, resnet_width: bottleneck units per R50 stage and stem width (R50: (3, 4, 9), 64).
        hidden_size, num_layers, num_heads, mlp_dim: the ViT (ViT-B: 768, 12, 12, 3072).
        dropout, attention_dropout: ViT dropout (embeddings and MLP) and attention dropout.
        head_channels, decoder_channels: the upsampler's first conv and its four blocks.
        n_skip: how many R50 skips (1/8, 1/4, 1/2) the upsampler uses (paper: 3).

    >>> model = TransUNet(1, 9)
    >>> model.eval()(torch.randn(1, 1, 224, 224)).shape
    torch.Size([1, 9, 224, 224])
    """

    decoder_modules = ("conv_more", "decoder", "segmentation_head")  # what `features_only` drops (zoo.features)

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        img_size: int = 224,
        resnet_units: Sequence[int] = (3, 4, 9),
        resnet_width: int = 64,
        hidden_size: int = 768,
        num_layers: int = 12,
        num_heads: int = 12,
        mlp_dim: int = 3072,
        dropout: float = 0.1,
        attention_dropout: float = 0.0,
        head_channels: int = 512,
        decoder_channels: Sequence[int] = (256, 128, 64, 16),
        n_skip: int = 3,
    ) -> None:
        super().__init__()
        if img_size % PATCH_GRID_STRIDE:
            raise ValueError(f"TransUNet img_size must be a multiple of {PATCH_GRID_STRIDE}, got {img_size}")
        if len(decoder_channels) != 4 or not 0 <= n_skip <= 3:
            raise ValueError(f"TransUNet needs 4 decoder_channels and 0 <= n_skip <= 3; got {decoder_channels}, {n_skip}")
        self.grid_size = (img_size // PATCH_GRID_STRIDE, img_size // PATCH_GRID_STRIDE)
        self.resnet = ResNetEncoder(in_channels, resnet_units, resnet_width)
        self.patch_embed = nn.Conv2d(self.resnet.out_channels, hidden_size, kernel_size=1)
        self.pos_embed = nn.Parameter(torch.zeros(1, self.grid_size[0] * self.grid_size[1], hidden_size))
        # reconstructed: trunc-normal(0.02) init, as ViT trained from scratch (the reference loads ImageNet-21k).
        trunc_normal_(self.pos_embed, std=0.02)
        self.embed_dropout = nn.Dropout(dropout)
        self.layers = nn.ModuleList(
            TransformerLayer(hidden_size, num_heads, mlp_dim, dropout, attention_dropout) for _ in range(num_layers)
        )
        self.encoder_norm = nn.LayerNorm(hidden_size, eps=1e-6)
        self.feature_info = [
            {"num_chs": channels, "reduction": reduction, "module": module}
            for channels, reduction, module in zip(
                [*self.resnet.skip_channels[::-1], hidden_size], [2, 4, 8, 16],
                ["resnet.stem", "resnet.stages.0", "resnet.stages.1", "encoder_norm"],
            )
        ]
        self.conv_more = ConvBNReLU(hidden_size, head_channels)
        skip_channels = [*self.resnet.skip_channels[:n_skip], *[0] * (4 - n_skip)]
        block_inputs = [head_channels, *decoder_channels[:-1]]
        self.n_skip = n_skip
        self.decoder = nn.ModuleList(
            DecoderBlock(cin, cout, skip) for cin, cout, skip in zip(block_inputs, decoder_channels, skip_channels)
        )
        self.segmentation_head = nn.Conv2d(decoder_channels[-1], num_classes, kernel_size=3, padding=1)

    def position_embeddings(self, grid: tuple[int, int]) -> Tensor:
        """The learned embeddings at their own grid, or resampled bicubically to another token grid."""
        if grid == self.grid_size:
            return self.pos_embed
        return resample_abs_pos_embed(self.pos_embed, list(grid), list(self.grid_size), num_prefix_tokens=0)

    def encode(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        """Tokens after the ViT, shaped as a (B, hidden, H/16, W/16) map, and the R50 skips."""
        features, skips = self.resnet(x)
        tokens = self.patch_embed(features)
        grid = (tokens.shape[-2], tokens.shape[-1])
        tokens = tokens.flatten(2).transpose(1, 2)
        tokens = self.embed_dropout(tokens + self.position_embeddings(grid))
        for layer in self.layers:
            tokens = layer(tokens)
        tokens = self.encoder_norm(tokens)
        return tokens.transpose(1, 2).reshape(tokens.shape[0], -1, *grid), skips

    def forward_features(self, x: Tensor) -> list[Tensor]:
        """The R50 maps at 1/2, 1/4, 1/8 and the ViT's tokens as a 1/16 map."""
        tokens, skips = self.encode(x)
        return [*skips[::-1], tokens]

    def forward(self, x: Tensor) -> Tensor:
        height, width = x.shape[-2:]
        if height % PATCH_GRID_STRIDE or width % PATCH_GRID_STRIDE:
            raise ValueError(f"TransUNet needs height and width divisible by {PATCH_GRID_STRIDE}; got {height}x{width}")
        x, skips = self.encode(x)
        x = self.conv_more(x)
        for index, block in enumerate(self.decoder):
            x = block(x, skips[index] if index < self.n_skip else None)
        return self.segmentation_head(x)


RESOLUTION_POLICY = (
    "position embeddings learned for img_size/16 tokens per side (default 224 -> 14x14); other sizes use a "
    "bicubic (antialiased) resample of them computed in forward, the stored parameter unchanged; inputs "
    "padded to a multiple of 16"
)
RECONSTRUCTED = (
    "the stem conv takes in_channels directly (the reference repeats grayscale input to 3 channels)",
    "position embeddings trunc-normal(0.02) initialised; no ImageNet-21k pretraining",
)


@register_model(
    family="attention-full",
    paper=PAPER,
    code=CODE,
    config=dict(img_size=224),
    size_divisor=16,
    size_policy="pad",
    resolution_policy=RESOLUTION_POLICY,
    reconstructed=RECONSTRUCTED,
    test_variant="transunet_small",
)
def transunet(in_channels: int, num_classes: int, **config: Any) -> TransUNet:
    """TransUNet R50-ViT-B/16: 12 global-attention layers on 1/16 tokens, cascaded upsampler."""
    return TransUNet(in_channels, num_classes, **config)


@register_model(
    family="attention-full",
    paper=PAPER,
    code=CODE,
    config=dict(
        img_size=64,
        resnet_units=(1, 1, 1),
        resnet_width=32,
        hidden_size=192,
        num_layers=2,
        num_heads=3,
        mlp_dim=768,
        head_channels=128,
        decoder_channels=(64, 32, 16, 16),
    ),
    size_divisor=16,
    size_policy="pad",
    resolution_policy=RESOLUTION_POLICY,
    reconstructed=RECONSTRUCTED,
    small=True,
)
def transunet_small(in_channels: int, num_classes: int, **config: Any) -> TransUNet:
    """TransUNet with one unit per R50 stage and a 2-layer, 192-wide ViT: the CPU test variant."""
    return TransUNet(in_channels, num_classes, **config)
