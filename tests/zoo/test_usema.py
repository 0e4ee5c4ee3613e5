"""USEMA family: the token mixers, the Mamba-like block and the UNet around them.

The shared model test (test_models.py) already checks shapes, gradients, determinism and state dicts of
every registered name; this file checks what is specific to USEMA.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from usemabench.zoo import create_model, get_model_info, list_models, parameter_count
from usemabench.zoo.layers.mixers import (
    TOKEN_MIXERS,
    FullAttention,
    LinearAttention,
    MambaLikeBlock,
    SEMAAttention,
    build_token_mixer,
)
from usemabench.zoo.layers.sema import reference_sema_attention
from usemabench.zoo.usema import USEMA, SEMAStage

HEIGHT, WIDTH = 13, 10  # not a multiple of the window: exercises the padding


@pytest.mark.parametrize("mixer", TOKEN_MIXERS)
def test_every_mixer_block_keeps_shape_and_has_finite_gradients(mixer: str) -> None:
    block = MambaLikeBlock(dim=32, num_heads=2, mixer=mixer, window_size=4)
    x = torch.randn(2, HEIGHT * WIDTH, 32, requires_grad=True)
    out = block(x, HEIGHT, WIDTH)
    assert out.shape == x.shape
    out.square().mean().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_block_has_thirteen_c_squared_parameters() -> None:
    """Linears: gate, in, qk (2), out, MLP (8) = 13 C^2 + 10 C biases; four 3x3 depthwise convs 40 C; two LNs 4 C."""
    dim = 128
    parameters = sum(p.numel() for p in MambaLikeBlock(dim, 4).parameters())
    assert parameters == 13 * dim**2 + 54 * dim


def test_sema_mixer_equals_raster_reference_plus_lepe() -> None:
    """The window-major plumbing inside SEMAAttention gives SEMA on the raster map."""
    mixer = SEMAAttention(dim=16, num_heads=2, window_size=4, backend="torch").double()
    x = torch.randn(2, HEIGHT * WIDTH, 16, dtype=torch.float64)
    q, k = mixer.qk(x).chunk(2, dim=-1)
    heads = lambda t: t.reshape(2, -1, 2, 8).transpose(1, 2)  # noqa: E731
    attention = (
        reference_sema_attention(heads(q), heads(k), heads(x), HEIGHT, WIDTH, 4).transpose(1, 2).reshape(2, -1, 16)
    )
    lepe = mixer.lepe(x.transpose(1, 2).reshape(2, 16, HEIGHT, WIDTH)).flatten(2).transpose(1, 2)
    torch.testing.assert_close(mixer(x, HEIGHT, WIDTH), attention + lepe)
    mixer.backend = "reference"
    torch.testing.assert_close(mixer(x, HEIGHT, WIDTH), attention + lepe)


@pytest.mark.parametrize("v_projection,qk_scale", [(True, None), (False, 0.2), (True, 0.7)])
def test_sema_mixer_options_equal_the_reference_on_projected_v_and_scaled_q(v_projection, qk_scale) -> None:
    """v_projection: v = Linear(x), LePE on v; qk_scale s: softmax(s q.k) (the reference divides by sqrt(d))."""
    mixer = SEMAAttention(16, 2, 4, backend="torch", v_projection=v_projection, qk_scale=qk_scale).double()
    x = torch.randn(2, HEIGHT * WIDTH, 16, dtype=torch.float64)
    q, k = mixer.qk(x).chunk(2, dim=-1)
    v = mixer.v_proj(x) if v_projection else x
    q = q * (qk_scale or 8**-0.5) * 8**0.5
    heads = lambda t: t.reshape(2, -1, 2, 8).transpose(1, 2)  # noqa: E731
    attention = (
        reference_sema_attention(heads(q), heads(k), heads(v), HEIGHT, WIDTH, 4).transpose(1, 2).reshape(2, -1, 16)
    )
    lepe = mixer.lepe(v.transpose(1, 2).reshape(2, 16, HEIGHT, WIDTH)).flatten(2).transpose(1, 2)
    torch.testing.assert_close(mixer(x, HEIGHT, WIDTH), attention + lepe)


@pytest.mark.parametrize("mixer", ["sema", "window", "full"])
def test_qk_scale_at_the_default_value_changes_nothing_and_another_value_does(mixer: str) -> None:
    default = build_token_mixer(mixer, 16, 2, 4).double()
    same, other = (build_token_mixer(mixer, 16, 2, 4, qk_scale=scale).double() for scale in (8**-0.5, 0.05))
    same.load_state_dict(default.state_dict()), other.load_state_dict(default.state_dict())
    x = torch.randn(2, HEIGHT * WIDTH, 16, dtype=torch.float64)
    expected = default(x, HEIGHT, WIDTH)
    torch.testing.assert_close(same(x, HEIGHT, WIDTH), expected)
    assert not torch.allclose(other(x, HEIGHT, WIDTH), expected)


def test_full_attention_with_both_options_is_scaled_softmax_over_projected_v() -> None:
    mixer = FullAttention(dim=8, num_heads=1, v_projection=True, qk_scale=0.3).double()
    torch.nn.init.zeros_(mixer.lepe.weight), torch.nn.init.zeros_(mixer.lepe.bias)
    x = torch.randn(1, 20, 8, dtype=torch.float64)
    q, k = mixer.qk(x).chunk(2, dim=-1)
    expected = (0.3 * q @ k.transpose(-2, -1)).softmax(-1) @ mixer.v_proj(x)
    torch.testing.assert_close(mixer(x, 4, 5), expected)


def test_qk_scale_is_refused_where_there_is_no_softmax() -> None:
    with pytest.raises(ValueError, match="linear mixer has no softmax scale"):
        build_token_mixer("linear", 16, 2, qk_scale=0.1)
    with pytest.raises(ValueError, match="mean mixer has no q/k"):
        build_token_mixer("mean", 16, 2, qk_scale=0.1)
    with pytest.raises(ValueError, match="linear mixer has no softmax scale"):
        create_model("usema_tiny_linear", qk_scale=0.1)


def test_default_usema_keeps_its_parameters_and_v_projection_adds_one_linear_per_mixer() -> None:
    """The options' defaults leave the registered model as it was (15,557,784 parameters, 211 state-dict
    entries for usema_t, 1 in, 14 classes); v_projection adds dim^2 + dim per mixer (one per SEMA block)."""
    parameters = lambda model: sum(p.numel() for p in model.parameters())  # noqa: E731
    with torch.device("meta"):
        default = create_model("usema_t", in_channels=1, num_classes=14)
        assert parameters(default) == 15_557_784
        assert len(default.state_dict()) == 211 and not any("v_proj" in key for key in default.state_dict())
        added = sum(width**2 + width for width in (128, 256, 512, 512))  # usema_t: SEMA blocks 1-1-2
        for name in ("usema_t", "usema_t_full", "usema_t_linear", "usema_t_window", "usema_t_mean"):
            baseline = create_model(name, in_channels=1, num_classes=14)
            projected = create_model(name, in_channels=1, num_classes=14, v_projection=True)
            assert parameters(projected) - parameters(baseline) == added, name
            new_keys = set(projected.state_dict()) - set(baseline.state_dict())
            assert len(new_keys) == 8 and all(".mixer.v_proj." in key for key in new_keys), name


def test_default_qk_scale_gives_the_same_model_output() -> None:
    torch.manual_seed(0)
    default = create_model("usema_tiny", 1, 2).eval()
    explicit = create_model("usema_tiny", 1, 2, qk_scale=32**-0.5).eval()
    explicit.load_state_dict(default.state_dict())
    x = torch.randn(1, 1, 48, 40)
    with torch.no_grad():
        torch.testing.assert_close(explicit(x), default(x))


def test_window_mixer_is_sema_without_the_mean() -> None:
    sema, window = build_token_mixer("sema", 16, 2, 4), build_token_mixer("window", 16, 2, 4)
    window.load_state_dict(sema.state_dict())
    x = torch.randn(2, HEIGHT * WIDTH, 16)
    torch.testing.assert_close(
        sema(x, HEIGHT, WIDTH) - window(x, HEIGHT, WIDTH), x.mean(dim=1, keepdim=True).expand_as(x)
    )


def test_linear_attention_is_a_normalised_kernel_average() -> None:
    """out_i = sum_j phi(q_i).phi(k_j) v_j / sum_j phi(q_i).phi(k_j), phi = ELU + 1 (MLLA), checked densely."""
    mixer = LinearAttention(dim=8, num_heads=2).double()
    torch.nn.init.zeros_(mixer.lepe.weight), torch.nn.init.zeros_(mixer.lepe.bias)
    x = torch.randn(1, 20, 8, dtype=torch.float64)
    q, k = (F.elu(t) + 1 for t in mixer.qk(x).chunk(2, dim=-1))
    heads = lambda t: t.reshape(1, 20, 2, 4).transpose(1, 2)  # noqa: E731
    weights = heads(q) @ heads(k).transpose(-2, -1)
    expected = (weights / weights.sum(-1, keepdim=True)) @ heads(x)
    torch.testing.assert_close(mixer(x, 4, 5), expected.transpose(1, 2).reshape(1, 20, 8), rtol=1e-5, atol=1e-6)


def test_full_attention_is_global_softmax() -> None:
    mixer = FullAttention(dim=8, num_heads=1).double()
    torch.nn.init.zeros_(mixer.lepe.weight), torch.nn.init.zeros_(mixer.lepe.bias)
    x = torch.randn(1, 20, 8, dtype=torch.float64)
    q, k = mixer.qk(x).chunk(2, dim=-1)
    expected = ((q @ k.transpose(-2, -1)) / 8**0.5).softmax(-1) @ x
    torch.testing.assert_close(mixer(x, 4, 5), expected)


def test_unknown_mixer_and_bad_heads_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown token mixer 'mamba'"):
        build_token_mixer("mamba", 16, 2)
    with pytest.raises(ValueError, match="not divisible by num_heads"):
        SEMAAttention(dim=10, num_heads=3)
    with pytest.raises(ValueError, match="placement 'dec'"):
        USEMA(1, 2, placement="dec")
    with pytest.raises(ValueError, match="head_dim 32"):
        USEMA(1, 2, widths=(8, 16, 24, 64, 128))


def sema_blocks_per_stage(model: USEMA) -> list[int]:
    return [len(stage.blocks) if isinstance(stage, SEMAStage) else 0 for stage in model.sema_stages]


def test_deep_supervision_outputs_and_eval_output() -> None:
    model = create_model("usema_tiny", in_channels=1, num_classes=3)
    x = torch.randn(1, 1, 32, 48)
    with torch.no_grad():
        outputs = model.train()(x)
        assert [tuple(out.shape[-2:]) for out in outputs] == [(32, 48), (16, 24), (8, 12), (4, 6)]
        assert model.eval()(x).shape == (1, 3, 32, 48)
        model.deep_supervision = False
        assert model.train()(x).shape == (1, 3, 32, 48)


def test_placement_and_the_none_ablation() -> None:
    with torch.device("meta"):
        assert sema_blocks_per_stage(create_model("usema_s")) == [0, 0, 2, 2, 4]
        assert sema_blocks_per_stage(create_model("usema_s", placement="bot")) == [0, 0, 0, 0, 4]
        assert sema_blocks_per_stage(create_model("usema_b_none")) == [0, 0, 0, 0, 0]
        blocks = [module for module in create_model("usema_t").modules() if isinstance(module, MambaLikeBlock)]
    assert isinstance(blocks[0].drop_path, torch.nn.Identity)  # rate 0 for the first SEMA block
    assert [block.drop_path.drop_prob for block in blocks[1:]] == pytest.approx([0.1 / 3, 0.2 / 3, 0.1])


def test_transposed_upsampling_option_runs() -> None:
    model = create_model("usema_tiny", 1, 2, upsample="transposed").eval()
    with torch.no_grad():
        assert model(torch.randn(1, 1, 48, 48)).shape == (1, 2, 48, 48)


def test_registered_names_and_reconstruction_labels() -> None:
    names = set(list_models("usema*"))
    expected = {
        f"usema_{size}{suffix}"
        for size in ("t", "s", "b", "tiny")
        for suffix in ("", "_full", "_linear", "_window", "_mean", "_none")
    }
    assert names == expected
    for name in expected:
        info = get_model_info(name)
        assert info.family == "usema" and info.size_divisor == 16 and info.reconstructed
        assert info.small == name.startswith("usema_tiny")
        if not info.small:
            assert get_model_info(info.test_variant).default_config["mixer"] == info.default_config["mixer"]


@pytest.mark.parametrize("name,millions", [("usema_t", 15.6), ("usema_s", 29.8), ("usema_b", 70.8)])
def test_parameter_counts_match_the_spec_estimates(name: str, millions: float) -> None:
    """USEMA_SPEC.md's estimates for 1 input channel and 14 classes."""
    assert parameter_count(name, in_channels=1, num_classes=14) / 1e6 == pytest.approx(millions, rel=0.01)


@pytest.mark.parametrize("name", ["usema_tiny", "usema_tiny_window"])
def test_fast_path_model_equals_the_reference_kernel_in_outputs_and_gradients(name: str) -> None:
    """The whole model on the torch fast path (packed heads, one token layout per stage) against the same
    weights on the dense reference kernel, float64, at a size whose deeper maps need window padding."""
    models = []
    for backend in ("torch", "reference"):
        torch.manual_seed(0)
        models.append(create_model(name, 1, 2, attention_backend=backend, drop_path_rate=0.0).double().train())
    x = torch.randn(2, 1, 96, 96, dtype=torch.float64)
    outputs = [model(x) for model in models]
    for fast, reference in zip(*outputs, strict=True):
        torch.testing.assert_close(fast, reference)
    weights = [torch.randn_like(output) for output in outputs[0]]
    for model, output in zip(models, outputs, strict=True):
        sum((o * w).sum() for o, w in zip(output, weights, strict=True)).backward()
    for (key, fast), (_, reference) in zip(models[0].named_parameters(), models[1].named_parameters(), strict=True):
        torch.testing.assert_close(fast.grad, reference.grad, msg=lambda text, key=key: f"{key}: {text}")


@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last])
def test_sema_stage_returns_its_input_memory_format(memory_format) -> None:
    stage = SEMAStage(dim=32, depth=2, num_heads=1, drop_paths=[0.0, 0.0], window_size=4)
    x = torch.randn(2, 32, 12, 8).contiguous(memory_format=memory_format)
    out = stage(x)
    assert out.shape == x.shape and out.is_contiguous(memory_format=memory_format)
    torch.testing.assert_close(out, stage(x.contiguous()), rtol=1e-5, atol=1e-5)
