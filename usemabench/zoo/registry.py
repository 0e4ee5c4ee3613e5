"""The model registry: one name -> one builder plus the facts a fair benchmark needs about it.

Names follow timm (`arch` or `arch.tag`): a tag names a set of pretrained weights (`zoo.pretrained`), which
`usemabench.create_model(..., pretrained=True)` loads; here a tag changes nothing about the built model.
Every model takes `(B, C, H, W)` float input and returns logits `(B, num_classes, H, W)` at the input size
(a list, full resolution first, under deep supervision in training mode). Inputs whose size the model cannot
take directly are handled by the registered size policy, applied by `create_model` through forward hooks so
that state-dict keys stay the model's own.
"""

from __future__ import annotations

import difflib
import fnmatch
import importlib
import importlib.metadata
import importlib.util
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from usemabench.zoo.features import as_feature_extractor
from usemabench.zoo.pretrained import list_pretrained, split_model_name

FAMILIES = ("cnn", "mamba", "attention-full", "attention-window", "usema")
SIZE_POLICIES = ("pad", "error", "any")
ENTRY_POINT_GROUP = "usemabench.models"

ModelBuilder = Callable[..., nn.Module]


@dataclass(frozen=True)
class ModelInfo:
    """What a user must know to compare a model fairly: where it comes from and how it treats sizes.

    size_policy: `pad` (input padded up to a multiple of `size_divisor`, output cropped back),
    `error` (a clear error naming the divisor), or `any` (the model takes any size itself).
    """

    name: str
    family: str
    builder: ModelBuilder
    paper: str
    code: str
    size_divisor: int = 1
    size_policy: str = "pad"
    resolution_policy: str = ""
    reconstructed: tuple[str, ...] = ()
    default_config: Mapping[str, Any] = field(default_factory=dict)
    small: bool = False
    test_variant: str | None = None
    requires: tuple[str, ...] = ()
    description: str = ""

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise ValueError(f"model {self.name!r}: family {self.family!r} is not one of {FAMILIES}")
        if self.size_policy not in SIZE_POLICIES:
            raise ValueError(f"model {self.name!r}: size_policy {self.size_policy!r} is not one of {SIZE_POLICIES}")
        if self.size_divisor < 1:
            raise ValueError(f"model {self.name!r}: size_divisor must be >= 1, got {self.size_divisor}")
        object.__setattr__(self, "default_config", MappingProxyType(dict(self.default_config)))

    @property
    def available(self) -> bool:
        """True when every optional package the model needs can be imported."""
        return all(importlib.util.find_spec(module) is not None for module in self.requires)


_REGISTRY: dict[str, ModelInfo] = {}
_plugins_loaded = False


def register_model(
    family: str,
    paper: str,
    code: str = "",
    *,
    name: str | None = None,
    config: Mapping[str, Any] | None = None,
    size_divisor: int = 1,
    size_policy: str = "pad",
    resolution_policy: str = "",
    reconstructed: tuple[str, ...] | list[str] = (),
    small: bool = False,
    test_variant: str | None = None,
    requires: tuple[str, ...] | list[str] = (),
) -> Callable[[ModelBuilder], ModelBuilder]:
    """Decorator registering `builder(in_channels, num_classes, **config) -> nn.Module` under its name.

    >>> @register_model(family="cnn", paper="my paper", config=dict(width=16))
    ... def my_net(in_channels, num_classes, width): ...
    """

    def decorate(builder: ModelBuilder) -> ModelBuilder:
        model_name = name or builder.__name__
        if model_name in _REGISTRY and _REGISTRY[model_name].builder is not builder:
            raise ValueError(f"model name {model_name!r} is already registered by {_REGISTRY[model_name].builder}")
        _REGISTRY[model_name] = ModelInfo(
            name=model_name,
            family=family,
            builder=builder,
            paper=paper,
            code=code,
            size_divisor=size_divisor,
            size_policy=size_policy,
            resolution_policy=resolution_policy,
            reconstructed=tuple(reconstructed),
            default_config=dict(config or {}),
            small=small,
            test_variant=test_variant,
            requires=tuple(requires),
            description=(builder.__doc__ or "").strip().split("\n")[0],
        )
        return builder

    return decorate


def _ensure_loaded() -> None:
    """Import the built-in families and the `usemabench.models` entry points, once."""
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    importlib.import_module("usemabench.zoo.families")
    for entry_point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        entry_point.load()


def import_model_module(module_name: str) -> None:
    """Import a user's module so that its `@register_model` decorators run (the `--model-module` option).

    `module_name` is a module (`my_models`, `pkg.models`) or a path to a `.py` file. Modules are also looked
    up in the current folder, as under `python -m`: the `usemabench` console script does not put it on sys.path.
    """
    try:
        if module_name.endswith(".py"):
            _import_file(Path(module_name))
        else:
            if os.getcwd() not in sys.path:
                sys.path.insert(0, os.getcwd())
            importlib.import_module(module_name)
    except ImportError as error:
        raise ImportError(f"--model-module {module_name!r} could not be imported: {error}") from error


def _import_file(path: Path) -> None:
    """Run a `.py` file as the module named by its stem (registered in sys.modules, as an import would)."""
    if not path.is_file():
        raise ImportError(f"no such file {path}")
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    sys.modules[path.stem] = module
    spec.loader.exec_module(module)  # type: ignore[union-attr]


def list_models(pattern: str | None = None, family: str | None = None, pretrained: bool = False) -> list[str]:
    """Registered names, sorted, optionally filtered by a shell-style pattern and a family.

    With `pretrained=True`, as in timm, the `arch.tag` names of the published weights of those models instead.
    """
    _ensure_loaded()
    names = sorted(_REGISTRY)
    if pretrained:
        names = [name for name in list_pretrained() if split_model_name(name)[0] in _REGISTRY]
    if pattern is not None:
        names = fnmatch.filter(names, pattern)
    if family is not None:
        if family not in FAMILIES:
            raise ValueError(f"unknown family {family!r}; families are {', '.join(FAMILIES)}")
        names = [name for name in names if _REGISTRY[split_model_name(name)[0]].family == family]
    return names


def get_model_info(name: str) -> ModelInfo:
    """The ModelInfo of a registered name (`arch` or `arch.tag`); an unknown name raises KeyError listing close matches."""
    _ensure_loaded()
    name = split_model_name(name)[0]
    try:
        return _REGISTRY[name]
    except KeyError:
        close = difflib.get_close_matches(name, list(_REGISTRY), n=5, cutoff=0.5)
        hint = f" Did you mean: {', '.join(close)}?" if close else " Run `usemabench models` for the list."
        raise KeyError(f"unknown model {name!r}.{hint}") from None


def create_model(name: str, in_channels: int = 1, num_classes: int = 2, **overrides: Any) -> nn.Module:
    """Build a registered model, untrained, with its default config updated by `overrides`.

    The returned module carries `usemabench_spec` (name, channels, classes, overrides), enough to
    rebuild it exactly, and `usemabench_info` (its ModelInfo). An `arch.tag` name builds `arch`. Weights are
    loaded one layer up, by `usemabench.create_model(name, pretrained=...)` (`usemabench.hub`).
    `features_only=True` (with `out_indices`) returns the encoder as a backbone (`zoo.features`), as in timm.
    """
    if "pretrained" in overrides:
        raise TypeError(
            "usemabench.zoo.create_model builds untrained models; load weights with "
            "usemabench.create_model(name, pretrained=...)"
        )
    features_only = overrides.pop("features_only", False)
    out_indices = overrides.pop("out_indices", None)
    name = split_model_name(name)[0]
    info = get_model_info(name)
    missing = [module for module in info.requires if importlib.util.find_spec(module) is None]
    if missing:
        raise ImportError(f"model {name!r} needs the package(s) {', '.join(missing)}; install them first")
    config = {**info.default_config, **overrides}
    model = info.builder(in_channels, num_classes, **config)
    model.usemabench_spec = {
        "name": name,
        "in_channels": in_channels,
        "num_classes": num_classes,
        "overrides": dict(overrides),
    }
    model.usemabench_info = info
    # A config can change the divisor (e.g. nnU-Net with more stages): the built model's own value wins.
    apply_size_policy(model, info.size_policy, getattr(model, "size_divisor", info.size_divisor), name)
    return as_feature_extractor(model, out_indices) if features_only else model


def apply_size_policy(model: nn.Module, policy: str, divisor: int, name: str) -> None:
    """Install forward hooks that pad-and-crop, or refuse, inputs not divisible by `divisor`."""
    if policy == "any" or divisor == 1:
        return
    if policy == "error":
        model.register_forward_pre_hook(_make_divisibility_check(divisor, name))
        return
    model.register_forward_pre_hook(_pad_input_hook(divisor))
    model.register_forward_hook(_crop_output_hook)


def _make_divisibility_check(divisor: int, name: str) -> Callable:
    def check(module: nn.Module, args: tuple) -> None:
        height, width = args[0].shape[-2:]
        if height % divisor or width % divisor:
            raise ValueError(
                f"model {name!r} needs height and width divisible by {divisor}; got {height}x{width}. "
                f"Resize or pad the input (e.g. to {-(-height // divisor) * divisor}x{-(-width // divisor) * divisor})."
            )

    return check


def _pad_input_hook(divisor: int) -> Callable:
    def pad(module: nn.Module, args: tuple) -> tuple:
        x = args[0]
        height, width = x.shape[-2:]
        pad_h, pad_w = -height % divisor, -width % divisor
        module._usemabench_input_size = (height, width)
        if pad_h == 0 and pad_w == 0:
            return args
        # Zero padding at the bottom/right keeps the top-left origin aligned with the crop below.
        return (F.pad(x, (0, pad_w, 0, pad_h)), *args[1:])

    return pad


def _crop_output_hook(module: nn.Module, args: tuple, output: Any) -> Any:
    height, width = module._usemabench_input_size
    padded_height, padded_width = args[0].shape[-2:]

    def crop(tensor: torch.Tensor) -> torch.Tensor:
        # Deep-supervision outputs are smaller: keep the same fraction of each (rounded up).
        keep_h = -(-height * tensor.shape[-2] // padded_height)
        keep_w = -(-width * tensor.shape[-1] // padded_width)
        return tensor[..., :keep_h, :keep_w]

    if isinstance(output, (list, tuple)):
        return type(output)(crop(tensor) for tensor in output)
    return crop(output)


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """(total, trainable) parameter counts."""
    total = sum(parameter.numel() for parameter in model.parameters())
    trainable = sum(parameter.numel() for parameter in model.parameters() if parameter.requires_grad)
    return total, trainable


def parameter_count(name: str, in_channels: int = 1, num_classes: int = 2, **overrides: Any) -> int:
    """Parameters of a registered model, built on the `meta` device so even large models cost nothing."""
    with torch.device("meta"):
        model = create_model(name, in_channels, num_classes, **overrides)
    return count_parameters(model)[0]
