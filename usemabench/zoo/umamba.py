"""U-Mamba 2D: Ma, Li & Wang, "U-Mamba: Enhancing Long-range Dependency for Biomedical Image Segmentation",
arXiv:2401.04722 (2024). Reference code: bowang-lab/U-Mamba, `umamba/nnunetv2/nets/UMambaBot_2d.py` and
`UMambaEnc_2d.py` (built there by nnU-Net v2 from a dataset's plans).

An nnU-Net residual U-Net with Mamba layers (LayerNorm -> Mamba over the flattened pixels, no residual):
- U-Mamba_Bot: one Mamba layer on the bottleneck.
- U-Mamba_Enc: a Mamba layer after every other encoder stage, the last one included. A stage whose feature
  map has no more pixels than channels scans over the channels instead (U-Mamba's "channel tokens"), which
  ties it to the input size it was built for (`input_size`, nnU-Net's patch size).
Both halve the residual blocks of the deeper half of the encoder and decoder, as the reference does.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from usemabench.zoo.layers.conv import ConvNormAct, ResidualBlock, activation, norm_2d
from usemabench.zoo.layers.init import init_conv_he
from usemabench.zoo.layers.mamba import MambaLayer, autocast_disabled
from usemabench.zoo.features import stage_info
from usemabench.zoo.registry import register_model

PAPER = (
    "Ma, Li & Wang, U-Mamba: Enhancing Long-range Dependency for Biomedical Image Segmentation, "
    "arXiv:2401.04722, 2024"
)
CODE = "https://github.com/bowang-lab/U-Mamba (umamba/nnunetv2/nets/UMambaBot_2d.py, UMambaEnc_2d.py)"
# reconstructed: nnU-Net's 2D plan for a 256x256 patch, fixed (nnU-Net plans stages and widths per dataset)
NNUNET_2D_WIDTHS = (32, 64, 128, 256, 512, 512, 512)
RECONSTRUCTED = (
    "stages and widths fixed to nnU-Net's 2D plan for a 256x256 patch (7 stages, 32-512 channels, 3x3 kernels, "
    "stride 2 after the first stage); nnU-Net plans them per dataset",
)


class ProjectedResidualBlock(nn.Module):
    """U-Mamba's `BasicResBlock`: conv-norm-act, conv-norm, plus a 1x1 conv (with bias, no norm) of the input."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = ConvNormAct(in_channels, out_channels, 3, stride)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.norm2 = norm_2d(out_channels)
        self.skip = nn.Conv2d(in_channels, out_channels, 1, stride)
        self.act = activation()

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.norm2(self.conv2(self.conv1(x))) + self.skip(x))


def residual_stage(in_channels: int, out_channels: int, blocks: int, stride: int = 1) -> nn.Sequential:
    """A `ProjectedResidualBlock`, then `blocks - 1` identity-skip residual blocks (nnU-Net's `BasicBlockD`)."""
    return nn.Sequential(
        ProjectedResidualBlock(in_channels, out_channels, stride),
        *(ResidualBlock(out_channels, out_channels) for _ in range(blocks - 1)),
    )


class ImageMambaLayer(nn.Module):
    """LayerNorm -> Mamba over an image's pixels as tokens, or over its channels (`channel_tokens`).

    Channel-token mode treats each channel's H*W values as one token of width `dim` = H*W, so it only takes
    feature maps of exactly that size. Runs in float32 under autocast, like the reference.
    """

    def __init__(self, dim: int, channel_tokens: bool = False, scan_backend: str = "auto") -> None:
        super().__init__()
        self.dim = dim
        self.channel_tokens = channel_tokens
        self.norm = nn.LayerNorm(dim)
        self.mamba = MambaLayer(d_model=dim, d_state=16, d_conv=4, expand=2, scan_backend=scan_backend)

    def forward(self, x: Tensor) -> Tensor:
        batch, channels, height, width = x.shape
        with autocast_disabled(x.device.type):
            x = x.to(self.norm.weight.dtype)
            if self.channel_tokens:
                if height * width != self.dim:
                    raise ValueError(
                        f"U-Mamba channel-token layer was built for {self.dim} pixels per channel, got "
                        f"{height}x{width}; rebuild the model with input_size=(H, W) equal to your input "
                        "(or patch) size"
                    )
                return self.mamba(self.norm(x.flatten(2))).reshape(x.shape)
            tokens = x.flatten(2).transpose(1, 2)  # (batch, H*W, channels)
            return self.mamba(self.norm(tokens)).transpose(1, 2).reshape(x.shape)


class UpsampleLayer(nn.Module):
    """Nearest-neighbour x2 upsampling, then a 1x1 conv to the skip's width (U-Mamba's `UpsampleLayer`)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(F.interpolate(x, scale_factor=2, mode="nearest"))


class UMamba(nn.Module):
    """U-Mamba 2D (Bot or Enc placement) on the nnU-Net residual U-Net.

    Args: in_channels, num_classes; features_per_stage (widths; their count is the number of stages, the first
    at full resolution, each later one halving it); blocks_per_stage / blocks_per_stage_decoder (nnU-Net's
    n_conv_per_stage, 2; the deeper half is reduced to 1 as in the reference); mamba ("bottleneck" or
    "encoder"); input_size (Enc only: the size that decides channel-token stages); deep_supervision (in train
    mode return every decoder stage's logits, full resolution first); scan_backend (see `zoo.layers.scan`).

    >>> model = UMamba(1, 2, features_per_stage=(16, 32, 64), mamba="bottleneck")
    >>> model.eval()(torch.randn(1, 1, 64, 64)).shape   # torch.Size([1, 2, 64, 64])
    """

    decoder_modules = ("upsamples", "decoder_stages", "heads")  # what `features_only` drops (zoo.features)

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        features_per_stage: Sequence[int] = NNUNET_2D_WIDTHS,
        blocks_per_stage: int = 2,
        blocks_per_stage_decoder: int = 2,
        mamba: str = "bottleneck",
        input_size: tuple[int, int] = (256, 256),
        deep_supervision: bool = True,
        scan_backend: str = "auto",
    ) -> None:
        super().__init__()
        if mamba not in ("bottleneck", "encoder"):
            raise ValueError(f"U-Mamba: mamba must be 'bottleneck' or 'encoder', got {mamba!r}")
        widths = list(features_per_stage)
        n_stages = len(widths)
        # As in the reference: one block per stage in the deeper half of the encoder and of the decoder.
        encoder_blocks = [blocks_per_stage if s < math.ceil(n_stages / 2) else 1 for s in range(n_stages)]
        decoder_blocks = [
            blocks_per_stage_decoder if s < math.ceil((n_stages - 1) / 2 + 0.5) else 1 for s in range(n_stages - 1)
        ]
        self.deep_supervision = deep_supervision
        self.feature_info = stage_info(widths, [2**stage for stage in range(n_stages)], "mamba_layers")
        self.stem = residual_stage(in_channels, widths[0], encoder_blocks[0])
        self.stages = nn.ModuleList(
            residual_stage(widths[max(s - 1, 0)], widths[s], encoder_blocks[s], stride=1 if s == 0 else 2)
            for s in range(n_stages)
        )
        self.mamba_layers = nn.ModuleList(
            self._encoder_mamba(s, widths, input_size, scan_backend) if mamba == "encoder" else nn.Identity()
            for s in range(n_stages)
        )
        if mamba == "bottleneck":
            self.mamba_layers[-1] = ImageMambaLayer(widths[-1], scan_backend=scan_backend)
        self.upsamples = nn.ModuleList(UpsampleLayer(widths[-s], widths[-s - 1]) for s in range(1, n_stages))
        # The reference's decoder does not concatenate the first stage's skip into its last stage.
        self.decoder_stages = nn.ModuleList(
            residual_stage(widths[-s - 1] * (2 if s < n_stages - 1 else 1), widths[-s - 1], decoder_blocks[s - 1])
            for s in range(1, n_stages)
        )
        self.heads = nn.ModuleList(nn.Conv2d(widths[-s - 1], num_classes, 1) for s in range(1, n_stages))
        self.apply(init_conv_he)

    @staticmethod
    def _encoder_mamba(stage: int, widths: list[int], input_size: tuple[int, int], scan_backend: str) -> nn.Module:
        n_stages = len(widths)
        if stage % 2 == n_stages % 2:  # Mamba on every other stage, ending with the last
            return nn.Identity()
        pixels = math.prod(side // 2**stage for side in input_size)
        if pixels <= widths[stage]:
            return ImageMambaLayer(pixels, channel_tokens=True, scan_backend=scan_backend)
        return ImageMambaLayer(widths[stage], scan_backend=scan_backend)

    def forward_features(self, x: Tensor) -> list[Tensor]:
        """The encoder's maps, one per stage (after its Mamba layer, if any), full resolution first."""
        x = self.stem(x)
        features = []
        for stage, mamba in zip(self.stages, self.mamba_layers, strict=True):
            x = mamba(stage(x))
            features.append(x)
        return features

    def forward(self, x: Tensor) -> Tensor | list[Tensor]:
        skips = self.forward_features(x)
        x = skips[-1]
        deep_supervision = self.deep_supervision and self.training
        outputs = []
        for s, (upsample, stage, head) in enumerate(zip(self.upsamples, self.decoder_stages, self.heads, strict=True)):
            x = upsample(x)
            if s < len(self.decoder_stages) - 1:
                x = torch.cat([x, skips[-s - 2]], dim=1)
            x = stage(x)
            if deep_supervision or s == len(self.decoder_stages) - 1:
                outputs.append(head(x))
        return outputs[::-1] if deep_supervision else outputs[0]



UMAMBA_BOT = dict(features_per_stage=NNUNET_2D_WIDTHS, blocks_per_stage=2, blocks_per_stage_decoder=2)
UMAMBA_ENC = dict(UMAMBA_BOT, input_size=(256, 256))
SMALL = dict(features_per_stage=(8, 16, 24, 32), blocks_per_stage=2, blocks_per_stage_decoder=2)
SIZE_POLICY = "inputs are zero-padded to a multiple of 2^(stages - 1) and the output cropped back"


@register_model(
    family="mamba",
    paper=PAPER,
    code=CODE,
    config=UMAMBA_BOT,
    size_divisor=2 ** (len(NNUNET_2D_WIDTHS) - 1),
    resolution_policy=f"any size: {SIZE_POLICY}",
    reconstructed=RECONSTRUCTED,
    test_variant="umamba_bot_small",
)
def umamba_bot(in_channels: int, num_classes: int, **config) -> UMamba:
    """U-Mamba_Bot 2D: nnU-Net residual U-Net with one Mamba layer on the bottleneck."""
    return UMamba(in_channels, num_classes, mamba="bottleneck", **config)


@register_model(
    family="mamba",
    paper=PAPER,
    code=CODE,
    name="umamba_bot_small",
    config=SMALL,
    size_divisor=2 ** (len(SMALL["features_per_stage"]) - 1),
    resolution_policy=f"any size: {SIZE_POLICY}",
    small=True,
)
def umamba_bot_small(in_channels: int, num_classes: int, **config) -> UMamba:
    """U-Mamba_Bot, test-sized (4 stages, 8-32 channels)."""
    return UMamba(in_channels, num_classes, mamba="bottleneck", **config)


@register_model(
    family="mamba",
    paper=PAPER,
    code=CODE,
    config=UMAMBA_ENC,
    size_divisor=2 ** (len(NNUNET_2D_WIDTHS) - 1),
    resolution_policy=(
        f"{SIZE_POLICY}. Stages with no more pixels than channels at `input_size` (default 256x256: the 16x16 "
        "and 4x4 stages) scan over channels and need exactly that size: build with input_size=(H, W) for other "
        "sizes, else a clear error"
    ),
    reconstructed=(
        *RECONSTRUCTED,
        "input_size 256x256 stands for the nnU-Net patch size, which the reference takes from the plans",
    ),
    test_variant="umamba_enc_small",
)
def umamba_enc(in_channels: int, num_classes: int, **config) -> UMamba:
    """U-Mamba_Enc 2D: nnU-Net residual U-Net with a Mamba layer after every other encoder stage."""
    return UMamba(in_channels, num_classes, mamba="encoder", **config)


@register_model(
    family="mamba",
    paper=PAPER,
    code=CODE,
    name="umamba_enc_small",
    config=dict(SMALL, input_size=(64, 64)),
    size_divisor=2 ** (len(SMALL["features_per_stage"]) - 1),
    resolution_policy=f"any size (no channel-token stage at 64x64): {SIZE_POLICY}",
    small=True,
)
def umamba_enc_small(in_channels: int, num_classes: int, **config) -> UMamba:
    """U-Mamba_Enc, test-sized (4 stages, 8-32 channels, Mamba on the 1/2 and 1/8 stages)."""
    return UMamba(in_channels, num_classes, mamba="encoder", **config)
