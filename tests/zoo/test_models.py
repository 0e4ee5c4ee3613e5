"""The shared model test: every registered name is checked here, so registering a model tests it.

Large default configs are exercised through their registered small `test_variant` (same code, smaller
widths/depths); the default config itself is still built on the `meta` device to check it constructs.
"""

from __future__ import annotations

import io

import pytest
import torch

from usemabench.zoo import count_parameters, create_model, get_model_info, list_models, parameter_count
from usemabench.zoo.features import backbone_info

ALL_MODELS = list_models()
SIZES = [(64, 64), (80, 80)]


def runnable_name(name: str) -> str:
    info = get_model_info(name)
    return info.test_variant or name


def make_input(name: str, size: tuple[int, int], batch: int = 2, channels: int = 1) -> torch.Tensor:
    info = get_model_info(name)
    height, width = size
    if info.size_policy == "error":
        height, width = (-(-side // info.size_divisor) * info.size_divisor for side in (height, width))
    return torch.randn(batch, channels, height, width)


def test_registry_is_not_empty_and_has_families() -> None:
    assert "usema_t" in ALL_MODELS
    assert {get_model_info(name).family for name in ALL_MODELS} >= {"usema"}


@pytest.mark.parametrize("name", ALL_MODELS)
def test_default_config_builds_on_meta(name: str) -> None:
    if not get_model_info(name).available:
        pytest.skip(f"{name} needs {get_model_info(name).requires}")
    assert parameter_count(name) > 0


@pytest.mark.parametrize("size", SIZES, ids=lambda size: f"{size[0]}x{size[1]}")
@pytest.mark.parametrize("name", ALL_MODELS)
def test_forward_backward_shape_and_finite_gradients(name: str, size: tuple[int, int]) -> None:
    target = runnable_name(name)
    if not get_model_info(target).available:
        pytest.skip(f"{target} needs {get_model_info(target).requires}")
    model = create_model(target, in_channels=1, num_classes=3)
    model.train()
    x = make_input(target, size)
    output = model(x)
    outputs = output if isinstance(output, (list, tuple)) else [output]
    assert outputs[0].shape == (x.shape[0], 3, *x.shape[-2:])
    loss = sum(out.float().square().mean() for out in outputs)
    loss.backward()
    gradients = [p.grad for p in model.parameters() if p.requires_grad and p.grad is not None]
    assert gradients, f"{target}: no parameter received a gradient"
    assert all(torch.isfinite(grad).all() for grad in gradients)


@pytest.mark.parametrize("name", ALL_MODELS)
def test_eval_is_deterministic_and_state_dict_round_trips(name: str) -> None:
    target = runnable_name(name)
    if not get_model_info(target).available:
        pytest.skip(f"{target} needs {get_model_info(target).requires}")
    model = create_model(target, in_channels=2, num_classes=2).eval()
    x = make_input(target, SIZES[0], batch=1, channels=2)
    with torch.no_grad():
        first = model(x)
        second = model(x)
    assert first.shape == (1, 2, *x.shape[-2:])
    torch.testing.assert_close(first, second, rtol=0, atol=0)

    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    buffer.seek(0)
    clone = create_model(target, in_channels=2, num_classes=2).eval()
    clone.load_state_dict(torch.load(buffer, weights_only=True))
    with torch.no_grad():
        torch.testing.assert_close(clone(x), first, rtol=0, atol=0)


@pytest.mark.parametrize("name", ALL_MODELS)
def test_size_policy_pads_and_crops_or_names_the_divisor(name: str) -> None:
    target = runnable_name(name)
    info = get_model_info(target)
    if not info.available:
        pytest.skip(f"{target} needs {info.requires}")
    if info.size_divisor == 1 or info.size_policy == "any":
        pytest.skip(f"{target} takes any size")
    model = create_model(target, in_channels=1, num_classes=2).eval()
    odd = info.size_divisor * 3 + 5
    x = torch.randn(1, 1, odd, odd + 2)
    if info.size_policy == "error":
        with pytest.raises(ValueError, match=str(info.size_divisor)):
            model(x)
    else:
        with torch.no_grad():
            assert model(x).shape == (1, 2, odd, odd + 2)


# Models with no multi-scale encoder to return: UNETR's ViT works at one scale (its skips are built by the decoder).
WITHOUT_BACKBONE = {"unetr", "unetr_small"}


@pytest.mark.parametrize("name", ALL_MODELS)
def test_features_only_returns_maps_of_the_stated_channels_and_strides(name: str) -> None:
    target = runnable_name(name)
    info = get_model_info(target)
    if not info.available:
        pytest.skip(f"{target} needs {info.requires}")
    full = create_model(target, in_channels=1, num_classes=2)
    if backbone_info(full) is None:
        assert target in WITHOUT_BACKBONE, f"{target} offers no features_only; list it in WITHOUT_BACKBONE or add it"
        with pytest.raises(ValueError, match="features_only is not available"):
            create_model(target, features_only=True)
        return
    backbone = create_model(target, in_channels=1, num_classes=2, features_only=True).eval()
    x = make_input(target, SIZES[1], batch=2)
    divisor = backbone.size_divisor if backbone.size_policy != "any" else 1
    height, width = (-(-side // divisor) * divisor for side in x.shape[-2:])
    with torch.no_grad():
        features = backbone(x)
    assert len(features) == len(backbone.feature_info) >= 3
    reductions = backbone.feature_info.reduction()
    assert reductions == sorted(set(reductions)), "one map per stride, finest first"
    for feature, stage in zip(features, backbone.feature_info, strict=True):
        assert feature.shape == (2, stage["num_chs"], height // stage["reduction"], width // stage["reduction"]), stage
    assert count_parameters(backbone)[0] < count_parameters(full)[0], "the decoder is dropped"

    last = create_model(target, in_channels=1, num_classes=2, features_only=True, out_indices=(-1,)).eval()
    assert last.feature_info == backbone.feature_info[-1:]
    with torch.no_grad():
        assert last(x)[0].shape == features[-1].shape
    with pytest.raises(ValueError, match="out_indices"):
        create_model(target, features_only=True, out_indices=(len(features),))
