"""Facts that make the CNN and Transformer baselines recognisable as their papers' models.

The shared test (test_models.py) checks shapes and gradients; these catch an unfaithful model: wrong widths,
norms or depths, attention that is not global (or not windowed), broken position-embedding resampling,
and size errors that do not name the divisor. Default configs are inspected on the `meta` device.
"""

from __future__ import annotations

import pytest
import torch
from monai.networks.nets import UNETR
from timm.layers import StdConv2d
from torch import nn

from usemabench.zoo import count_parameters, create_model, get_model_info
from usemabench.zoo.swinunet import SwinBlock, SwinUNet, shifted_window_mask
from usemabench.zoo.transunet import TransUNet
from usemabench.zoo.unet import PlainConvUNet, nnunet_stage_count
from usemabench.zoo.unetr import UNETR2d


def on_meta(name: str, in_channels: int = 1, num_classes: int = 2, **overrides) -> nn.Module:
    with torch.device("meta"):
        return create_model(name, in_channels, num_classes, **overrides)


# --- nnU-Net ------------------------------------------------------------------------------------------


def test_nnunet_stage_count_matches_the_planner() -> None:
    # nnU-Net pools while an edge is >= 8 (bottleneck edge >= 4): 512 -> 7 poolings, 256 -> 6.
    assert [nnunet_stage_count(size) for size in (512, 256, 128, 64, 7)] == [8, 7, 6, 5, 1]


def test_nnunet_widths_norms_activations_and_resampling() -> None:
    model = on_meta("nnunet")
    assert model.widths == [32, 64, 128, 256, 512, 512, 512]
    for index, stage in enumerate(model.encoder):
        assert len(stage) == 2
        assert stage[0][0].out_channels == model.widths[index]
        assert stage[0][0].stride == ((1, 1) if index == 0 else (2, 2))
    for stage in [*model.encoder, *model.decoder]:
        for conv, norm, act in stage:
            assert isinstance(conv, nn.Conv2d) and conv.kernel_size == (3, 3) and conv.bias is not None
            assert isinstance(norm, nn.InstanceNorm2d) and norm.affine and norm.eps == 1e-5
            assert isinstance(act, nn.LeakyReLU) and act.negative_slope == 0.01
    for upsample in model.upsamples:
        assert isinstance(upsample.up, nn.ConvTranspose2d)
        assert upsample.up.kernel_size == (2, 2) and upsample.up.stride == (2, 2)
    assert len(model.heads) == 6 and model.size_divisor == 64


def test_nnunet_deep_supervision_returns_every_decoder_head_full_resolution_first() -> None:
    model = create_model("nnunet_small", in_channels=1, num_classes=3)
    x = torch.randn(1, 1, 64, 48)
    outputs = model.train()(x)
    assert [tuple(out.shape[-2:]) for out in outputs] == [(64, 48), (32, 24), (16, 12)]
    assert model.eval()(x).shape == (1, 3, 64, 48)


def test_plain_conv_unet_error_names_its_divisor() -> None:
    model = PlainConvUNet(1, 2, n_stages=5, base_width=4, max_width=8)
    with pytest.raises(ValueError, match="divisible by 16"):
        model(torch.randn(1, 1, 40, 40))


# --- TransUNet -----------------------------------------------------------------------------------------


def test_transunet_is_r50_vit_b16_with_the_papers_parameter_count() -> None:
    model = on_meta("transunet", in_channels=3, num_classes=9)
    assert len(model.layers) == 12
    attention = model.layers[0].attn
    assert attention.num_heads == 12 and attention.head_dim == 64
    assert model.layers[0].ffn.fc1.out_features == 3072
    assert model.pos_embed.shape == (1, 14 * 14, 768)
    assert [len(stage) for stage in model.resnet.stages] == [3, 4, 9]
    assert model.resnet.out_channels == 1024 and model.patch_embed.kernel_size == (1, 1)
    assert any(isinstance(module, StdConv2d) for module in model.resnet.modules())
    assert any(isinstance(module, nn.GroupNorm) for module in model.resnet.modules())
    # The paper reports 105.28M for R50-ViT-B/16 (RGB input, 9 Synapse classes).
    assert count_parameters(model)[0] == pytest.approx(105.28e6, rel=1e-3)


def test_transunet_attention_is_global_over_all_tokens() -> None:
    model = create_model("transunet_small").eval()
    tokens = torch.randn(1, 36, model.pos_embed.shape[-1])
    perturbed = tokens.clone()
    perturbed[0, 0] += torch.randn(tokens.shape[-1])  # not a constant: LayerNorm would erase it
    with torch.no_grad():
        change = (model.layers[0](perturbed) - model.layers[0](tokens)).abs().amax(dim=-1)
    assert bool((change > 1e-4).all()), "a change in one token must reach every token after one layer"


def test_transunet_position_embeddings_resample_to_other_grids() -> None:
    model = create_model("transunet_small").eval()
    assert model.grid_size == (4, 4)
    assert model.position_embeddings((4, 4)) is model.pos_embed
    with torch.no_grad():
        model.pos_embed.fill_(0.5)
        assert torch.allclose(model.position_embeddings((6, 5)), torch.full((1, 30, 192), 0.5))
        model.pos_embed.normal_()
        x = torch.randn(1, 1, 96, 80)
        first = model(x)
        model.pos_embed.mul_(2.0)
        assert first.shape == (1, 2, 96, 80)
        assert not torch.allclose(model(x), first), "the resampled embeddings must be used at 96x80"


def test_transunet_size_errors_name_16_and_create_model_pads() -> None:
    config = dict(get_model_info("transunet_small").default_config)
    with pytest.raises(ValueError, match="divisible by 16"):
        TransUNet(1, 2, **config).eval()(torch.randn(1, 1, 72, 72))
    with torch.no_grad():
        assert create_model("transunet_small").eval()(torch.randn(1, 1, 72, 70)).shape == (1, 2, 72, 70)


# --- UNETR ---------------------------------------------------------------------------------------------


def test_unetr_default_is_vit_b16_with_global_attention() -> None:
    model = on_meta("unetr")
    assert len(model.vit.blocks) == 12 and model.hidden_size == 768
    assert model.vit.patch_embedding.position_embeddings.shape == (1, 16 * 16, 768)


def test_unetr_matches_monai_at_img_size_and_takes_other_sizes() -> None:
    model = create_model("unetr_small").eval()
    x = torch.randn(1, 1, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model(x), UNETR.forward(model, x), rtol=0, atol=0)
        other = torch.randn(1, 1, 96, 48)
        assert model(other).shape == (1, 2, 96, 48)
        with pytest.raises(RuntimeError):
            UNETR.forward(model, other)  # MONAI alone cannot: its position embeddings are fixed
    with pytest.raises(ValueError, match="divisible by 16"):
        UNETR2d(1, 2, img_size=64, feature_size=8, hidden_size=48, mlp_dim=96, num_heads=2)(torch.randn(1, 1, 40, 40))


# --- Swin-UNet and SwinUNETR ----------------------------------------------------------------------------


def test_swin_unet_is_swin_t_with_the_papers_parameter_count() -> None:
    model = on_meta("swin_unet", in_channels=3, num_classes=9)
    blocks = [module for module in model.modules() if isinstance(module, SwinBlock)]
    assert len(blocks) == 14  # encoder 2-2-2-2, decoder 2-2-2 (the reference reuses the encoder depths)
    assert {block.window_size for block in blocks} == {7}
    assert [block.shift_size for block in model.layers[0].blocks] == [0, 3]
    assert model.patch_embed.kernel_size == (4, 4)
    # The paper reports 27.17M (RGB input, 9 Synapse classes).
    assert count_parameters(model)[0] == pytest.approx(27.17e6, rel=1e-3)


def test_swin_unet_mlp_ratio_reaches_every_block() -> None:
    with torch.device("meta"):
        model = SwinUNet(1, 2, embed_dim=12, num_heads=(1, 1, 1, 1), mlp_ratio=2.0)
    blocks = [module for module in model.modules() if isinstance(module, SwinBlock)]
    assert {block.mlp.fc1.out_features / block.mlp.fc1.in_features for block in blocks} == {2.0}


def test_shifted_window_mask_allows_only_true_neighbours() -> None:
    """Slow reference: after the shift, two tokens of one window may attend iff they were neighbours
    in the unshifted map (closer than a window in both axes, no wrap-around)."""
    height, width, window, shift = 14, 21, 7, 3
    mask = shifted_window_mask(height, width, window, shift, torch.device("cpu"))
    rows = (torch.arange(height) + shift) % height  # original row of each shifted row
    cols = (torch.arange(width) + shift) % width
    index = 0
    for window_row in range(height // window):
        for window_col in range(width // window):
            r = rows[window_row * window : (window_row + 1) * window].repeat_interleave(window)
            c = cols[window_col * window : (window_col + 1) * window].repeat(window)
            near = ((r[:, None] - r[None, :]).abs() < window) & ((c[:, None] - c[None, :]).abs() < window)
            expected = torch.where(near, 0.0, -100.0)
            torch.testing.assert_close(mask[index], expected)
            index += 1
    assert index == mask.shape[0]


def test_swin_block_attention_stays_inside_its_window() -> None:
    block = SwinBlock(dim=8, num_heads=2, window_size=7, shifted=False).eval()
    x = torch.randn(1, 14, 14, 8)
    perturbed = x.clone()
    perturbed[0, 0, 0] += torch.randn(8)
    with torch.no_grad():
        change = (block(perturbed) - block(x)).abs().amax(dim=-1)[0]
    assert bool((change[:7, :7] > 1e-4).all())
    assert float(change[7:].abs().max()) == 0.0 and float(change[:, 7:].abs().max()) == 0.0


def test_swin_unet_error_names_32_and_windows_pad_off_224() -> None:
    model = SwinUNet(1, 2, embed_dim=12, depths=(2, 2, 2, 2), num_heads=(1, 1, 1, 1)).eval()
    with pytest.raises(ValueError, match="divisible by 32"):
        model(torch.randn(1, 1, 48, 48))
    with torch.no_grad():
        assert model(torch.randn(1, 1, 64, 96)).shape == (1, 2, 64, 96)  # 16x24 .. 2x3 maps, window-padded


def test_windowed_and_global_attention_families() -> None:
    assert get_model_info("swin_unet").family == "attention-window"
    assert get_model_info("swinunetr").family == "attention-window"
    assert get_model_info("transunet").family == "attention-full"
    assert get_model_info("unetr").family == "attention-full"
    assert get_model_info("nnunet").family == "cnn"
