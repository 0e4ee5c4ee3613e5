"""VM-UNet: Ruan & Xiang, "VM-UNet: Vision Mamba UNet for Medical Image Segmentation", arXiv:2402.02491 (2024).
Reference code: JCruan519/VM-UNet, `models/vmunet/vmunet.py` and `vmamba.py` (VMamba's SS2D, Liu et al. 2024).

A Swin-UNet-shaped model whose blocks are VMamba's VSS blocks: patch embedding (4x4), encoder stages of VSS
blocks with patch merging, decoder stages with patch expanding and additive skips, a final x4 patch
expansion and a 1x1 conv. SS2D scans the feature map in four orders (row-major, column-major and both
reversed) as one grouped selective scan and sums the four results back in row-major order.
Parameter names follow the reference, so its checkpoints map onto this model.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from timm.layers import DropPath
from torch import Tensor, nn

from usemabench.zoo.layers.init import init_transformer_weights
from usemabench.zoo.layers.mamba import init_dt_projection_, s4d_real_log_A
from usemabench.zoo.layers.patch_expand import PatchExpand
from usemabench.zoo.layers.scan import selective_scan
from usemabench.zoo.features import stage_info
from usemabench.zoo.registry import register_model

DIRECTIONS = 4  # row-major, column-major, reversed row-major, reversed column-major


def cross_scan(x: Tensor) -> Tensor:
    """(batch, channels, H, W) -> (batch, 4, channels, H*W): the four scan orders of SS2D."""
    rows = x.flatten(2)
    columns = x.transpose(2, 3).flatten(2)
    return torch.stack([rows, columns, rows.flip(-1), columns.flip(-1)], dim=1)


def cross_merge(y: Tensor, height: int, width: int) -> Tensor:
    """(batch, 4, channels, H*W) in the four scan orders -> (batch, channels, H*W) row-major, summed."""
    rows = y[:, 0] + y[:, 2].flip(-1)
    columns = y[:, 1] + y[:, 3].flip(-1)
    batch, channels, _ = rows.shape
    return rows + columns.reshape(batch, channels, width, height).transpose(2, 3).reshape(batch, channels, -1)


class SS2D(nn.Module):
    """VMamba's 2D selective scan on channels-last maps (batch, H, W, d_model).

    in_proj -> (x, z); x -> depthwise conv (d_conv) -> SiLU -> 4-direction selective scan with per-direction
    x/dt projections, A and D -> merged -> LayerNorm -> * SiLU(z) -> out_proj. The scan runs in float32.
    """

    def __init__(
        self,
        d_model: int,
        d_state: int = 16,
        d_conv: int = 3,
        expand: int = 2,
        dt_min: float = 0.001,
        dt_max: float = 0.1,
        dt_init_floor: float = 1e-4,
        scan_backend: str = "auto",
    ) -> None:
        super().__init__()
        self.d_state = d_state
        self.d_inner = expand * d_model
        self.dt_rank = math.ceil(d_model / 16)
        self.scan_backend = scan_backend
        self.in_proj = nn.Linear(d_model, 2 * self.d_inner, bias=False)
        self.conv2d = nn.Conv2d(self.d_inner, self.d_inner, d_conv, padding=(d_conv - 1) // 2, groups=self.d_inner)
        projection = (self.dt_rank + 2 * d_state, self.d_inner)
        self.x_proj_weight = nn.Parameter(torch.empty(DIRECTIONS, *projection))
        nn.init.uniform_(self.x_proj_weight, -self.d_inner**-0.5, self.d_inner**-0.5)  # nn.Linear's default
        self.dt_projs_weight = nn.Parameter(torch.empty(DIRECTIONS, self.d_inner, self.dt_rank))
        self.dt_projs_bias = nn.Parameter(torch.empty(DIRECTIONS, self.d_inner))
        for weight, bias in zip(self.dt_projs_weight, self.dt_projs_bias, strict=True):
            init_dt_projection_(weight, bias, self.dt_rank, dt_min, dt_max, dt_init_floor)
        self.A_logs = nn.Parameter(s4d_real_log_A(DIRECTIONS * self.d_inner, d_state))
        self.Ds = nn.Parameter(torch.ones(DIRECTIONS * self.d_inner))
        self.A_logs._no_weight_decay = True
        self.Ds._no_weight_decay = True
        self.out_norm = nn.LayerNorm(self.d_inner)
        self.out_proj = nn.Linear(self.d_inner, d_model, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        batch, height, width, _ = x.shape
        x, z = self.in_proj(x).chunk(2, dim=-1)
        x = F.silu(self.conv2d(x.permute(0, 3, 1, 2)))
        xs = cross_scan(x)  # (batch, 4, d_inner, L)
        dts, B, C = torch.einsum("bkdl,kcd->bkcl", xs, self.x_proj_weight).split(
            [self.dt_rank, self.d_state, self.d_state], dim=2
        )
        dts = torch.einsum("bkrl,kdr->bkdl", dts, self.dt_projs_weight)
        length = height * width
        scan_dtype = torch.promote_types(xs.dtype, torch.float32)  # float32 at least, as the reference
        y = selective_scan(
            xs.to(scan_dtype).reshape(batch, -1, length),
            dts.to(scan_dtype).reshape(batch, -1, length),
            -torch.exp(self.A_logs.to(scan_dtype)),
            B.to(scan_dtype),  # (batch, 4, d_state, L): one group of B and C per direction
            C.to(scan_dtype),
            self.Ds.to(scan_dtype),
            delta_bias=self.dt_projs_bias.to(scan_dtype).flatten(),
            delta_softplus=True,
            backend=self.scan_backend,
        ).reshape(batch, DIRECTIONS, self.d_inner, length)
        y = cross_merge(y, height, width).transpose(1, 2).reshape(batch, height, width, self.d_inner)
        return self.out_proj(self.out_norm(y) * F.silu(z))


class VSSBlock(nn.Module):
    """x + DropPath(SS2D(LayerNorm(x))) on channels-last maps."""

    def __init__(self, dim: int, drop_path: float, d_state: int, scan_backend: str) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(dim)
        self.self_attention = SS2D(dim, d_state=d_state, scan_backend=scan_backend)  # the reference's name
        self.drop_path = DropPath(drop_path)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.drop_path(self.self_attention(self.ln_1(x)))


class PatchEmbed(nn.Module):
    """Non-overlapping patch_size x patch_size conv, then LayerNorm; returns channels-last."""

    def __init__(self, in_channels: int, dim: int, patch_size: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_channels, dim, patch_size, stride=patch_size)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.norm(self.proj(x).permute(0, 2, 3, 1))


class PatchMerging(nn.Module):
    """Swin's 2x2 patch merging: concatenate each 2x2 neighbourhood (4C), LayerNorm, Linear to 2C."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(4 * dim)
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        x = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], dim=-1)
        return self.reduction(self.norm(x))


class VSSLayer(nn.Module):
    """One stage: optional upsampling first (decoder), VSS blocks, optional downsampling last (encoder)."""

    def __init__(self, dim, depth, drop_paths, d_state, scan_backend, downsample=False, upsample=False) -> None:
        super().__init__()
        self.upsample = PatchExpand(2 * dim, dim, scale=2) if upsample else None
        self.blocks = nn.ModuleList(VSSBlock(dim, drop_paths[i], d_state, scan_backend) for i in range(depth))
        self.downsample = PatchMerging(dim) if downsample else None

    def forward(self, x: Tensor) -> Tensor:
        if self.upsample is not None:
            x = self.upsample(x)
        for block in self.blocks:
            x = block(x)
        return x if self.downsample is None else self.downsample(x)


class VMUNet(nn.Module):
    """VM-UNet: VSS encoder (depths) and decoder (depths_decoder) with additive skips.

    Args: in_channels, num_classes; depths (2, 2, 2, 2) and depths_decoder (2, 2, 2, 1); dims (96, 192, 384,
    768; the decoder mirrors them); d_state 16; drop_path_rate (0.2; linear over the encoder blocks, reversed
    over the decoder's); patch_size 4; scan_backend (see `zoo.layers.scan`). Inputs need sides divisible by
    patch_size * 2^(stages - 1) (32).

    >>> model = VMUNet(1, 2, dims=(16, 32, 64, 128))
    >>> model(torch.randn(1, 1, 64, 64)).shape   # torch.Size([1, 2, 64, 64])
    """

    decoder_modules = ("layers_up", "final_up", "final_conv")  # what `features_only` drops (zoo.features)

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        depths: Sequence[int] = (2, 2, 2, 2),
        depths_decoder: Sequence[int] = (2, 2, 2, 1),
        dims: Sequence[int] = (96, 192, 384, 768),
        d_state: int = 16,
        drop_path_rate: float = 0.2,
        patch_size: int = 4,
        scan_backend: str = "auto",
    ) -> None:
        super().__init__()
        n_stages = len(dims)
        if len(depths) != n_stages or len(depths_decoder) != n_stages:
            raise ValueError(
                f"VM-UNet: depths {depths} and depths_decoder {depths_decoder} need {n_stages} entries, one per dim"
            )
        dims_decoder = list(dims)[::-1]
        rates = torch.linspace(0, drop_path_rate, sum(depths), device="cpu").tolist()
        rates_decoder = torch.linspace(0, drop_path_rate, sum(depths_decoder), device="cpu").tolist()[::-1]
        # reconstructed: in_channels directly (the reference repeats grey input to 3 channels); no VMamba init
        self.patch_embed = PatchEmbed(in_channels, dims[0], patch_size)
        self.feature_info = stage_info(dims, [patch_size * 2**stage for stage in range(n_stages)], "layers")
        self.layers = nn.ModuleList(
            VSSLayer(dims[i], depths[i], rates[sum(depths[:i]) :], d_state, scan_backend, downsample=i < n_stages - 1)
            for i in range(n_stages)
        )
        self.layers_up = nn.ModuleList(
            VSSLayer(
                dims_decoder[i], depths_decoder[i], rates_decoder[sum(depths_decoder[:i]) :], d_state, scan_backend,
                upsample=i > 0,
            )
            for i in range(n_stages)
        )
        self.final_up = PatchExpand(dims_decoder[-1], dims_decoder[-1] // patch_size, scale=patch_size)
        self.final_conv = nn.Conv2d(dims_decoder[-1] // patch_size, num_classes, 1)
        self.apply(init_transformer_weights)

    def forward_features(self, x: Tensor) -> list[Tensor]:
        """NCHW maps at 1/4 (the patch embedding), 1/8 and 1/16 (as the decoder's skips see them) and 1/32 (the
        last stage's output)."""
        x = self.patch_embed(x)
        features = []
        for layer in self.layers:
            features.append(x)
            x = layer(x)
        return [feature.permute(0, 3, 1, 2) for feature in (*features[:-1], x)]

    def forward(self, x: Tensor) -> Tensor:
        x = self.patch_embed(x)
        skips = []
        for layer in self.layers:
            skips.append(x)
            x = layer(x)
        for i, layer in enumerate(self.layers_up):
            # The reference adds the input of encoder stage (n - i) before the decoder stage upsamples it.
            x = layer(x if i == 0 else x + skips[-i])
        return self.final_conv(self.final_up(x).permute(0, 3, 1, 2))


PAPER = "Ruan & Xiang, VM-UNet: Vision Mamba UNet for Medical Image Segmentation, arXiv:2402.02491, 2024"
CODE = "https://github.com/JCruan519/VM-UNet (models/vmunet/vmunet.py, vmamba.py)"
RECONSTRUCTED = (
    "deviation: no ImageNet VMamba-S initialisation (the paper loads it; not available offline); trained from scratch",
    "deviation: the patch embedding takes in_channels directly (the reference repeats a grey channel to 3 for "
    "its RGB weights) and the model returns logits (the reference applies a sigmoid when num_classes == 1)",
)
RESOLUTION_POLICY = "any size: zero-padded to a multiple of 32 (patch 4 x 3 merges), output cropped back"


@register_model(
    family="mamba",
    paper=PAPER,
    code=CODE,
    config=dict(depths=(2, 2, 2, 2), depths_decoder=(2, 2, 2, 1), dims=(96, 192, 384, 768), drop_path_rate=0.2),
    size_divisor=32,
    resolution_policy=RESOLUTION_POLICY,
    reconstructed=RECONSTRUCTED,
    test_variant="vmunet_small",
)
def vmunet(in_channels: int, num_classes: int, **config) -> VMUNet:
    """VM-UNet: VMamba SS2D blocks in a U-shape (depths 2-2-2-2 / 2-2-2-1, dims 96-768)."""
    return VMUNet(in_channels, num_classes, **config)


@register_model(
    family="mamba",
    paper=PAPER,
    code=CODE,
    name="vmunet_small",
    config=dict(depths=(1, 1, 1, 1), depths_decoder=(1, 1, 1, 1), dims=(16, 32, 64, 128), drop_path_rate=0.1),
    size_divisor=32,
    resolution_policy=RESOLUTION_POLICY,
    reconstructed=RECONSTRUCTED,
    small=True,
)
def vmunet_small(in_channels: int, num_classes: int, **config) -> VMUNet:
    """VM-UNet, test-sized (one VSS block per stage, dims 16-128)."""
    return VMUNet(in_channels, num_classes, **config)
