"""Rebuilding a model from a stored spec and loading stored tensors into it, with one message for what is wrong.

Checkpoints, weights folders and packaged weights all store `(name, in_channels, num_classes, overrides)` and a
state dict. Whatever can be wrong with them (a field of the wrong type, an unknown model or option, tensors of
another shape because the weights were trained for other classes or channels) is reported here as a
`WeightsError` naming the file and what differs, never as a KeyError, TypeError or RuntimeError from torch.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from usemabench.zoo.registry import create_model

MAX_RESOLUTION = 8192  # a stored resolution above this per side is refused: one image would need gigabytes
MAX_CHANNELS = 4096  # more input channels or classes than any 2D segmentation data set has


class WeightsError(ValueError):
    """Stored weights that cannot be used as they are: the message names the file and what differs."""


def check_spec(spec: Any, source: str) -> dict[str, Any]:
    """`spec` as {"name", "in_channels", "num_classes", "overrides"}, or a WeightsError naming the bad field."""
    if not isinstance(spec, Mapping):
        raise WeightsError(f"{source}: the model spec must be an object, got {type(spec).__name__}")
    name, overrides = spec.get("name"), spec.get("overrides", {})
    if not isinstance(name, str) or not name:
        raise WeightsError(f"{source}: the model name must be a non-empty string, got {name!r}")
    for key in ("in_channels", "num_classes"):
        value = spec.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_CHANNELS:
            raise WeightsError(f"{source}: {key} must be an integer in [1, {MAX_CHANNELS}], got {value!r}")
    if not isinstance(overrides, Mapping):
        raise WeightsError(f"{source}: overrides must be an object, got {overrides!r}")
    return {"name": name, "in_channels": spec["in_channels"], "num_classes": spec["num_classes"], "overrides": dict(overrides)}


def check_preprocessing(preprocessing: Any, source: str) -> dict[str, Any]:
    """The stored preprocessing, with a resolution (if any) of two integers in [1, MAX_RESOLUTION]."""
    if preprocessing is None:
        return {}
    if not isinstance(preprocessing, Mapping):
        raise WeightsError(f"{source}: preprocessing must be an object, got {preprocessing!r}")
    resolution = preprocessing.get("resolution")
    if resolution is not None and not (
        isinstance(resolution, list)
        and len(resolution) == 2
        and all(isinstance(side, int) and not isinstance(side, bool) and 1 <= side <= MAX_RESOLUTION for side in resolution)
    ):
        raise WeightsError(f"{source}: resolution must be [height, width], each an integer in [1, {MAX_RESOLUTION}], got {resolution!r}")
    return dict(preprocessing)


def build_from_spec(spec: Any, source: str, **extra_overrides: Any) -> nn.Module:
    """The untrained model `spec` describes (stored overrides updated by `extra_overrides`)."""
    spec = check_spec(spec, source)
    overrides = {**spec["overrides"], **extra_overrides}
    try:
        return create_model(spec["name"], spec["in_channels"], spec["num_classes"], **overrides)
    except KeyError as error:  # unknown model: the registry's message lists close names
        raise WeightsError(f"{source}: {error.args[0]}") from None
    except (TypeError, ValueError) as error:  # an option the model does not take, or a value it refuses
        raise WeightsError(f"{source}: model {spec['name']!r} cannot be built with {overrides}: {error}") from None


def load_state(model: nn.Module, state_dict: Mapping[str, torch.Tensor], source: str) -> None:
    """Load `state_dict` into `model` (cast to the model's dtypes: fp16 weights load into an fp32 model).

    Missing or unexpected keys, or tensors of another shape, are one WeightsError that names the first
    differences and, for a first or last layer, the channel or class count the weights were trained with.
    """
    expected = model.state_dict()
    missing = [key for key in expected if key not in state_dict]
    unexpected = [key for key in state_dict if key not in expected]
    reshaped = [key for key in expected if key in state_dict and tuple(state_dict[key].shape) != tuple(expected[key].shape)]
    if missing or unexpected or reshaped:
        spec = getattr(model, "usemabench_spec", {})
        built = f"{spec.get('name', type(model).__name__)} (in_channels={spec.get('in_channels')}, num_classes={spec.get('num_classes')})"
        problems = []
        if reshaped:
            shapes = "; ".join(
                f"{key}: weights {tuple(state_dict[key].shape)}, model {tuple(expected[key].shape)}" for key in reshaped[:3]
            )
            problems.append(f"{len(reshaped)} tensor(s) of another shape ({shapes})")
        if missing:
            problems.append(f"{len(missing)} missing (e.g. {', '.join(missing[:3])})")
        if unexpected:
            problems.append(f"{len(unexpected)} unexpected (e.g. {', '.join(unexpected[:3])})")
        hint = ""
        if reshaped and not missing and not unexpected:
            hint = " The weights were trained with another channel or class count, or another config, than this model has."
        raise WeightsError(f"{source}: weights do not fit {built}: {'; '.join(problems)}.{hint}")
    cast = {
        key: value.to(expected[key].dtype) if value.is_floating_point() and expected[key].is_floating_point() else value
        for key, value in state_dict.items()
    }
    model.load_state_dict(cast)
