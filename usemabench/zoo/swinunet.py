"""Swin-UNet: a pure Swin Transformer U-shape (Swin-T encoder, symmetric Swin decoder with patch expanding).

Paper: Cao et al., "Swin-Unet: Unet-like Pure Transformer for Medical Image Segmentation", ECCV Workshops
2022 (arXiv 2105.05537). Reference code: HuCaoFighting/Swin-Unet
`networks/swin_transformer_unet_skip_expand_decoder_sys.py` (SwinTransformerSys) with
`configs/swin_tiny_patch4_window7_224_lite.yaml`.

Structure: 4x4 patch embedding + LayerNorm (96 ch, 1/4); encoder stages of 2, 2, 2, 2 Swin blocks (3, 6,
12, 24 heads, window 7, every second block shifted by 3) with patch merging between them (1/4 .. 1/32),
LayerNorm. Decoder: patch expanding 768 -> 384 (1/16), then for 1/16, 1/8, 1/4: concatenate the encoder
stage input, a linear 2C -> C, Swin blocks of the encoder's depth, and patch expanding (except at 1/4);
LayerNorm, a final 4x patch expanding and a 1x1 conv. Attention is windowed, never global.

Sizes: the reference builds its masks for one fixed `img_size` (224) and asserts it. At multiples of
224 every stage's map (56k, 28k, 14k, 7k) tiles into 7x7 windows and this module computes the same thing.
Other multiples of 32 (patch 4 x three merges) are accepted: each block zero-pads its normalised map to
a multiple of the window before the cyclic shift and crops after, the convention of the official Swin
Transformer for detection/segmentation and of MONAI's SwinUNETR; inputs are padded to a multiple of 32.
The padded tokens are not masked as keys (only the shift regions are), so they take part in attention:
at power-of-two inputs no stage map is a multiple of 7 (at 256: 64, 32, 16, 8 -> 70, 35, 21, 14), and
at 256 the 8x8 bottleneck is padded to 14x14, 132 of its 196 tokens padding.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from timm.layers import DropPath, Mlp
from timm.models.swin_transformer import PatchMerging, WindowAttention
from torch import Tensor, nn

from usemabench.zoo.layers.init import init_transformer_weights
from usemabench.zoo.layers.patch_expand import PatchExpand
from usemabench.zoo.features import stage_info
from usemabench.zoo.registry import register_model

PATCH_SIZE = 4
SIZE_DIVISOR = PATCH_SIZE * 2**3  # patch embedding and three patch mergings
PAPER = "Cao et al., Swin-Unet: Unet-like Pure Transformer for Medical Image Segmentation, ECCV Workshops 2022"
CODE = "https://github.com/HuCaoFighting/Swin-Unet (networks/swin_transformer_unet_skip_expand_decoder_sys.py)"


def shifted_window_mask(height: int, width: int, window: int, shift: int, device: torch.device) -> Tensor:
    """(num_windows, window^2, window^2) additive mask for shifted windows on a padded `height x width` map.

    After the cyclic shift a window may hold tokens from up to four regions that were not neighbours;
    pairs from different regions get -100 (the reference's value), pairs from the same region 0.
    """
    region = torch.zeros(height, width, device=device)
    bounds = (slice(0, -window), slice(-window, -shift), slice(-shift, None))
    label = 0
    for rows in bounds:
        for cols in bounds:
            region[rows, cols] = label
            label += 1
    windows = region.view(height // window, window, width // window, window).permute(0, 2, 1, 3).reshape(-1, window * window)
    different = windows.unsqueeze(1) != windows.unsqueeze(2)
    return torch.zeros_like(different, dtype=torch.float32).masked_fill(different, -100.0)


def partition_windows(x: Tensor, window: int) -> Tensor:
    """(B, H, W, C) -> (B * num_windows, window^2, C), windows in row-major order."""
    batch, height, width, channels = x.shape
    x = x.view(batch, height // window, window, width // window, window, channels)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, window * window, channels)


def merge_windows(windows: Tensor, window: int, height: int, width: int) -> Tensor:
    """Inverse of `partition_windows`."""
    channels = windows.shape[-1]
    x = windows.view(-1, height // window, width // window, window, window, channels)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, height, width, channels)


class SwinBlock(nn.Module):
    """Swin block on (B, H, W, C): x + W-MSA/SW-MSA(LN(x)), then x + MLP(LN(x)).

    A map no larger than one window in its short side gets no shift (as the reference decides at
    construction for its fixed size); maps that do not tile into windows are zero-padded after the norm.
    """

    def __init__(
        self, dim: int, num_heads: int, window_size: int, shifted: bool, mlp_ratio: float = 4.0, drop: float = 0.0, drop_path: float = 0.0
    ) -> None:
        super().__init__()
        self.window_size = window_size
        self.shift_size = window_size // 2 if shifted else 0
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, num_heads=num_heads, window_size=window_size, qkv_bias=True, proj_drop=drop)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), act_layer=nn.GELU, drop=drop)

    def attention(self, x: Tensor) -> Tensor:
        _, height, width, _ = x.shape
        window = self.window_size
        shift = self.shift_size if min(height, width) > window else 0
        # reconstructed: maps off 224k are zero-padded to whole windows (the reference asserts its img_size)
        x = F.pad(x, (0, 0, 0, -width % window, 0, -height % window))
        padded_height, padded_width = x.shape[1:3]
        mask = None
        if shift:
            x = torch.roll(x, shifts=(-shift, -shift), dims=(1, 2))
            mask = shifted_window_mask(padded_height, padded_width, window, shift, x.device).to(x.dtype)
        x = merge_windows(self.attn(partition_windows(x, window), mask=mask), window, padded_height, padded_width)
        if shift:
            x = torch.roll(x, shifts=(shift, shift), dims=(1, 2))
        return x[:, :height, :width]

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.drop_path(self.attention(self.norm1(x)))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class SwinStage(nn.Module):
    """`depth` Swin blocks alternating plain and shifted windows, then an optional resampling layer."""

    def __init__(
        self,
        dim: int,
        depth: int,
        num_heads: int,
        window_size: int,
        mlp_ratio: float,
        drop_paths: Sequence[float],
        drop: float,
        resample: nn.Module | None,
    ) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            SwinBlock(
                dim, num_heads, window_size, shifted=index % 2 == 1, mlp_ratio=mlp_ratio, drop=drop, drop_path=drop_paths[index]
            )
            for index in range(depth)
        )
        self.resample = resample if resample is not None else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        for block in self.blocks:
            x = block(x)
        return self.resample(x)


class SwinUNet(nn.Module):
    """Swin-UNet (Swin-T encoder, symmetric Swin decoder with patch expanding, 3 skip connections).

    Args:
        in_channels, num_classes: input channels and output classes.
        embed_dim: width at 1/4 (doubles per stage).
        depths, num_heads: Swin blocks and heads per stage (the decoder reuses them, as the reference does).
        window_size: attention window (7).
        mlp_ratio, drop_rate, drop_path_rate: MLP width ratio, dropout, stochastic depth (linear to the max).

    >>> model = SwinUNet(1, 9)
    >>> model.eval()(torch.randn(1, 1, 224, 224)).shape
    torch.Size([1, 9, 224, 224])
    """

    decoder_modules = ("expand_bottleneck", "concat_back_dim", "layers_up", "norm_up", "final_expand", "output")

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        embed_dim: int = 96,
        depths: Sequence[int] = (2, 2, 2, 2),
        num_heads: Sequence[int] = (3, 6, 12, 24),
        window_size: int = 7,
        mlp_ratio: float = 4.0,
        drop_rate: float = 0.0,
        drop_path_rate: float = 0.2,
    ) -> None:
        super().__init__()
        if len(depths) != 4 or len(num_heads) != 4:
            raise ValueError(f"Swin-UNet has 4 stages; got depths={depths}, num_heads={num_heads}")
        dims = [embed_dim * 2**stage for stage in range(4)]
        self.feature_info = stage_info(dims, [PATCH_SIZE * 2**stage for stage in range(4)], "layers")
        rates = torch.linspace(0, drop_path_rate, sum(depths), device="cpu").tolist()
        drop_paths = [rates[sum(depths[:stage]) : sum(depths[: stage + 1])] for stage in range(4)]

        # reconstructed: in_channels directly (the reference repeats grey input to 3 channels); no ImageNet init
        self.patch_embed = nn.Conv2d(in_channels, embed_dim, kernel_size=PATCH_SIZE, stride=PATCH_SIZE)
        self.patch_norm = nn.LayerNorm(embed_dim)
        self.pos_drop = nn.Dropout(drop_rate)
        self.layers = nn.ModuleList(
            SwinStage(
                dims[stage], depths[stage], num_heads[stage], window_size, mlp_ratio, drop_paths[stage], drop_rate,
                resample=PatchMerging(dims[stage]) if stage < 3 else None,
            )
            for stage in range(4)
        )
        self.norm = nn.LayerNorm(dims[3])
        self.expand_bottleneck = PatchExpand(dims[3], dims[2], scale=2)
        # Decoder stages in order of computation: 1/16, 1/8, 1/4.
        self.concat_back_dim = nn.ModuleList(nn.Linear(2 * dims[stage], dims[stage]) for stage in (2, 1, 0))
        self.layers_up = nn.ModuleList(
            SwinStage(
                dims[stage], depths[stage], num_heads[stage], window_size, mlp_ratio, drop_paths[stage], drop_rate,
                resample=PatchExpand(dims[stage], dims[stage - 1], scale=2) if stage > 0 else None,
            )
            for stage in (2, 1, 0)
        )
        self.norm_up = nn.LayerNorm(embed_dim)
        self.final_expand = PatchExpand(embed_dim, embed_dim, scale=PATCH_SIZE)
        self.output = nn.Conv2d(embed_dim, num_classes, kernel_size=1, bias=False)
        self.apply(init_transformer_weights)

    def forward_features(self, x: Tensor) -> list[Tensor]:
        """NCHW maps at 1/4, 1/8, 1/16 (the decoder's skips) and 1/32 (the normed bottleneck)."""
        x = self.pos_drop(self.patch_norm(self.patch_embed(x).permute(0, 2, 3, 1)))
        features = []
        for layer in self.layers:
            features.append(x)
            x = layer(x)
        return [feature.permute(0, 3, 1, 2) for feature in (*features[:3], self.norm(x))]

    def forward(self, x: Tensor) -> Tensor:
        height, width = x.shape[-2:]
        if height % SIZE_DIVISOR or width % SIZE_DIVISOR:
            raise ValueError(f"Swin-UNet needs height and width divisible by {SIZE_DIVISOR}; got {height}x{width}")
        x = self.pos_drop(self.patch_norm(self.patch_embed(x).permute(0, 2, 3, 1)))
        skips = []
        for layer in self.layers:
            skips.append(x)
            x = layer(x)
        x = self.expand_bottleneck(self.norm(x))
        for concat, layer, skip in zip(self.concat_back_dim, self.layers_up, skips[2::-1]):
            x = layer(concat(torch.cat([x, skip], dim=-1)))
        x = self.final_expand(self.norm_up(x))
        return self.output(x.permute(0, 3, 1, 2))


RESOLUTION_POLICY = (
    "no absolute position embeddings (relative position bias inside 7x7 windows); multiples of 224 tile "
    "exactly as in the reference (fixed at 224); other sizes: input padded to a multiple of 32 and each "
    "block's map zero-padded to a multiple of 7 (official Swin dense-prediction convention)"
)
RECONSTRUCTED = (
    "sizes other than 224k accepted by per-block window padding (the reference asserts its fixed img_size)",
    "the patch embedding takes in_channels directly (the reference repeats grayscale input to 3 channels)",
    "no ImageNet Swin-T initialisation",
)


@register_model(
    family="attention-window",
    paper=PAPER,
    code=CODE,
    config=dict(embed_dim=96, depths=(2, 2, 2, 2), num_heads=(3, 6, 12, 24), window_size=7, drop_path_rate=0.2),
    size_divisor=SIZE_DIVISOR,
    size_policy="pad",
    resolution_policy=RESOLUTION_POLICY,
    reconstructed=RECONSTRUCTED,
    test_variant="swin_unet_small",
)
def swin_unet(in_channels: int, num_classes: int, **config: Any) -> SwinUNet:
    """Swin-UNet (Swin-T, patch 4, window 7): windowed attention encoder and decoder."""
    return SwinUNet(in_channels, num_classes, **config)


@register_model(
    family="attention-window",
    paper=PAPER,
    code=CODE,
    config=dict(embed_dim=24, depths=(2, 2, 2, 2), num_heads=(1, 2, 2, 4), window_size=7, drop_path_rate=0.1),
    size_divisor=SIZE_DIVISOR,
    size_policy="pad",
    resolution_policy=RESOLUTION_POLICY,
    reconstructed=RECONSTRUCTED,
    small=True,
)
def swin_unet_small(in_channels: int, num_classes: int, **config: Any) -> SwinUNet:
    """Swin-UNet with 24 channels at 1/4: the CPU test variant."""
    return SwinUNet(in_channels, num_classes, **config)
