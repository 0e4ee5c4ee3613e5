"""The Mamba block and the Mamba family (U-Mamba, VM-UNet): semantics, reference structure, precision, sizes."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from usemabench.zoo import create_model, parameter_count
from usemabench.zoo.layers.mamba import MambaLayer
from usemabench.zoo.layers.scan import backend_problem, selective_scan_reference
from usemabench.zoo.umamba import ImageMambaLayer, UMamba
from usemabench.zoo.vmunet import SS2D

MAMBA_SSM_KEYS = {  # mamba_ssm.modules.mamba_simple.Mamba(d_model=32) state dict
    "in_proj.weight": (128, 32),
    "conv1d.weight": (64, 1, 4),
    "conv1d.bias": (64,),
    "x_proj.weight": (2 + 2 * 16, 64),
    "dt_proj.weight": (64, 2),
    "dt_proj.bias": (64,),
    "A_log": (64, 16),
    "D": (64,),
    "out_proj.weight": (32, 64),
}


def test_mamba_layer_has_mamba_ssm_parameters_and_initialisation() -> None:
    layer = MambaLayer(d_model=32)
    assert {name: tuple(p.shape) for name, p in layer.state_dict().items()} == MAMBA_SSM_KEYS
    torch.testing.assert_close(-torch.exp(layer.A_log), -torch.arange(1.0, 17.0).expand(64, 16))
    torch.testing.assert_close(layer.D, torch.ones(64))
    dt = F.softplus(layer.dt_proj.bias)
    assert dt.min() >= 0.001 * 0.999 and dt.max() <= 0.1 * 1.001


def test_mamba_layer_is_causal() -> None:
    layer = MambaLayer(d_model=16).double()
    tokens = torch.randn(2, 30, 16, dtype=torch.float64)
    changed = tokens.clone()
    changed[:, 20:] += 1.0
    before, after = layer(tokens), layer(changed)
    torch.testing.assert_close(after[:, :20], before[:, :20], rtol=0, atol=1e-12)
    assert (after[:, 20:] - before[:, 20:]).abs().amin(dim=-1).gt(0).all()


def test_mamba_layer_backends_agree_and_the_backend_is_recorded() -> None:
    layer = MambaLayer(d_model=16).double()
    tokens = torch.randn(2, 40, 16, dtype=torch.float64)
    layer.scan_backend = "reference"
    expected = layer(tokens)
    assert layer.scan_backend_used == "reference"
    layer.scan_backend = "auto"
    torch.testing.assert_close(layer(tokens), expected)
    assert layer.scan_backend_used == "torch"


def test_mamba_layer_runs_in_float32_under_autocast() -> None:
    layer = MambaLayer(d_model=16)
    tokens = torch.randn(2, 24, 16)
    expected = layer(tokens)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        output = layer(tokens.bfloat16())
    assert output.dtype == torch.float32 and layer.compute_dtype == torch.float32
    torch.testing.assert_close(output, layer(tokens.bfloat16().float()))
    assert (output - expected).abs().max() < 0.05  # only the input's rounding to bfloat16 differs


@pytest.mark.gpu
@pytest.mark.skipif(
    not torch.cuda.is_available() or backend_problem("cuda", "cuda") is not None, reason="needs mamba-ssm on CUDA"
)
def test_mamba_layer_matches_mamba_ssm() -> None:
    from mamba_ssm.modules.mamba_simple import Mamba

    ours = MambaLayer(d_model=32, scan_backend="torch").cuda()
    theirs = Mamba(d_model=32, use_fast_path=False).cuda()  # the path without causal-conv1d
    theirs.load_state_dict(ours.state_dict())
    tokens = torch.randn(2, 300, 32, device="cuda")
    torch.testing.assert_close(ours(tokens), theirs(tokens), rtol=1e-3, atol=1e-4)


# ------------------------------------------------------------------------------------------------ U-Mamba


def test_umamba_follows_the_reference_stage_rules() -> None:
    with torch.device("meta"):
        bot = create_model("umamba_bot", in_channels=1, num_classes=2)
        enc = create_model("umamba_enc", in_channels=1, num_classes=2)
    # Seven stages: two blocks in the first ceil(7/2) = 4 encoder stages and decoder stages, one after.
    assert [len(stage) for stage in bot.stages] == [2, 2, 2, 2, 1, 1, 1]
    assert [len(stage) for stage in bot.decoder_stages] == [2, 2, 2, 2, 1, 1]
    assert len(bot.stem) == 2
    # The last decoder stage takes no skip: its input is the upsampled map alone (32 channels), as in the reference.
    assert bot.decoder_stages[-1][0].conv1[0].in_channels == 32
    assert bot.decoder_stages[-2][0].conv1[0].in_channels == 2 * 64
    assert [type(layer).__name__ for layer in bot.mamba_layers] == ["Identity"] * 6 + ["ImageMambaLayer"]
    # Enc at 256x256: Mamba after stages 0, 2, 4, 6; stages 4 (16x16 <= 512 ch) and 6 (4x4) scan over channels.
    placed = {
        s: (layer.dim, layer.channel_tokens)
        for s, layer in enumerate(enc.mamba_layers)
        if isinstance(layer, ImageMambaLayer)
    }
    assert placed == {0: (32, False), 2: (128, False), 4: (256, True), 6: (16, True)}


def test_umamba_enc_channel_tokens_need_the_built_size() -> None:
    model = create_model("umamba_enc_small", in_channels=1, num_classes=2, input_size=(32, 32)).eval()
    assert model.mamba_layers[3].channel_tokens and model.mamba_layers[3].dim == 16  # 4x4 map, 32 channels
    with torch.no_grad():
        assert model(torch.randn(1, 1, 32, 32)).shape == (1, 2, 32, 32)
        with pytest.raises(ValueError, match=r"built for 16 pixels per channel, got 8x8.*input_size"):
            model(torch.randn(1, 1, 64, 64))


def test_umamba_mamba_layers_run_in_float32_under_autocast() -> None:
    model = UMamba(1, 2, features_per_stage=(8, 16), mamba="bottleneck").eval()
    dtypes = []
    model.mamba_layers[-1].register_forward_hook(lambda module, args, output: dtypes.append(output.dtype))
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        output = model(torch.randn(1, 1, 32, 32))
    assert dtypes == [torch.float32] and model.mamba_layers[-1].mamba.compute_dtype == torch.float32
    assert torch.isfinite(output).all()


def test_umamba_deep_supervision_in_train_mode_only() -> None:
    model = create_model("umamba_bot_small", in_channels=1, num_classes=2)
    x = torch.randn(1, 1, 32, 32)
    outputs = model.train()(x)
    assert [tuple(out.shape[-2:]) for out in outputs] == [(32, 32), (16, 16), (8, 8)]
    with torch.no_grad():
        assert model.eval()(x).shape == (1, 2, 32, 32)


# ------------------------------------------------------------------------------------------------ VM-UNet


def naive_ss2d_scan(module: SS2D, x: torch.Tensor) -> torch.Tensor:
    """SS2D's four scans one at a time by explicit pixel orders, summed back at each pixel's row-major place."""
    batch, channels, height, width = x.shape
    row_major = torch.arange(height * width)
    column_major = row_major.reshape(height, width).t().flatten()
    orders = [row_major, column_major, row_major.flip(0), column_major.flip(0)]
    merged = torch.zeros(batch, channels, height * width, dtype=x.dtype)
    flat = x.flatten(2)
    d_inner, rank, d_state = module.d_inner, module.dt_rank, module.d_state
    for k, order in enumerate(orders):
        sequence = flat[:, :, order]
        projected = torch.einsum("bdl,cd->bcl", sequence, module.x_proj_weight[k])
        dt, B, C = projected.split([rank, d_state, d_state], dim=1)
        y = selective_scan_reference(
            sequence,
            torch.einsum("brl,dr->bdl", dt, module.dt_projs_weight[k]),
            -torch.exp(module.A_logs[k * d_inner : (k + 1) * d_inner]),
            B,
            C,
            module.Ds[k * d_inner : (k + 1) * d_inner],
            delta_bias=module.dt_projs_bias[k],
            delta_softplus=True,
        )
        merged[:, :, order] += y
    return merged


def test_ss2d_scans_four_directions_and_merges_them_row_major() -> None:
    module = SS2D(d_model=8, d_state=4, scan_backend="reference").double()
    height, width = 5, 7  # not square, so a transposition mistake shows
    tokens = torch.randn(2, height, width, 8, dtype=torch.float64)
    x, z = module.in_proj(tokens).chunk(2, dim=-1)
    x = F.silu(module.conv2d(x.permute(0, 3, 1, 2)))
    y = naive_ss2d_scan(module, x).transpose(1, 2).reshape(2, height, width, -1)
    expected = module.out_proj(module.out_norm(y) * F.silu(z))
    torch.testing.assert_close(module(tokens), expected)


def test_vmunet_parameter_count_matches_the_paper() -> None:
    # VM-UNet paper, Table 1: 27.43M parameters (ISIC setting: 3 input channels, 1 output).
    assert round(parameter_count("vmunet", in_channels=3, num_classes=1) / 1e6, 2) == 27.43


def test_vmunet_pads_inputs_to_a_multiple_of_32() -> None:
    model = create_model("vmunet_small", in_channels=1, num_classes=2).eval()
    seen = []
    model.patch_embed.register_forward_hook(lambda module, args, output: seen.append(tuple(args[0].shape[-2:])))
    with torch.no_grad():
        assert model(torch.randn(1, 1, 40, 70)).shape == (1, 2, 40, 70)
    assert seen == [(64, 96)]
