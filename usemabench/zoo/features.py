"""Zoo models as backbones, the way timm offers them: `forward_features` and `create_model(..., features_only=True)`.

A model that can serve as a backbone defines `forward_features(x) -> list[Tensor]` (its encoder's maps, finest
first, NCHW), `feature_info` (one dict per map: `num_chs`, `reduction` against the input, `module`) and
`decoder_modules` (the attributes a backbone does not need). Models built by smp or MONAI (SegResNet,
SwinUNETR) get the same three through an adapter here, since their classes are not ours. `FeatureExtractor` wraps such a model, drops its
decoder and returns the maps at `out_indices`; weights load into the full model first, so pretrained
weights serve both uses.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch.nn.functional as F
from torch import Tensor, nn

SMP_DECODER_MODULES = ("decoder", "segmentation_head", "classification_head")
SEGRESNET_DECODER_MODULES = ("up_layers", "up_samples", "conv_final")
SWINUNETR_DECODER_MODULES = ("encoder1", "encoder2", "encoder3", "encoder4", "encoder10",
                             "decoder5", "decoder4", "decoder3", "decoder2", "decoder1", "out")


class FeatureInfo(list):
    """`feature_info` of a feature extractor: one dict per returned map, with timm's accessors."""

    def channels(self) -> list[int]:
        return [info["num_chs"] for info in self]

    def reduction(self) -> list[int]:
        return [info["reduction"] for info in self]


def stage_info(channels: Sequence[int], reductions: Sequence[int], module: str) -> list[dict[str, Any]]:
    """feature_info for maps produced by `module.0`, `module.1`, ...: one dict per stage."""
    return [
        {"num_chs": int(chs), "reduction": int(red), "module": f"{module}.{index}"}
        for index, (chs, red) in enumerate(zip(channels, reductions, strict=True))
    ]


def _smp_kept(model: nn.Module) -> list[int]:
    """smp encoders return the input itself first and, for some (SegFormer), an empty 0-channel map: both dropped."""
    return [index for index, chs in enumerate(model.encoder.out_channels) if index > 0 and chs > 0]


def _library_kind(model: nn.Module) -> str | None:
    from monai.networks.nets import SegResNet, SwinUNETR
    from segmentation_models_pytorch.base import SegmentationModel

    if isinstance(model, SegmentationModel):
        return "smp"
    if isinstance(model, SegResNet):
        return "segresnet"
    if isinstance(model, SwinUNETR):
        return "swinunetr"
    return None


def backbone_info(model: nn.Module) -> tuple[list[dict], tuple[str, ...]] | None:
    """(feature_info, decoder_modules) of `model`, or None when it is no backbone."""
    if hasattr(model, "forward_features"):
        return list(model.feature_info), tuple(model.decoder_modules)
    kind = _library_kind(model)
    if kind == "smp":
        channels = model.encoder.out_channels
        info = [{"num_chs": channels[index], "reduction": 2**index, "module": f"encoder.stage{index}"} for index in _smp_kept(model)]
        return info, SMP_DECODER_MODULES
    if kind == "segresnet":  # MONAI's `encode` returns every down layer's output, the first at full resolution
        levels = range(len(model.down_layers))
        return stage_info([model.init_filters * 2**level for level in levels], [2**level for level in levels], "down_layers"), SEGRESNET_DECODER_MODULES
    if kind == "swinunetr":  # MONAI's Swin encoder: its patch embedding (1/2) and four stages (1/4 .. 1/32)
        width = model.swinViT.embed_dim
        return stage_info([width * 2**level for level in range(5)], [2 ** (level + 1) for level in range(5)], "swinViT"), SWINUNETR_DECODER_MODULES
    return None


def encoder_maps(model: nn.Module, x: Tensor) -> list[Tensor]:
    """`model.forward_features(x)`, or the same maps from an smp or MONAI model."""
    if hasattr(model, "forward_features"):
        return model.forward_features(x)
    kind = _library_kind(model)
    if kind == "smp":
        features = model.encoder(x)
        return [features[index] for index in _smp_kept(model)]
    if kind == "swinunetr":
        return model.swinViT(x, model.normalize)
    return model.encode(x)[1]


class FeatureExtractor(nn.Module):
    """The encoder maps of a zoo model at `out_indices` (all by default), as a list, finest first.

    Inputs are padded (bottom/right, zeros) to the model's size divisor as the model itself would pad them,
    or refused when the model's policy is `error`; map sizes are those of the padded input over `reduction`.

        >>> backbone = create_model("usema_tiny", features_only=True, out_indices=(2, 3, 4))
        >>> [f.shape[1] for f in backbone(torch.randn(1, 1, 64, 64))] == backbone.feature_info.channels()
        True
    """

    def __init__(self, model: nn.Module, out_indices: Sequence[int] | None, size_policy: str, size_divisor: int, name: str) -> None:
        super().__init__()
        parts = backbone_info(model)
        if parts is None:
            raise ValueError(f"model {name!r} has no multi-scale encoder to return (features_only is not available for it)")
        info, decoder_modules = parts
        indices = tuple(range(len(info))) if out_indices is None else tuple(out_indices)
        bad = [index for index in indices if not -len(info) <= index < len(info)]
        if bad or not indices:
            raise ValueError(f"model {name!r}: out_indices {tuple(out_indices or ())} must pick from its {len(info)} feature maps (0..{len(info) - 1})")
        for attribute in decoder_modules:
            if getattr(model, attribute, None) is not None:
                setattr(model, attribute, None)  # the backbone does not carry the decoder's parameters
        self.model = model
        self.out_indices = indices
        self.feature_info = FeatureInfo(info[index] for index in indices)
        self.size_policy, self.size_divisor, self.name = size_policy, size_divisor, name

    def forward(self, x: Tensor) -> list[Tensor]:
        height, width = x.shape[-2:]
        divisor = self.size_divisor
        if self.size_policy != "any" and (height % divisor or width % divisor):
            if self.size_policy == "error":
                raise ValueError(f"model {self.name!r} needs height and width divisible by {divisor}; got {height}x{width}")
            x = F.pad(x, (0, -width % divisor, 0, -height % divisor))
        features = encoder_maps(self.model, x)
        return [features[index] for index in self.out_indices]


def as_feature_extractor(model: nn.Module, out_indices: Sequence[int] | None = None) -> FeatureExtractor:
    """A registry-built `model` (weights loaded or not) as a backbone; it carries the model's spec and info."""
    info = model.usemabench_info
    name = model.usemabench_spec["name"]
    extractor = FeatureExtractor(model, out_indices, info.size_policy, getattr(model, "size_divisor", info.size_divisor), name)
    extractor.usemabench_spec = {**model.usemabench_spec, "features_only": True, "out_indices": list(extractor.out_indices)}
    extractor.usemabench_info = info
    return extractor
