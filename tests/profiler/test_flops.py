"""FLOP counting against hand-computed counts, scaling laws, fvcore, and the tripwire.

Analytic counts are written out from the definitions (MACs = multiply-accumulates), independently of the
formulas in usemabench.profiler.flops and the kernels' own cost functions.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from usemabench.profiler.flops import UncountedOpError, count_flops
from usemabench.zoo import create_model
from usemabench.zoo.layers.scan import selective_scan
from usemabench.zoo.layers.sema import sema_attention


def macs(model: nn.Module, shape: tuple[int, ...], mode: str = "infer", device: str = "meta") -> int:
    counted = count_flops(model, shape, mode, device=device)
    assert counted["flops"] == 2 * counted["macs"]
    assert counted["device"] == device and counted["fallback_reason"] is None
    return counted["macs"]


# --- token mixers on (B, C, H, W) maps, heads of `head_dim` channels, q = k = v = the input --------------


def split_heads(x: Tensor, head_dim: int) -> tuple[Tensor, int, int]:
    batch, channels, height, width = x.shape
    tokens = x.flatten(2).transpose(1, 2).reshape(batch, height * width, channels // head_dim, head_dim)
    return tokens.transpose(1, 2), height, width


class FullAttentionSDPA(nn.Module):
    def __init__(self, head_dim: int) -> None:
        super().__init__()
        self.head_dim = head_dim
        self.scale = nn.Parameter(torch.ones(()))  # gives the backward something to differentiate

    def forward(self, x: Tensor) -> Tensor:
        tokens, _, _ = split_heads(x * self.scale, self.head_dim)
        return F.scaled_dot_product_attention(tokens, tokens, tokens)


class FullAttentionMatmul(FullAttentionSDPA):
    def forward(self, x: Tensor) -> Tensor:
        tokens, _, _ = split_heads(x * self.scale, self.head_dim)
        weights = (tokens @ tokens.transpose(-2, -1) / self.head_dim**0.5).softmax(dim=-1)
        return weights @ tokens


class WindowAttention(FullAttentionSDPA):
    """Swin-style: partition into non-overlapping w x w windows, SDPA inside each."""

    def __init__(self, head_dim: int, window_size: int) -> None:
        super().__init__(head_dim)
        self.window_size = window_size

    def forward(self, x: Tensor) -> Tensor:
        batch, channels, height, width = x.shape
        w = self.window_size
        windows = (x * self.scale).reshape(batch, channels, height // w, w, width // w, w).permute(0, 2, 4, 3, 5, 1)
        windows = windows.reshape(-1, w * w, channels // self.head_dim, self.head_dim).transpose(1, 2)
        return F.scaled_dot_product_attention(windows, windows, windows)


class SEMA(FullAttentionSDPA):
    def __init__(self, head_dim: int, window_size: int) -> None:
        super().__init__(head_dim)
        self.window_size = window_size

    def forward(self, x: Tensor) -> Tensor:
        tokens, height, width = split_heads(x * self.scale, self.head_dim)
        return sema_attention(tokens, tokens, tokens, height, width, self.window_size)


class Scan(nn.Module):
    """The selective scan over the raster tokens of the map: L = H * W, D = channels, N = d_state."""

    def __init__(self, channels: int, d_state: int) -> None:
        super().__init__()
        self.A = nn.Parameter(-torch.rand(channels, d_state))
        self.D = nn.Parameter(torch.ones(channels))
        self.d_state = d_state

    def forward(self, x: Tensor) -> Tensor:
        u = x.flatten(2)
        batch, _, length = u.shape
        B = torch.ones(batch, self.d_state, length, device=x.device)
        return selective_scan(u, u, self.A, B, B, self.D, delta_softplus=True)


# --- convolution and linear ----------------------------------------------------------------------------


def test_conv_counts_one_mac_per_weight_per_output_position() -> None:
    conv = nn.Conv2d(3, 8, kernel_size=3, stride=2, padding=1)
    assert macs(conv, (2, 3, 16, 16)) == 2 * 8 * 8 * 8 * 3 * 3 * 3


def test_grouped_conv_and_its_backward() -> None:
    depthwise = nn.Sequential(nn.Conv2d(3, 16, 1), nn.Conv2d(16, 16, kernel_size=3, padding=1, groups=16))
    forward = 16 * 16 * 16 * 3 + 16 * 16 * 16 * 9
    assert macs(depthwise, (1, 3, 16, 16)) == forward
    # Backward: the weight gradient of both convs plus the input gradient of the second, each the size of its
    # forward (PyTorch's own formula counts the depthwise weight gradient 16 times over).
    assert macs(depthwise, (1, 3, 16, 16), "train") == forward + 16 * 16 * 16 * 3 + 2 * 16 * 16 * 16 * 9


def test_transposed_conv() -> None:
    up = nn.ConvTranspose2d(8, 4, kernel_size=2, stride=2)
    assert macs(up, (1, 8, 8, 8)) == 8 * 8 * 8 * 4 * 2 * 2


def test_linear_and_its_training_step() -> None:
    linear = nn.Linear(32, 64)
    assert macs(linear, (4, 10, 32)) == 4 * 10 * 32 * 64
    # Backward: weight gradient only (the input does not require grad).
    assert macs(linear, (4, 10, 32), "train") == 2 * 4 * 10 * 32 * 64


# --- attention -----------------------------------------------------------------------------------------

BATCH, CHANNELS, HEAD_DIM, SIDE, WINDOW = 2, 64, 32, 16, 8
HEADS, TOKENS = CHANNELS // HEAD_DIM, SIDE * SIDE
FULL_ATTENTION_MACS = BATCH * HEADS * TOKENS * TOKENS * 2 * HEAD_DIM  # Q K^T and A V


@pytest.mark.parametrize("device", ["meta", "cpu"])
@pytest.mark.parametrize("attention", [FullAttentionSDPA, FullAttentionMatmul], ids=["sdpa", "matmul"])
def test_full_attention(attention: type, device: str) -> None:
    module = attention(HEAD_DIM)
    shape = (BATCH, CHANNELS, SIDE, SIDE)
    assert macs(module, shape, device=device) == FULL_ATTENTION_MACS
    # Backward: four products the size of the forward's two (no recomputation counted).
    assert macs(module, shape, "train", device=device) == 3 * FULL_ATTENTION_MACS


def test_window_attention() -> None:
    expected = BATCH * HEADS * TOKENS * WINDOW * WINDOW * 2 * HEAD_DIM
    assert macs(WindowAttention(HEAD_DIM, WINDOW), (BATCH, CHANNELS, SIDE, SIDE)) == expected


def test_sema_op_counts_window_attention_plus_mean() -> None:
    per_token_per_head = 2 * WINDOW * WINDOW * HEAD_DIM + HEAD_DIM  # Q K^T and A V in the window, + the mean
    forward = BATCH * HEADS * TOKENS * per_token_per_head
    shape = (BATCH, CHANNELS, SIDE, SIDE)
    assert macs(SEMA(HEAD_DIM, WINDOW), shape) == forward
    window_part = BATCH * HEADS * TOKENS * 2 * WINDOW * WINDOW * HEAD_DIM
    mean_part = BATCH * HEADS * TOKENS * HEAD_DIM
    assert macs(SEMA(HEAD_DIM, WINDOW), shape, "train") == forward + 2 * window_part + mean_part


def test_sema_op_counts_padded_windows() -> None:
    # 12 x 12 tokens in windows of 8: 2 x 2 windows of 64 (padded) tokens; the mean runs over the 144 real ones.
    expected = 1 * HEADS * (4 * 64 * 64 * 2 * HEAD_DIM + 144 * HEAD_DIM)
    assert macs(SEMA(HEAD_DIM, WINDOW), (1, CHANNELS, 12, 12)) == expected


def test_sema_op_counts_on_cpu_like_on_meta() -> None:
    shape = (BATCH, CHANNELS, SIDE, SIDE)
    assert macs(SEMA(HEAD_DIM, WINDOW), shape, device="cpu") == macs(SEMA(HEAD_DIM, WINDOW), shape)


def test_selective_scan_follows_the_9BLDN_convention() -> None:
    channels, d_state = 16, 8
    # 9 * B * L * D * N for the scan, + B * D * L for the D * u skip.
    expected = 9 * BATCH * TOKENS * channels * d_state + BATCH * channels * TOKENS
    shape = (BATCH, channels, SIDE, SIDE)
    assert macs(Scan(channels, d_state), shape) == expected
    assert macs(Scan(channels, d_state), shape, "train") == 3 * expected  # backward 2x forward by convention
    assert macs(Scan(channels, d_state), shape, device="cpu") == expected


@pytest.mark.parametrize(
    ("module", "channels"), [(SEMA(HEAD_DIM, WINDOW), CHANNELS), (Scan(16, 8), 16)], ids=["sema", "scan"]
)
def test_kernel_training_counts_on_cpu_like_on_meta(module: nn.Module, channels: int) -> None:
    shape = (BATCH, channels, SIDE, SIDE)
    assert macs(module, shape, "train", device="cpu") == macs(module, shape, "train")


@pytest.mark.parametrize(
    ("module", "growth"),
    [
        (FullAttentionSDPA(HEAD_DIM), 16),
        (FullAttentionMatmul(HEAD_DIM), 16),
        (WindowAttention(HEAD_DIM, WINDOW), 4),
        (SEMA(HEAD_DIM, WINDOW), 4),
        (Scan(CHANNELS, 16), 4),
    ],
    ids=["full-sdpa", "full-matmul", "window", "sema", "scan"],
)
def test_cost_growth_when_the_side_doubles(module: nn.Module, growth: int) -> None:
    small, large = (macs(module, (1, CHANNELS, side, side)) for side in (32, 64))
    assert large == growth * small


# --- whole models: meta equals CPU, and fvcore agrees ------------------------------------------------------


def fvcore_macs(model: nn.Module, inputs: Tensor) -> float:
    """fvcore's count (MACs) of matmuls, convs and SDPA (via a handle); not the norms, upsampling and pooling
    it adds by default, which our convention counts as 0 (see usemabench.profiler.flops)."""
    from fvcore.nn import FlopCountAnalysis, jit_handles

    def sdpa_handle(inputs, outputs) -> int:
        query, key, value = (jit_handles.get_shape(value) for value in inputs[:3])
        return int(torch.Size(query[:-1]).numel() * key[-2] * (query[-1] + value[-1]))

    analysis = FlopCountAnalysis(model.eval(), inputs).clear_op_handles()
    analysis.set_op_handle(
        "aten::addmm", jit_handles.addmm_flop_jit, "aten::bmm", jit_handles.bmm_flop_jit,
        "aten::mm", jit_handles.matmul_flop_jit, "aten::matmul", jit_handles.matmul_flop_jit,
        "aten::linear", jit_handles.linear_flop_jit, "aten::einsum", jit_handles.einsum_flop_jit,
        "aten::_convolution", jit_handles.conv_flop_jit, "aten::scaled_dot_product_attention", sdpa_handle,
    )
    analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    return analysis.total()


@pytest.mark.parametrize("name", ["nnunet_small", "transunet_small", "usema_tiny"])
def test_whole_model_matches_fvcore_and_meta_matches_cpu(name: str) -> None:
    model = create_model(name, in_channels=1, num_classes=2)
    shape = (1, 1, 64, 64)
    ours = macs(model, shape)
    assert macs(model, shape, device="cpu") == ours
    reference = fvcore_macs(model, torch.randn(shape))
    assert abs(ours - reference) <= 0.02 * reference, f"{name}: ours {ours}, fvcore {reference}"


def test_count_leaves_the_model_untouched() -> None:
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4)).eval()
    before = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    count_flops(model, (2, 1, 8, 8), "train", device="cpu")
    assert not model.training
    assert all(torch.equal(before[name], tensor) for name, tensor in model.state_dict().items())


class DataDependent(nn.Module):
    """Python control flow on a tensor value: cannot run on `meta`."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x) if x.sum().item() > -1e9 else x


def test_falls_back_to_the_cpu_and_says_why() -> None:
    counted = count_flops(DataDependent(), (1, 1, 8, 8), "infer")
    assert counted["device"] == "cpu"
    assert "item" in counted["fallback_reason"]
    assert counted["macs"] == 8 * 8 * 2


def test_unknown_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="mode"):
        count_flops(nn.Linear(2, 2), (1, 2), "backward")


# --- the tripwire -------------------------------------------------------------------------------------------


@torch.library.custom_op("usemabench_test::mystery_mix", mutates_args=())
def mystery_mix(x: Tensor) -> Tensor:
    """An op no formula knows: stands for a new attention kernel."""
    return x @ x.transpose(-2, -1) @ x


@mystery_mix.register_fake
def _(x: Tensor) -> Tensor:
    return torch.empty_like(x)


class Mystery(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return mystery_mix(x.flatten(2))


def test_tripwire_stops_an_unknown_op_on_large_tensors() -> None:
    with pytest.raises(UncountedOpError, match="usemabench_test.mystery_mix"):
        count_flops(Mystery(), (1, 64, 32, 32))


def test_tripwire_ignores_small_tensors() -> None:
    assert count_flops(Mystery(), (1, 2, 4, 4))["macs"] == 0


def test_tripwire_is_not_swallowed_by_the_cpu_fallback() -> None:
    with pytest.raises(UncountedOpError):
        count_flops(Mystery(), (1, 64, 32, 32), device="cpu")
