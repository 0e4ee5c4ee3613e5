"""USEMA: a residual convolutional UNet with SEMA (window attention + global mean) blocks.

Paper: Dayag, Tran, Xin, "USEMA: a Scalable Efficient Mamba Like Attention for Medical Image Segmentation",
arXiv 2605.11131 (2026). No reference code is public and the architecture tables were not available, so
the network is reconstructed (USEMA_SPEC.md) on the harness of U-Mamba 2D (bowang-lab/U-Mamba
`UMambaEnc_2d.py`): residual conv encoder, SEMA blocks after the conv blocks of the 1/4, 1/8 and 1/16
stages ("enc") or at the bottleneck only ("bot"), nearest x2 upsampling + 1x1 conv, concatenated skips,
residual decoder blocks, 1x1 heads with deep supervision. The SEMA blocks are MLLA blocks
(`layers/mixers.py`); `mixer` swaps their attention for the ablations. Every such choice below is marked
`# reconstructed:` and listed in the ModelInfo.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from usemabench.zoo.layers.conv import ResidualStage, UpsampleConcat
from usemabench.zoo.layers.init import init_conv_he
from usemabench.zoo.layers.mixers import TOKEN_MIXERS, MambaLikeBlock
from usemabench.zoo.features import stage_info
from usemabench.zoo.registry import register_model

PAPER = (
    "Dayag, Tran, Xin. USEMA: a Scalable Efficient Mamba Like Attention for Medical Image Segmentation. "
    "arXiv 2605.11131 (2026)"
)
CODE = "no public code; reconstructed per USEMA_SPEC.md on bowang-lab/U-Mamba (UMambaEnc_2d.py) and LeapLabTHU/MLLA"
MIXERS = (*TOKEN_MIXERS, "none")
PLACEMENTS = ("enc", "bot")
UPSAMPLERS = ("nearest", "transposed")


class SEMAStage(nn.Module):
    """Mamba-like blocks applied to a (B, C, H, W) feature map as H*W tokens.

    The tokens are made contiguous (B, N, C) once on entry, i.e. the map in channels-last layout, and stay
    so through every block: LayerNorm and Linear read them in place, and the blocks' depthwise convolutions
    see channels-last views of them, not copies. On exit the map gets back its input's memory format.
    """

    def __init__(self, dim: int, depth: int, num_heads: int, drop_paths: list[float], **block_options) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            MambaLikeBlock(dim, num_heads, drop_path=drop_paths[index], **block_options) for index in range(depth)
        )

    def forward(self, x: Tensor) -> Tensor:
        batch, channels, height, width = x.shape
        channels_last = x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
        tokens = x.flatten(2).transpose(1, 2).contiguous()  # free when x is already channels-last
        for block in self.blocks:
            tokens = block(tokens, height, width)
        image = tokens.transpose(1, 2).reshape(batch, channels, height, width)
        return image.contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)


class NearestUpsampleConcat(nn.Module):
    """U-Mamba's decoder upsampling: nearest x2 (to the skip's size), 1x1 conv to the skip's width, concat."""

    def __init__(self, in_channels: int, skip_channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, skip_channels, kernel_size=1)

    def forward(self, x: Tensor, skip: Tensor) -> Tensor:
        return torch.cat([self.conv(F.interpolate(x, size=skip.shape[-2:], mode="nearest")), skip], dim=1)


class USEMA(nn.Module):
    """5-stage residual conv UNet with Mamba-like SEMA blocks in the deep encoder stages.

    Args:
        widths: channels per stage (/1 ... /16); conv_depths: residual blocks per encoder stage;
        sema_depths: Mamba-like blocks after each stage's conv blocks (0 = none); placement "enc" uses them
        all, "bot" keeps only the bottleneck's; mixer: token mixer of those blocks (`MIXERS`; "none" drops
        them); head_dim: channels per attention head; window_size: SEMA window; drop_path_rate: largest
        stochastic-depth rate, over the SEMA blocks only; mlp_ratio: MLP width of those blocks over C;
        decoder_depth: residual blocks per decoder stage; upsample: "nearest" (+1x1 conv, U-Mamba) or
        "transposed" (nnU-Net); deep_supervision: in training, return every decoder stage's 1x1-head logits;
        attention_backend: SEMA kernel (`layers.sema.BACKENDS`; "auto" is the torch backend);
        v_projection: v = Linear(block input) instead of the input itself (MLLA has none);
        qk_scale: attention scale, None = 1/sqrt(head_dim) (softmax mixers only).
    Returns logits (B, num_classes, H, W); in training mode with deep supervision a list, full size first.

        >>> model = USEMA(1, 3, widths=(8, 16, 32, 64, 128), sema_depths=(0, 0, 1, 1, 1))
        >>> model.eval()(torch.randn(1, 1, 64, 64)).shape
        torch.Size([1, 3, 64, 64])
    """

    decoder_modules = ("upsamplers", "decoder", "heads")  # what `features_only` drops (zoo.features)

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        widths: tuple[int, ...] = (32, 64, 128, 256, 512),
        conv_depths: tuple[int, ...] = (1, 1, 1, 1, 1),
        sema_depths: tuple[int, ...] = (0, 0, 1, 1, 2),
        placement: str = "enc",
        mixer: str = "sema",
        head_dim: int = 32,  # inferred: MLLA's head width
        window_size: int = 8,
        mlp_ratio: float = 4.0,
        drop_path_rate: float = 0.1,
        decoder_depth: int = 1,
        upsample: str = "nearest",
        deep_supervision: bool = True,
        attention_backend: str = "auto",
        v_projection: bool = False,
        qk_scale: float | None = None,
    ) -> None:
        super().__init__()
        stages = len(widths)
        if not (len(conv_depths) == len(sema_depths) == stages):
            raise ValueError(
                "widths, conv_depths and sema_depths need one entry per stage; "
                f"got {widths}, {conv_depths}, {sema_depths}"
            )
        for option, value, allowed in (
            ("placement", placement, PLACEMENTS),
            ("mixer", mixer, MIXERS),
            ("upsample", upsample, UPSAMPLERS),
        ):
            if value not in allowed:
                raise ValueError(f"USEMA: {option} {value!r} is not one of {allowed}")
        if placement == "bot":
            sema_depths = (0,) * (stages - 1) + (sema_depths[-1],)
        if mixer == "none":  # the "nnU-Net Revisited" control: the same UNet without the SEMA blocks
            sema_depths = (0,) * stages
        self.deep_supervision = deep_supervision
        self.feature_info = stage_info(widths, [2**index for index in range(stages)], "sema_stages")

        self.encoder = nn.ModuleList(
            # reconstructed: no separate stem; the first stage keeps full resolution, the others halve it
            ResidualStage(
                in_channels if index == 0 else widths[index - 1],
                widths[index],
                conv_depths[index],
                1 if index == 0 else 2,
            )
            for index in range(stages)
        )
        # reconstructed: U-Mamba's decoder (nearest x2 + 1x1 conv, concat skip, residual blocks, 1x1 heads)
        upsampler = NearestUpsampleConcat if upsample == "nearest" else UpsampleConcat
        self.upsamplers = nn.ModuleList(
            upsampler(widths[index + 1], widths[index]) for index in reversed(range(stages - 1))
        )
        self.decoder = nn.ModuleList(
            ResidualStage(2 * widths[index], widths[index], decoder_depth) for index in reversed(range(stages - 1))
        )
        self.heads = nn.ModuleList(nn.Conv2d(widths[index], num_classes, 1) for index in reversed(range(stages - 1)))
        self.apply(init_conv_he)  # before the SEMA blocks, which keep MLLA's initialisation

        # reconstructed: stochastic depth grows linearly over the SEMA blocks, in order (MLLA's rule)
        total = sum(sema_depths)
        drop_paths = [drop_path_rate * index / max(total - 1, 1) for index in range(total)]
        # reconstructed: SEMA blocks follow each stage's conv blocks, where U-Mamba_Enc puts its Mamba layers
        self.sema_stages = nn.ModuleList()
        for index, depth in enumerate(sema_depths):
            if depth == 0:
                self.sema_stages.append(nn.Identity())
                continue
            if widths[index] % head_dim:
                raise ValueError(
                    f"USEMA: width {widths[index]} of stage {index + 1} is not a multiple of head_dim {head_dim}"
                )
            used = sum(sema_depths[:index])
            self.sema_stages.append(
                SEMAStage(
                    widths[index],
                    depth,
                    widths[index] // head_dim,
                    drop_paths[used : used + depth],
                    mixer=mixer,
                    window_size=window_size,
                    mlp_ratio=mlp_ratio,
                    backend=attention_backend,
                    v_projection=v_projection,
                    qk_scale=qk_scale,
                )
            )

    def forward_features(self, x: Tensor) -> list[Tensor]:
        """The encoder's maps, one per stage, full resolution first: the decoder's skips and its bottleneck."""
        features = []
        for conv_stage, sema_stage in zip(self.encoder, self.sema_stages, strict=True):
            x = sema_stage(conv_stage(x))
            features.append(x)
        return features

    def forward(self, x: Tensor) -> Tensor | list[Tensor]:
        skips = self.forward_features(x)
        x = skips[-1]
        outputs = []
        for upsampler, stage, head, skip in zip(
            self.upsamplers, self.decoder, self.heads, reversed(skips[:-1]), strict=True
        ):
            x = stage(upsampler(x, skip))
            outputs.append(head(x))
        if self.training and self.deep_supervision:
            return outputs[::-1]
        return outputs[-1]



def build_usema(in_channels: int, num_classes: int, **config) -> USEMA:
    """USEMA (reconstructed): residual conv UNet with Mamba-like SEMA blocks at 1/4, 1/8, 1/16."""
    return USEMA(in_channels, num_classes, **config)


RECONSTRUCTED = (
    "whole architecture: 5-stage residual conv UNet on the U-Mamba 2D harness (paper tables unavailable)",
    "widths, conv blocks per stage and SEMA blocks per stage of t/s/b (USEMA_SPEC.md table)",
    "SEMA blocks after the conv blocks of stages 3-5 ('enc'); 'bot' = bottleneck only",
    "no separate stem: stage 1 is a stride-1 residual block from the input channels",
    "residual block skip: identity, or a bias-free 1x1 (strided) conv + InstanceNorm where the shape changes",
    "decoder: nearest x2 upsample + 1x1 conv, concat skip, one residual block; 1x1 deep-supervision heads",
    "drop path on SEMA blocks only, linear 0 -> 0.1/0.2/0.3 for t/s/b",
    "SEMA: scale 1/sqrt(head_dim) (option qk_scale), no shifted windows, no relative position bias, window 8",
    "SEMA: maps not a multiple of the window padded, padded keys masked, padding left out of the mean",
    "SEMA: head_dim 32 and v = block input without projection (from MLLA; option v_projection)",
    "SEMA: a feature map no larger than one window gets plain full attention (with one window and masked "
    "padding this is the same computation)",
    "SEMA keeps the MLLA block and swaps only its attention (inferred)",
    "MLLA block without RoPE",
)

# Stage-by-stage settings (USEMA_SPEC.md): widths /1../16, conv blocks per encoder stage, SEMA blocks per stage.
SIZES = {
    "t": dict(
        widths=(32, 64, 128, 256, 512), conv_depths=(1, 1, 1, 1, 1), sema_depths=(0, 0, 1, 1, 2), drop_path_rate=0.1
    ),
    "s": dict(
        widths=(32, 64, 128, 256, 512), conv_depths=(1, 2, 2, 2, 2), sema_depths=(0, 0, 2, 2, 4), drop_path_rate=0.2
    ),
    "b": dict(
        widths=(48, 96, 192, 384, 768), conv_depths=(1, 2, 2, 2, 2), sema_depths=(0, 0, 2, 4, 4), drop_path_rate=0.3
    ),
}
# A CPU-sized model with the same code paths, the test stand-in for the sizes above.
TINY = dict(widths=(8, 16, 32, 64, 128), conv_depths=(1, 1, 1, 1, 1), sema_depths=(0, 0, 1, 1, 1), drop_path_rate=0.1)
# v_projection (False) and qk_scale (None) stay out of the registered config: adding keys would change the
# config hash of every committed USEMA record without changing the model. Pass them as overrides.
COMMON = dict(
    placement="enc",
    head_dim=32,
    window_size=8,
    mlp_ratio=4.0,
    decoder_depth=1,
    upsample="nearest",
    deep_supervision=True,
    attention_backend="auto",
)
RESOLUTION_POLICY = (
    "any size (padded to /16); SEMA windows of 8x8 tokens, maps padded to whole windows; no position embeddings"
)


def _register(name: str, config: dict, small: bool, test_variant: str | None) -> None:
    register_model(
        family="usema",
        paper=PAPER,
        code=CODE,
        name=name,
        config=config,
        size_divisor=16,
        size_policy="pad",
        resolution_policy=RESOLUTION_POLICY,
        reconstructed=RECONSTRUCTED,
        small=small,
        test_variant=test_variant,
    )(build_usema)


for _mixer in MIXERS:
    _suffix = "" if _mixer == "sema" else f"_{_mixer}"
    _register(f"usema_tiny{_suffix}", {**COMMON, **TINY, "mixer": _mixer}, small=True, test_variant=None)
    for _size, _settings in SIZES.items():
        _register(
            f"usema_{_size}{_suffix}",
            {**COMMON, **_settings, "mixer": _mixer},
            small=False,
            test_variant=f"usema_tiny{_suffix}",
        )
