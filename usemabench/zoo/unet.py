"""CNN baselines: an nnU-Net-style 2D U-Net written here, and thin adapters to smp and MONAI CNNs.

nnU-Net: Isensee et al., "nnU-Net: a self-configuring method for deep learning-based biomedical image
segmentation", Nature Methods 2021. Reference code: MIC-DKFZ/dynamic-network-architectures
(`architectures/unet.py` PlainConvUNet, `building_blocks/plain_conv_encoder.py`, `unet_decoder.py`) and
the 2D planner of MIC-DKFZ/nnUNet (`get_pool_and_conv_props`, feature cap 512, bottleneck edge >= 4).

The library models (segmentation-models-pytorch Unet / Unet++ / SegFormer, MONAI SegResNet) are returned
as the libraries build them, so their state-dict keys and behaviour stay the libraries' own.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from usemabench.zoo.layers.conv import ConvNormAct, UpsampleConcat
from usemabench.zoo.layers.init import init_conv_he
from usemabench.zoo.features import stage_info
from usemabench.zoo.registry import register_model

NNUNET_PAPER = "Isensee et al., nnU-Net: a self-configuring method for biomedical image segmentation, Nat. Methods 2021"
NNUNET_CODE = "https://github.com/MIC-DKFZ/dynamic-network-architectures (architectures/unet.py, PlainConvUNet)"


def nnunet_stage_count(patch_size: int, min_feature_map_size: int = 4) -> int:
    """The number of resolution stages nnU-Net's planner gives a square 2D patch.

    nnU-Net halves an axis while it is at least `2 * min_feature_map_size` long (bottleneck edge >= 4),
    so 256 -> 7 stages (bottleneck 4x4) and 512 -> 8 stages.
    """
    if patch_size < 1 or min_feature_map_size < 1:
        raise ValueError(f"patch_size and min_feature_map_size must be positive, got {patch_size}, {min_feature_map_size}")
    poolings = 0
    while patch_size >= 2 * min_feature_map_size:
        patch_size //= 2
        poolings += 1
    return poolings + 1


def nnunet_widths(n_stages: int, base_width: int = 32, max_width: int = 512) -> list[int]:
    """nnU-Net's widths: `base_width` doubled per stage, capped at `max_width` (512 for 2D)."""
    return [min(base_width * 2**stage, max_width) for stage in range(n_stages)]


class StackedConvs(nn.Sequential):
    """`count` conv3x3-InstanceNorm-LeakyReLU layers; the first one carries the stride (nnU-Net)."""

    def __init__(self, in_channels: int, out_channels: int, count: int = 2, stride: int = 1) -> None:
        layers = [ConvNormAct(in_channels, out_channels, 3, stride)]
        layers += [ConvNormAct(out_channels, out_channels, 3, 1) for _ in range(count - 1)]
        super().__init__(*layers)


class PlainConvUNet(nn.Module):
    """nnU-Net's 2D PlainConvUNet: plain conv stages, strided-conv down, transposed-conv up.

    Each encoder stage is `convs_per_stage` x (conv3x3-InstanceNorm-LeakyReLU), the first conv of stages
    after the first with stride 2; widths 32*2^s capped at 512. Each decoder stage upsamples with a 2x2
    transposed conv to the skip's width, concatenates the skip and applies the same conv stack. Every
    decoder stage has a 1x1 segmentation head; in training mode with `deep_supervision` the model returns
    all of them, full resolution first (nnU-Net's loss then weights them 1, 1/2, 1/4, ... and drops the
    lowest), otherwise only the full-resolution logits.

    Args:
        in_channels, num_classes: input channels and output classes.
        n_stages: resolution stages (input size must be divisible by 2**(n_stages-1));
            `nnunet_stage_count(patch_size)` gives nnU-Net's own choice for a patch size.
        base_width, max_width: width of the first stage and the cap.
        convs_per_stage: convs per encoder and decoder stage (nnU-Net: 2).
        deep_supervision: return every decoder head's logits in training mode.

    >>> model = PlainConvUNet(1, 3, n_stages=7)
    >>> model.eval()(torch.randn(1, 1, 256, 256)).shape
    torch.Size([1, 3, 256, 256])
    """

    decoder_modules = ("upsamples", "decoder", "heads")  # what `features_only` drops (zoo.features)

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        n_stages: int = 7,
        base_width: int = 32,
        max_width: int = 512,
        convs_per_stage: int = 2,
        deep_supervision: bool = True,
    ) -> None:
        super().__init__()
        if n_stages < 2:
            raise ValueError(f"PlainConvUNet needs at least 2 stages, got n_stages={n_stages}")
        self.widths = nnunet_widths(n_stages, base_width, max_width)
        self.size_divisor = 2 ** (n_stages - 1)
        self.deep_supervision = deep_supervision
        self.feature_info = stage_info(self.widths, [2**stage for stage in range(n_stages)], "encoder")
        inputs = [in_channels, *self.widths[:-1]]
        self.encoder = nn.ModuleList(
            StackedConvs(cin, cout, convs_per_stage, stride=1 if stage == 0 else 2)
            for stage, (cin, cout) in enumerate(zip(inputs, self.widths))
        )
        # Decoder stages in order of computation: from the bottleneck up to full resolution.
        skip_widths = self.widths[-2::-1]
        below_widths = self.widths[:0:-1]
        self.upsamples = nn.ModuleList(UpsampleConcat(below, skip) for below, skip in zip(below_widths, skip_widths))
        self.decoder = nn.ModuleList(StackedConvs(2 * skip, skip, convs_per_stage) for skip in skip_widths)
        self.heads = nn.ModuleList(nn.Conv2d(skip, num_classes, 1) for skip in skip_widths)
        self.apply(init_conv_he)

    def forward_features(self, x: Tensor) -> list[Tensor]:
        """The encoder's maps, one per stage, full resolution first (the skips and the bottleneck)."""
        features = []
        for stage in self.encoder:
            x = stage(x)
            features.append(x)
        return features

    def forward(self, x: Tensor) -> Tensor | list[Tensor]:
        height, width = x.shape[-2:]
        if height % self.size_divisor or width % self.size_divisor:
            raise ValueError(
                f"PlainConvUNet with {len(self.widths)} stages needs height and width divisible by "
                f"{self.size_divisor}; got {height}x{width}"
            )
        skips = self.forward_features(x)
        x = skips.pop()
        outputs = []
        for index, (upsample, stage) in enumerate(zip(self.upsamples, self.decoder)):
            x = stage(upsample(x, skips.pop()))
            if self.deep_supervision and self.training:
                outputs.append(self.heads[index](x))
        if not (self.deep_supervision and self.training):
            return self.heads[-1](x)
        return outputs[::-1]



# reconstructed: 7 stages (nnU-Net's plan for 256x256) for every dataset, not planned per dataset
@register_model(
    family="cnn",
    paper=NNUNET_PAPER,
    code=NNUNET_CODE,
    config=dict(n_stages=7, base_width=32, max_width=512, convs_per_stage=2, deep_supervision=True),
    size_divisor=64,
    size_policy="pad",
    resolution_policy=(
        "fully convolutional; 7 stages = nnU-Net's plan for 256x256 patches (bottleneck 1/64); nnU-Net plans "
        "8 stages for 512x512 (pass n_stages=nnunet_stage_count(512)=8; inputs must then be multiples of 128)"
    ),
    reconstructed=(
        "one fixed stage count for all datasets instead of nnU-Net's per-dataset plan (n_stages=7)",
    ),
    test_variant="nnunet_small",
)
def nnunet(in_channels: int, num_classes: int, **config: Any) -> PlainConvUNet:
    """nnU-Net 2D PlainConvUNet (7 stages, 32..512 channels, deep supervision)."""
    return PlainConvUNet(in_channels, num_classes, **config)


@register_model(
    family="cnn",
    paper=NNUNET_PAPER,
    code=NNUNET_CODE,
    config=dict(n_stages=4, base_width=8, max_width=32, convs_per_stage=2, deep_supervision=True),
    size_divisor=8,
    size_policy="pad",
    small=True,
)
def nnunet_small(in_channels: int, num_classes: int, **config: Any) -> PlainConvUNet:
    """nnU-Net PlainConvUNet, 4 stages of 8..32 channels: the CPU test variant."""
    return PlainConvUNet(in_channels, num_classes, **config)


# --- segmentation-models-pytorch and MONAI adapters ---------------------------------------------------


def build_outside_meta(factory: Callable[[], nn.Module]) -> nn.Module:
    """`factory()`, but under a `meta` default device built on the CPU and then moved to `meta`.

    Some library constructors (timm/smp MiT, MONAI SwinUNETR) call `.item()` on their drop-path schedule,
    which meta tensors refuse; parameter counting on `meta` must still work for them.
    """
    if torch.get_default_device().type != "meta":
        return factory()
    with torch.device("cpu"):
        return factory().to("meta")

SMP_CODE = "https://github.com/qubvel-org/segmentation_models.pytorch"
SMP_WEIGHTS_NOTE = "encoder_weights=None by default (no download); pass encoder_weights='imagenet' to start from ImageNet"


def _smp_model(architecture: str, in_channels: int, num_classes: int, **config: Any) -> nn.Module:
    """An smp model with `encoder_weights` defaulting to None, since weights need a download."""
    import segmentation_models_pytorch as smp

    config.setdefault("encoder_weights", None)
    return build_outside_meta(lambda: getattr(smp, architecture)(in_channels=in_channels, classes=num_classes, **config))


@register_model(
    family="cnn",
    paper="Ronneberger et al., U-Net, MICCAI 2015; He et al., ResNet, CVPR 2016 (ResNet-34 encoder)",
    code=SMP_CODE,
    config=dict(encoder_name="resnet34", encoder_weights=None),
    size_divisor=32,
    size_policy="pad",
    resolution_policy=f"fully convolutional; {SMP_WEIGHTS_NOTE}",
    test_variant="smp_unet_small",
)
def smp_unet_resnet34(in_channels: int, num_classes: int, **config: Any) -> nn.Module:
    """smp U-Net with a ResNet-34 encoder."""
    return _smp_model("Unet", in_channels, num_classes, **config)


# The small smp variants keep the library's ResNet encoder code path but stop it at 1/8 (3 stages).
SMP_SMALL_CONFIG = dict(encoder_name="resnet18", encoder_depth=3, decoder_channels=(32, 16, 8), encoder_weights=None)


@register_model(
    family="cnn",
    paper="Ronneberger et al., U-Net, MICCAI 2015",
    code=SMP_CODE,
    config=SMP_SMALL_CONFIG,
    size_divisor=8,
    size_policy="pad",
    small=True,
)
def smp_unet_small(in_channels: int, num_classes: int, **config: Any) -> nn.Module:
    """smp U-Net with a 3-stage ResNet-18 encoder: the CPU test variant."""
    return _smp_model("Unet", in_channels, num_classes, **config)


@register_model(
    family="cnn",
    paper="Zhou et al., UNet++: A Nested U-Net Architecture for Medical Image Segmentation, DLMIA 2018",
    code=SMP_CODE,
    config=dict(encoder_name="resnet34", encoder_weights=None),
    size_divisor=32,
    size_policy="pad",
    resolution_policy=f"fully convolutional; {SMP_WEIGHTS_NOTE}",
    test_variant="smp_unetplusplus_small",
)
def smp_unetplusplus_resnet34(in_channels: int, num_classes: int, **config: Any) -> nn.Module:
    """smp UNet++ with a ResNet-34 encoder."""
    return _smp_model("UnetPlusPlus", in_channels, num_classes, **config)


@register_model(
    family="cnn",
    paper="Zhou et al., UNet++: A Nested U-Net Architecture for Medical Image Segmentation, DLMIA 2018",
    code=SMP_CODE,
    config=SMP_SMALL_CONFIG,
    size_divisor=8,
    size_policy="pad",
    small=True,
)
def smp_unetplusplus_small(in_channels: int, num_classes: int, **config: Any) -> nn.Module:
    """smp UNet++ with a 3-stage ResNet-18 encoder: the CPU test variant."""
    return _smp_model("UnetPlusPlus", in_channels, num_classes, **config)


SEGFORMER_PAPER = "Xie et al., SegFormer: Simple and Efficient Design for Semantic Segmentation with Transformers, NeurIPS 2021"


@register_model(
    family="attention-full",
    paper=SEGFORMER_PAPER,
    code=SMP_CODE,
    config=dict(encoder_name="mit_b2", encoder_weights=None),
    size_divisor=32,
    size_policy="pad",
    resolution_policy=(
        "Mix Transformer encoder (efficient attention with spatial reduction, overlapping patch embeddings, "
        f"no position embeddings) and an all-MLP decoder; any multiple of 32; {SMP_WEIGHTS_NOTE}"
    ),
    reconstructed=("MiT-B2 chosen as the default size (the paper has B0-B5)",),
    test_variant="smp_segformer_small",
)
def smp_segformer(in_channels: int, num_classes: int, **config: Any) -> nn.Module:
    """smp SegFormer with the MiT-B2 encoder."""
    return _smp_model("Segformer", in_channels, num_classes, **config)


@register_model(
    family="attention-full",
    paper=SEGFORMER_PAPER,
    code=SMP_CODE,
    config=dict(encoder_name="mit_b0", encoder_weights=None, decoder_segmentation_channels=64),
    size_divisor=32,
    size_policy="pad",
    small=True,
)
def smp_segformer_small(in_channels: int, num_classes: int, **config: Any) -> nn.Module:
    """smp SegFormer-B0 with a 64-channel decoder: the CPU test variant."""
    return _smp_model("Segformer", in_channels, num_classes, **config)


SEGRESNET_PAPER = "Myronenko, 3D MRI brain tumor segmentation using autoencoder regularization, BrainLes 2018"
SEGRESNET_CODE = "https://github.com/Project-MONAI/MONAI (monai/networks/nets/segresnet.py)"


def _segresnet(in_channels: int, num_classes: int, **config: Any) -> nn.Module:
    from monai.networks.nets import SegResNet

    return SegResNet(spatial_dims=2, in_channels=in_channels, out_channels=num_classes, **config)


@register_model(
    family="cnn",
    paper=SEGRESNET_PAPER,
    code=SEGRESNET_CODE,
    config=dict(init_filters=32, blocks_down=(1, 2, 2, 4), blocks_up=(1, 1, 1)),
    size_divisor=8,
    size_policy="pad",
    resolution_policy="fully convolutional, 3 downsamplings; the paper's 3D network run with spatial_dims=2",
    reconstructed=("2D instead of the paper's 3D; no VAE regularisation branch (MONAI's SegResNet)",),
    test_variant="segresnet_small",
)
def segresnet(in_channels: int, num_classes: int, **config: Any) -> nn.Module:
    """MONAI SegResNet in 2D, 32 initial filters as in the paper."""
    return _segresnet(in_channels, num_classes, **config)


@register_model(
    family="cnn",
    paper=SEGRESNET_PAPER,
    code=SEGRESNET_CODE,
    config=dict(init_filters=8, blocks_down=(1, 1, 1, 1), blocks_up=(1, 1, 1)),
    size_divisor=8,
    size_policy="pad",
    small=True,
)
def segresnet_small(in_channels: int, num_classes: int, **config: Any) -> nn.Module:
    """MONAI SegResNet, 8 filters, one block per stage: the CPU test variant."""
    return _segresnet(in_channels, num_classes, **config)
