"""SEMA kernel: every backend against the dense reference, and the reference against the definition."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from usemabench.zoo.layers import sema
from usemabench.zoo.layers.counting import counting_mode

# (height, width, window): a multiple of the window, non-multiples, a map inside one window, a thin map.
GEOMETRIES = [(16, 16, 8), (13, 21, 8), (5, 7, 8), (20, 9, 4), (9, 9, 7), (3, 17, 4)]


def qkv(batch: int, heads: int, tokens: int, head_dim: int = 4, dtype=torch.float64, grad: bool = True):
    return [torch.randn(batch, heads, tokens, head_dim, dtype=dtype, requires_grad=grad) for _ in range(3)]


def by_window_loop(q, k, v, height, width, window_size):
    """The definition, spelled out: for each w x w window of the image, softmax attention among its tokens."""
    image = lambda t: t.reshape(*t.shape[:2], height, width, t.shape[-1])  # noqa: E731
    qi, ki, vi = image(q), image(k), image(v)
    out = torch.zeros_like(vi)
    for top in range(0, height, window_size):
        for left in range(0, width, window_size):
            window = (slice(None), slice(None), slice(top, top + window_size), slice(left, left + window_size))
            qw, kw, vw = (t[window].flatten(2, 3) for t in (qi, ki, vi))
            weights = (qw @ kw.transpose(-2, -1) / math.sqrt(q.shape[-1])).softmax(-1)
            out[window] = (weights @ vw).unflatten(2, qi[window].shape[2:4])
    return out.flatten(2, 3) + v.mean(dim=-2, keepdim=True)


@pytest.mark.parametrize("height,width,window_size", GEOMETRIES)
def test_reference_matches_the_window_by_window_definition(height, width, window_size) -> None:
    q, k, v = qkv(2, 2, height * width, grad=False)
    expected = by_window_loop(q, k, v, height, width, window_size)
    torch.testing.assert_close(sema.reference_sema_attention(q, k, v, height, width, window_size), expected)


@pytest.mark.parametrize("heads", [1, 3])
@pytest.mark.parametrize("height,width,window_size", GEOMETRIES)
def test_torch_backend_equals_reference_forward_and_gradients(height, width, window_size, heads) -> None:
    q, k, v = qkv(2, heads, height * width)
    grad_output = torch.randn(2, heads, height * width, 4, dtype=torch.float64)
    outputs, gradients = [], []
    for backend in ("reference", "torch"):
        out = sema.sema_attention(q, k, v, height, width, window_size, backend=backend)
        outputs.append(out)
        gradients.append(torch.autograd.grad(out, (q, k, v), grad_output))
    torch.testing.assert_close(outputs[1], outputs[0])
    for torch_grad, reference_grad in zip(gradients[1], gradients[0], strict=True):
        torch.testing.assert_close(torch_grad, reference_grad)


@pytest.mark.parametrize("backend", ["reference", "torch"])
@pytest.mark.parametrize("height,width,window_size", [(13, 21, 8), (16, 16, 8), (9, 9, 7)])
def test_window_major_tokens_give_the_raster_result(height, width, window_size, backend) -> None:
    q, k, v = qkv(2, 2, height * width, grad=False)
    expected = sema.reference_sema_attention(q, k, v, height, width, window_size)
    windowed = [sema.to_window_major(t, height, width, window_size) for t in (q, k, v)]
    # Garbage in the padding must not leak into real tokens (padded keys masked, left out of the mean).
    valid = sema._valid_tokens(sema.WindowGrid(height, width, window_size), q.device)
    windowed = [torch.where(valid[:, None], t, torch.full_like(t, 1e3)) for t in windowed]
    out = sema.sema_attention(*windowed, height, width, window_size, token_order="window_major", backend=backend)
    torch.testing.assert_close(sema.from_window_major(out, height, width, window_size), expected)


def test_window_major_round_trip_and_zero_padding() -> None:
    x = torch.randn(2, 13 * 21, 5)
    windowed = sema.to_window_major(x, 13, 21, 8)
    grid = sema.WindowGrid(13, 21, 8)
    assert windowed.shape == (2, grid.padded_tokens, 5) == (2, 6 * 64, 5)
    assert torch.equal(sema.from_window_major(windowed, 13, 21, 8), x)
    valid = sema._valid_tokens(grid, x.device)
    assert int(valid.sum()) == 13 * 21 and torch.all(windowed[:, ~valid] == 0)
    # the first window holds the top-left 8 x 8 tokens, row by row
    first_window = x.reshape(2, 13, 21, 5)[:, :8, :8].reshape(2, 64, 5)
    assert torch.equal(windowed[:, :64], first_window)


@pytest.mark.parametrize("height,width", [(5, 7), (8, 8), (1, 6)])
def test_map_inside_one_window_is_full_attention_plus_mean(height, width) -> None:
    q, k, v = qkv(2, 2, height * width, grad=False)
    full = F.scaled_dot_product_attention(q, k, v) + v.mean(dim=-2, keepdim=True)
    for backend in ("reference", "torch"):
        torch.testing.assert_close(sema.sema_attention(q, k, v, height, width, 8, backend=backend), full)


@pytest.mark.parametrize("height,width,window_size", [(13, 21, 8), (16, 16, 8)])
def test_mean_term_is_the_mean_over_real_tokens(height, width, window_size) -> None:
    q, k, v = qkv(2, 2, height * width, grad=False)
    raster_mean = v.mean(dim=-2, keepdim=True)
    for order in ("raster", "window_major"):
        args = [t if order == "raster" else sema.to_window_major(t, height, width, window_size) for t in (q, k, v)]
        with_mean = sema.sema_attention(*args, height, width, window_size, token_order=order, backend="torch")
        without = sema.sema_attention(
            *args, height, width, window_size, token_order=order, backend="torch", with_mean=False
        )
        difference = with_mean - without
        if order == "window_major":
            difference = sema.from_window_major(difference, height, width, window_size)
        torch.testing.assert_close(difference, raster_mean.expand_as(v))


@pytest.mark.parametrize("height,width,window_size", [(16, 16, 8), (13, 21, 8), (9, 9, 7), (40, 40, 16), (17, 70, 5)])
def test_flex_block_mask_equals_create_block_mask(height, width, window_size) -> None:
    from torch.nn.attention.flex_attention import create_block_mask

    block_mask = sema.window_block_mask(sema.WindowGrid(height, width, window_size), torch.device("cpu"))
    length = block_mask.seq_lengths[0]
    assert length % sema.FLEX_BLOCK_SIZE == 0
    expected = create_block_mask(block_mask.mask_mod, None, None, length, length, device="cpu")
    assert torch.equal(block_mask.to_dense(), expected.to_dense())
    # full blocks (mask_mod skipped) must be exactly the all-true ones
    assert torch.equal(block_mask.full_kv_num_blocks, expected.full_kv_num_blocks)
    for row, count in enumerate(expected.full_kv_num_blocks[0, 0].tolist()):
        ours = sorted(block_mask.full_kv_indices[0, 0, row, :count].tolist())
        assert ours == sorted(expected.full_kv_indices[0, 0, row, :count].tolist())


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("height,width,window_size", [(16, 16, 8), (13, 21, 8), (9, 9, 7)])
def test_flex_mask_mod_forward_equals_reference_on_cpu(height, width, window_size) -> None:
    """Uncompiled flex (dense, forward only on CPU) checks the mask_mod and the token plumbing."""
    from torch.nn.attention.flex_attention import flex_attention

    q, k, v = qkv(2, 2, height * width, grad=False)
    grid = sema.WindowGrid(height, width, window_size)
    out = sema.flex_sema_attention(q, k, v, grid, attention=flex_attention)
    torch.testing.assert_close(out, sema.reference_sema_attention(q, k, v, height, width, window_size))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available() or not sema.flex_available(), reason="needs CUDA and torch >= 2.6")
@pytest.mark.parametrize("height,width,window_size", [(32, 32, 8), (13, 21, 8), (9, 9, 7), (40, 24, 16)])
def test_flex_backend_equals_reference_on_gpu(height, width, window_size) -> None:
    q, k, v = (t.detach().float().cuda().requires_grad_() for t in qkv(2, 2, height * width, head_dim=32))
    grad_output = torch.randn_like(q)
    results = {}
    for backend in ("reference", "flex"):
        out = sema.sema_attention(q, k, v, height, width, window_size, backend=backend)
        results[backend] = (out, *torch.autograd.grad(out, (q, k, v), grad_output))
    for flex_tensor, reference_tensor in zip(results["flex"], results["reference"], strict=True):
        torch.testing.assert_close(flex_tensor, reference_tensor, atol=2e-3, rtol=2e-3)


@pytest.mark.parametrize("height,width,window_size", [(13, 21, 8), (5, 7, 8)])
def test_counting_op_matches_reference_and_runs_on_meta(height, width, window_size) -> None:
    q, k, v = qkv(2, 2, height * width)
    expected = sema.reference_sema_attention(q, k, v, height, width, window_size)
    expected_grads = torch.autograd.grad(expected.sum(), (q, k, v))
    with counting_mode():
        out = sema.sema_attention(q, k, v, height, width, window_size)
        grads = torch.autograd.grad(out.sum(), (q, k, v))
    torch.testing.assert_close(out, expected)
    for grad, expected_grad in zip(grads, expected_grads, strict=True):
        torch.testing.assert_close(grad, expected_grad)

    # window-major tokens: the op's hand-written backward against autograd through the torch backend
    windowed = [sema.to_window_major(t.detach(), height, width, window_size).requires_grad_() for t in (q, k, v)]
    grad_output = torch.randn_like(windowed[2])
    expected = sema.sema_attention(*windowed, height, width, window_size, token_order="window_major", backend="torch")
    expected_grads = torch.autograd.grad(expected, windowed, grad_output)
    with counting_mode():
        out = sema.sema_attention(*windowed, height, width, window_size, token_order="window_major")
        grads = torch.autograd.grad(out, windowed, grad_output)
    torch.testing.assert_close(out, expected)
    for grad, expected_grad in zip(grads, expected_grads, strict=True):
        torch.testing.assert_close(grad, expected_grad)

    meta = [torch.empty(1, 4, height * width, 32, device="meta", requires_grad=True) for _ in range(3)]
    with counting_mode():
        out = sema.sema_attention(*meta, height, width, window_size)
        out.sum().backward()
    assert out.shape == (1, 4, height * width, 32) and out.device.type == "meta"
    assert meta[0].grad.shape == meta[0].shape


def test_counting_mode_calls_the_custom_ops() -> None:
    q, k, v = qkv(1, 2, 64, grad=True)
    calls = []

    class RecordOps(torch.utils._python_dispatch.TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            calls.append(str(func.overloadpacket))
            return func(*args, **(kwargs or {}))

    with counting_mode(), RecordOps():
        sema.sema_attention(q, k, v, 8, 8, 8).sum().backward()
    assert "usemabench.sema_attention" in calls and "usemabench.sema_attention_backward" in calls


@pytest.mark.parametrize("height,width,window_size", [(16, 16, 8), (13, 21, 8), (5, 7, 8)])
def test_mac_formula_matches_counted_matmuls(height, width, window_size) -> None:
    q, k, v = qkv(2, 3, height * width, head_dim=8, dtype=torch.float32, grad=False)
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        sema.sema_attention(q, k, v, height, width, window_size, backend="torch", with_mean=False)
    expected = sema.sema_attention_macs(2, 3, height, width, 8, window_size, with_mean=False)
    assert counter.get_total_flops() == 2 * expected
    grid = sema.WindowGrid(height, width, window_size)
    assert expected == 2 * 3 * grid.num_windows * grid.tokens_per_window**2 * 2 * 8
    mean_part = sema.sema_attention_macs(2, 3, height, width, 8, window_size) - expected
    assert mean_part == 2 * 3 * height * width * 8


def test_bad_inputs_name_the_problem() -> None:
    q, k, v = qkv(1, 1, 12 * 12, grad=False)
    with pytest.raises(ValueError, match="unknown SEMA backend 'cuda'"):
        sema.sema_attention(q, k, v, 12, 12, 8, backend="cuda")
    with pytest.raises(ValueError, match="12x13 map"):
        sema.sema_attention(q, k, v, 12, 13, 8)
    with pytest.raises(ValueError, match="token_order"):
        sema.sema_attention(q, k, v, 12, 12, 8, token_order="column")
    with pytest.raises(ValueError, match="window_size"):
        sema.sema_attention(q, k, v, 12, 12, 0)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="'flex' needs CUDA"):
            sema.sema_attention(q, k, v, 12, 12, 8, backend="flex")
        assert sema.resolve_backend("auto", q.device) == "torch"


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_flex_casts_mixed_dtypes_like_autocast_casts_sdpa() -> None:
    """Under autocast a model hands flex fp32 v with bf16 q, k; flex itself would refuse mixed dtypes."""
    from torch.nn.attention.flex_attention import flex_attention

    q, k, v = qkv(1, 2, 13 * 21, head_dim=8, dtype=torch.float32, grad=False)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = sema.flex_sema_attention(
            q.bfloat16(), k.bfloat16(), v, sema.WindowGrid(13, 21, 8), attention=flex_attention
        )
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), sema.reference_sema_attention(q, k, v, 13, 21, 8), atol=3e-2, rtol=3e-2)


def _pack(t: torch.Tensor) -> torch.Tensor:
    """(B, heads, N, d) -> (B, N, heads * d)."""
    return t.transpose(1, 2).flatten(2)


@pytest.mark.parametrize("heads", [1, 3])
@pytest.mark.parametrize("height,width,window_size", GEOMETRIES)
def test_packed_fast_path_equals_reference_forward_and_gradients(height, width, window_size, heads) -> None:
    """The models' fast path (heads packed in channels, windows batched for SDPA) against the dense reference,
    on window-major tokens, in float64: outputs and the gradients of q, k, v to 1e-7 (float64 defaults)."""
    grid = sema.WindowGrid(height, width, window_size)
    q, k, v = (_pack(t).detach().requires_grad_() for t in qkv(2, heads, grid.padded_tokens))
    grad_output = torch.randn(2, grid.padded_tokens, heads * 4, dtype=torch.float64)
    outputs, gradients = [], []
    for backend in ("reference", "torch"):
        out = sema.sema_attention_packed(q, k, v, height, width, window_size, heads, backend=backend)
        valid = sema._valid_tokens(grid, out.device)  # padding positions carry no result in either backend
        outputs.append(out[:, valid])
        gradients.append(torch.autograd.grad(out[:, valid], (q, k, v), grad_output[:, valid]))
    torch.testing.assert_close(outputs[1], outputs[0])
    for fast, reference in zip(gradients[1], gradients[0], strict=True):
        torch.testing.assert_close(fast, reference)


def test_packed_fast_path_equals_the_split_head_torch_backend_in_float32() -> None:
    """Same kernel math as before the fast path (heads batched instead of windows): float32 to 1e-5."""
    height, width, window_size, heads = 24, 16, 8, 2
    q, k, v = (torch.randn(2, heads, height * width, 32) for _ in range(3))
    split = sema.sema_attention(q, k, v, height, width, window_size, token_order="window_major", backend="torch")
    packed = sema.sema_attention_packed(_pack(q), _pack(k), _pack(v), height, width, window_size, heads)
    torch.testing.assert_close(packed, _pack(split), rtol=1e-5, atol=1e-5)


def test_packed_fast_path_runs_a_fused_sdpa_kernel_and_counts_like_the_op() -> None:
    from usemabench.profiler.profile import observed_sdpa_kernels

    q, k, v = (torch.randn(1, 256, 64) for _ in range(3))
    kernels = observed_sdpa_kernels(lambda: sema.sema_attention_packed(q, k, v, 16, 16, 8, 2))
    assert kernels == ["flash (cpu)"]
    with FlopCounterMode(display=False) as counter, counting_mode():
        sema.sema_attention_packed(q, k, v, 16, 16, 8, 2)
    assert counter.get_total_flops() == 2 * sema.sema_attention_macs(1, 2, 16, 16, 32, 8)


def test_packed_inputs_of_the_wrong_shape_are_refused() -> None:
    q = torch.randn(1, 64, 8)
    with pytest.raises(ValueError, match="divide into 3 heads"):
        sema.sema_attention_packed(q, q, q, 8, 8, 8, 3)
    with pytest.raises(ValueError, match=r"\(B, 64, heads \* d\)"):
        sema.sema_attention_packed(q[:, :60], q[:, :60], q[:, :60], 8, 8, 8, 2)
