"""SEMA attention: softmax attention inside non-overlapping windows plus the global mean of V.

Tran et al., "SEMA: a Scalable and Efficient Mamba like Attention via Token Localization and Averaging",
arXiv 2506.08297. No reference code is public; the operator follows USEMA_SPEC.md.

Math. Tokens of an H x W map, in raster order, per head (d = head dimension):

    SEMA(Q, K, V)_i = sum_{j in win(i)} softmax_j(q_i . k_j / sqrt(d)) v_j  +  (1/N) sum_{j=1..N} v_j

win(i) is the w x w window holding token i: windows tile the map from its top-left corner, so when H or W is
not a multiple of w the last windows are cut short; equivalently the map is padded up to a multiple of w,
padded keys are masked and padding is left out of the mean [reconstructed]. A map no larger than one window
is one window: plain full attention (+ mean) [reconstructed]. Scale 1/sqrt(d) [reconstructed]. The two
terms are added: no gate, no learned weight [stated]. `with_mean=False` gives window attention alone.

Shapes. q, k: (B, heads, N, d); v: (B, heads, N, d_v); output like v. `token_order="raster"` takes the
tokens row by row (N = H * W). `token_order="window_major"` takes them as `to_window_major` lays them out:
window after window, each window row by row, padded to whole windows (N = WindowGrid.padded_tokens); a
model that permutes its tokens once and computes q, k, v in that order saves the permutation copies of the
attention inputs and outputs, which is how the flex backend matches flash attention's memory.

Cost (multiply-accumulates; counted on the padded windows, which is what every backend computes):

    MACs = B * heads * (2 * num_windows * T^2 * d  +  N * d_v if with_mean)

with T = tokens per window (w^2, or H*W for a map inside one window): T*d for q.k^T and T*d_v for A.v per
token, i.e. 2 * w^2 * d per token per head. See `sema_attention_macs`; the backward pass costs twice the
window part (dQ, dK, dV and dP: four products of the same size) plus N * d_v for the mean.

Backends (`sema_attention(..., backend=...)`):
    reference  dense N x N attention with a same-window mask: obviously correct, O(N^2) memory.
    torch      window partition + F.scaled_dot_product_attention: O(N) memory, any device.
    flex       FlexAttention (CUDA, torch >= 2.6) on window-major tokens with a block-diagonal BlockMask
               built directly from the window geometry (`create_block_mask` would materialise N x N).
    auto       torch. Measured on an H100 (bf16, fwd+bwd, 262,144 tokens; leaderboard/records/bench): torch
               2.3 ms / 1.30x flash attention's memory, flex 2.3 ms / 1.15x (0.85x with window-major input).
               Flex saves memory but not time, and inside a model it recompiles per shape and grad mode
               until torch.compile's recompile limit (8) sends it to a dense eager fallback (seen: a 10x slower
               training step). So flex is opt-in, for memory-bound runs that raise that limit.
Packed heads (`sema_attention_packed`): models hold q, k, v as (B, tokens, heads * d) window-major tokens.
The torch backend then views them as (B * windows, heads, T, d), a 4-D batch of windows with a unit-stride
head dimension and no copy, the layout the fused SDPA kernels (flash / memory-efficient on CUDA, the flash
CPU kernel) take; the output comes back in the same packed layout. Other backends and counting mode split
the heads and call `sema_attention`. Same computation as `torch_sema_attention`, windows batched instead
of heads.
Under `counting.counting_mode()` the call goes through the custom op `usemabench::sema_attention`
(fake implementation for the meta device; its backward is `usemabench::sema_attention_backward`) so that
a FLOP counter sees one op with a registered formula whatever backend would have run.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from usemabench.zoo.layers.counting import is_counting

BACKENDS = ("auto", "reference", "torch", "flex")
TOKEN_ORDERS = ("raster", "window_major")
FLEX_BLOCK_SIZE = 128  # FlexAttention's default sparse block: valid for every kernel tiling on every GPU


@dataclass(frozen=True)
class WindowGrid:
    """How an H x W map is cut into windows of at most `window_size` x `window_size` tokens.

    A side shorter than the window gives windows of that side's length (the same partition as padding it
    to a whole window and masking the padding, without computing on the padding).
    """

    height: int
    width: int
    window_size: int

    def __post_init__(self) -> None:
        if min(self.height, self.width) < 1 or self.window_size < 1:
            raise ValueError(
                f"need height, width and window_size >= 1; got {self.height}, {self.width}, {self.window_size}"
            )

    @property
    def window_height(self) -> int:
        return min(self.height, self.window_size)

    @property
    def window_width(self) -> int:
        return min(self.width, self.window_size)

    @property
    def windows_down(self) -> int:
        return -(-self.height // self.window_height)

    @property
    def windows_across(self) -> int:
        return -(-self.width // self.window_width)

    @property
    def num_windows(self) -> int:
        return self.windows_down * self.windows_across

    @property
    def tokens_per_window(self) -> int:
        return self.window_height * self.window_width

    @property
    def num_tokens(self) -> int:
        return self.height * self.width

    @property
    def padded_tokens(self) -> int:
        return self.num_windows * self.tokens_per_window

    @property
    def is_padded(self) -> bool:
        return self.padded_tokens != self.num_tokens


def to_window_major(x: Tensor, height: int, width: int, window_size: int) -> Tensor:
    """(..., H*W, C) raster tokens -> (..., padded_tokens, C) window-major tokens, padding filled with zeros."""
    grid = WindowGrid(height, width, window_size)
    if grid.num_windows == 1 and not grid.is_padded:
        return x
    *lead, _, channels = x.shape
    image = x.reshape(*lead, height, width, channels)
    pad_h = grid.windows_down * grid.window_height - height
    pad_w = grid.windows_across * grid.window_width - width
    if pad_h or pad_w:
        image = F.pad(image, (0, 0, 0, pad_w, 0, pad_h))
    tiles = image.reshape(
        *lead, grid.windows_down, grid.window_height, grid.windows_across, grid.window_width, channels
    )
    return tiles.transpose(-4, -3).reshape(*lead, grid.padded_tokens, channels)


def from_window_major(x: Tensor, height: int, width: int, window_size: int) -> Tensor:
    """Inverse of `to_window_major`: (..., padded_tokens, C) -> (..., H*W, C), padding dropped."""
    grid = WindowGrid(height, width, window_size)
    if grid.num_windows == 1 and not grid.is_padded:
        return x
    *lead, _, channels = x.shape
    tiles = x.reshape(*lead, grid.windows_down, grid.windows_across, grid.window_height, grid.window_width, channels)
    image = tiles.transpose(-4, -3).reshape(
        *lead, grid.windows_down * grid.window_height, grid.windows_across * grid.window_width, channels
    )
    return image[..., :height, :width, :].reshape(*lead, height * width, channels)


@functools.lru_cache(maxsize=64)
def _valid_tokens(grid: WindowGrid, device: torch.device) -> Tensor:
    """(padded_tokens,) bool: True for real tokens, False for padding, in window-major order."""
    ones = torch.ones(grid.num_tokens, 1, dtype=torch.bool, device=device)
    return to_window_major(ones, grid.height, grid.width, grid.window_size)[:, 0]


def _window_major_inputs(grid: WindowGrid, token_order: str, *tensors: Tensor) -> list[Tensor]:
    if token_order == "window_major":
        return list(tensors)
    return [to_window_major(t, grid.height, grid.width, grid.window_size) for t in tensors]


def _mean_over_valid_tokens(v: Tensor, grid: WindowGrid, token_order: str) -> Tensor:
    """(..., 1, d_v): the mean of v over the real tokens (padding excluded)."""
    if token_order == "raster" or not grid.is_padded:
        return v.mean(dim=-2, keepdim=True)
    weights = _valid_tokens(grid, v.device).to(v.dtype) / grid.num_tokens
    return torch.matmul(weights, v).unsqueeze(-2)


def sema_attention_macs(
    batch: int,
    heads: int,
    height: int,
    width: int,
    head_dim: int,
    window_size: int,
    value_dim: int | None = None,
    with_mean: bool = True,
) -> int:
    """Forward multiply-accumulates of one call (formula in the module docstring)."""
    grid = WindowGrid(height, width, window_size)
    value_dim = head_dim if value_dim is None else value_dim
    window_part = grid.num_windows * grid.tokens_per_window**2 * (head_dim + value_dim)
    mean_part = grid.num_tokens * value_dim if with_mean else 0
    return batch * heads * (window_part + mean_part)


# --- reference ------------------------------------------------------------------------------------------


def reference_sema_attention(
    q: Tensor, k: Tensor, v: Tensor, height: int, width: int, window_size: int, with_mean: bool = True
) -> Tensor:
    """Dense N x N softmax attention masked to same-window pairs, plus the mean of v: raster tokens only."""
    rows = torch.arange(height, device=q.device).repeat_interleave(width)
    cols = torch.arange(width, device=q.device).repeat(height)
    window_id = (rows // window_size) * (-(-width // window_size)) + cols // window_size
    same_window = window_id[:, None] == window_id[None, :]
    scores = (q @ k.transpose(-2, -1)) / math.sqrt(q.shape[-1])
    weights = scores.masked_fill(~same_window, float("-inf")).softmax(dim=-1)
    out = weights @ v
    return out + v.mean(dim=-2, keepdim=True) if with_mean else out


# --- torch: window partition + scaled_dot_product_attention ---------------------------------------------


def torch_sema_attention(
    q: Tensor, k: Tensor, v: Tensor, grid: WindowGrid, with_mean: bool = True, token_order: str = "raster"
) -> Tensor:
    """Window partition + F.scaled_dot_product_attention; no N x N tensor."""
    raster = token_order == "raster"
    qw, kw, vw = _window_major_inputs(grid, token_order, q, k, v)
    lead = qw.shape[:-2]
    windows, tokens = grid.num_windows, grid.tokens_per_window
    attn_mask = None
    if grid.is_padded:  # padded keys never take part; (windows, 1, T) broadcasts over queries
        attn_mask = _valid_tokens(grid, q.device).view(windows, 1, tokens)
    out = F.scaled_dot_product_attention(
        qw.reshape(-1, windows, tokens, qw.shape[-1]),
        kw.reshape(-1, windows, tokens, kw.shape[-1]),
        vw.reshape(-1, windows, tokens, vw.shape[-1]),
        attn_mask=attn_mask,
    ).reshape(*lead, grid.padded_tokens, vw.shape[-1])
    if raster:
        out = from_window_major(out, grid.height, grid.width, grid.window_size)
    return out + _mean_over_valid_tokens(v, grid, token_order) if with_mean else out


def torch_sema_attention_packed(
    q: Tensor, k: Tensor, v: Tensor, grid: WindowGrid, num_heads: int, with_mean: bool = True
) -> Tensor:
    """SEMA on window-major packed-head tokens (B, padded_tokens, heads * d): one SDPA call over a
    (B * windows, heads, T, d) view of q, k, v (no copy); output (B, padded_tokens, heads * d_v)."""
    batch, windows, tokens = q.shape[0], grid.num_windows, grid.tokens_per_window

    def per_window(t: Tensor) -> Tensor:
        return t.reshape(batch * windows, tokens, num_heads, t.shape[-1] // num_heads).transpose(1, 2)

    attn_mask = None
    if grid.is_padded:  # padded keys never take part; one (1, 1, T) row per window, repeated over the batch
        valid = _valid_tokens(grid, q.device).view(1, windows, 1, 1, tokens)
        attn_mask = valid.expand(batch, -1, -1, -1, -1).reshape(batch * windows, 1, 1, tokens)
    out = F.scaled_dot_product_attention(per_window(q), per_window(k), per_window(v), attn_mask=attn_mask)
    out = out.transpose(1, 2).reshape(batch, grid.padded_tokens, v.shape[-1])
    return out + _mean_over_valid_tokens(v, grid, "window_major") if with_mean else out


# --- flex: FlexAttention with a block-diagonal BlockMask -------------------------------------------------


def flex_available() -> bool:
    """FlexAttention with `BlockMask.from_kv_blocks` (torch >= 2.6)."""
    try:
        from torch.nn.attention.flex_attention import BlockMask, flex_attention  # noqa: F401
    except ImportError:
        return False
    major, minor = (int(part) for part in torch.__version__.split(".")[:2])
    return (major, minor) >= (2, 6)


@functools.lru_cache(maxsize=64)
def window_block_mask(grid: WindowGrid, device: torch.device):
    """BlockMask for window-major tokens padded to a multiple of FLEX_BLOCK_SIZE.

    Token t belongs to window t // T. A query block of 128 tokens needs the key blocks, among the contiguous
    run covering its windows, that hold a real (not padding) token of one of them. A pair is `full` (no
    mask_mod call) when both blocks lie inside one window and the key block holds no padding, else
    `partial`. The mask_mod states the whole rule (same window and key not padding), so it alone is also
    correct. Tokens past the last window form filler windows of their own.
    """
    from torch.nn.attention.flex_attention import BlockMask

    block, tokens = FLEX_BLOCK_SIZE, grid.tokens_per_window
    length = -(-grid.padded_tokens // block) * block
    num_blocks = length // block
    key_valid = torch.ones(length, dtype=torch.bool, device=device)
    key_valid[: grid.padded_tokens] = _valid_tokens(grid, device)

    starts = torch.arange(num_blocks, device=device) * block
    first_window, last_window = starts // tokens, (starts + block - 1) // tokens
    lowest = first_window * tokens // block
    highest = torch.clamp(((last_window + 1) * tokens - 1) // block, max=num_blocks - 1)
    span = int((highest - lowest).max()) + 1
    candidates = lowest[:, None] + torch.arange(span, device=device)  # (q blocks, span) key block ids
    in_run = candidates <= highest[:, None]
    candidates = torch.where(in_run, candidates, torch.zeros_like(candidates))

    # Drop key blocks whose tokens of this query block's windows are all padding.
    window_of_key = (torch.arange(length, device=device) // tokens).view(num_blocks, block)
    valid_keys = key_valid.view(num_blocks, block)
    first_valid_window = torch.where(valid_keys, window_of_key, length).amin(dim=1)
    last_valid_window = torch.where(valid_keys, window_of_key, -1).amax(dim=1)
    in_run &= (first_valid_window[candidates] <= last_window[:, None]) & (
        last_valid_window[candidates] >= first_window[:, None]
    )

    block_all_valid = valid_keys.all(dim=1)
    single_window = first_window == last_window
    full = (
        in_run
        & single_window[:, None]
        & single_window[candidates]
        & (first_window[candidates] == first_window[:, None])
        & block_all_valid[candidates]
    )
    partial = in_run & ~full

    def pack(selected: Tensor) -> tuple[Tensor, Tensor]:
        # Selected key blocks first (stable order), then unused slots. The indices are padded to one slot per
        # key block, the layout create_block_mask makes: compact ones are mis-sized by torch < 2.13.
        order = torch.sort((~selected).to(torch.int8), dim=1, stable=True).indices
        indices = F.pad(torch.gather(candidates, 1, order), (0, num_blocks - span)).to(torch.int32)
        return selected.sum(dim=1).to(torch.int32)[None, None], indices[None, None]

    kv_num_blocks, kv_indices = pack(partial)
    full_kv_num_blocks, full_kv_indices = pack(full)

    if grid.is_padded:

        def mask_mod(b, h, q_idx, kv_idx):
            return (q_idx // tokens == kv_idx // tokens) & key_valid[kv_idx]

    else:

        def mask_mod(b, h, q_idx, kv_idx):
            return q_idx // tokens == kv_idx // tokens

    return BlockMask.from_kv_blocks(
        kv_num_blocks, kv_indices, full_kv_num_blocks, full_kv_indices, BLOCK_SIZE=block, mask_mod=mask_mod
    )


@functools.lru_cache(maxsize=1)
def _compiled_flex_attention() -> Callable:
    from torch.nn.attention.flex_attention import flex_attention

    # Uncompiled, flex_attention runs a dense N x N fallback; compiled, it is a block-sparse Triton kernel.
    return torch.compile(flex_attention)


def flex_sema_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    grid: WindowGrid,
    with_mean: bool = True,
    token_order: str = "raster",
    attention: Callable | None = None,
) -> Tensor:
    """FlexAttention on window-major tokens with `window_block_mask`; `attention` defaults to compiled flex."""
    attention = attention or _compiled_flex_attention()
    if torch.is_autocast_enabled(q.device.type):  # flex is not autocast-aware; cast as autocast casts SDPA
        dtype = torch.get_autocast_dtype(q.device.type)
        q, k, v = q.to(dtype), k.to(dtype), v.to(dtype)
    raster = token_order == "raster"
    qw, kw, vw = _window_major_inputs(grid, token_order, q, k, v)
    tail = -grid.padded_tokens % FLEX_BLOCK_SIZE
    if tail:
        qw, kw, vw = (F.pad(t, (0, 0, 0, tail)) for t in (qw, kw, vw))
    out = attention(qw, kw, vw, block_mask=window_block_mask(grid, q.device))
    if tail:
        out = out[..., : grid.padded_tokens, :]
    if raster:
        out = from_window_major(out, grid.height, grid.width, grid.window_size)
    return out + _mean_over_valid_tokens(v, grid, token_order) if with_mean else out


# --- counting: custom ops with fake implementations ------------------------------------------------------


@torch.library.custom_op("usemabench::sema_attention", mutates_args=())
def sema_attention_op(
    q: Tensor, k: Tensor, v: Tensor, height: int, width: int, window_size: int, with_mean: bool, window_major: bool
) -> Tensor:
    """SEMA as one opaque op (counting mode only); runs the torch backend."""
    order = "window_major" if window_major else "raster"
    return torch_sema_attention(q, k, v, WindowGrid(height, width, window_size), with_mean, order)


@sema_attention_op.register_fake
def _sema_attention_fake(q, k, v, height, width, window_size, with_mean, window_major):
    return v.new_empty((*q.shape[:-1], v.shape[-1]))


@torch.library.custom_op("usemabench::sema_attention_backward", mutates_args=())
def sema_attention_backward_op(
    grad_output: Tensor,
    q: Tensor,
    k: Tensor,
    v: Tensor,
    height: int,
    width: int,
    window_size: int,
    with_mean: bool,
    window_major: bool,
) -> tuple[Tensor, Tensor, Tensor]:
    """Gradients (dq, dk, dv) of `usemabench::sema_attention` (counting mode only), written out per window:

    P = softmax(S), S = q k^T / sqrt(d) (padded keys masked), O = P v:
    dv = P^T dO;  dS = P * (dO v^T - rowsum(dO * O));  dq = dS k / sqrt(d);  dk = dS^T q / sqrt(d);
    the mean adds (1/N) sum_i dO_i to dv of every real token.
    """
    grid = WindowGrid(height, width, window_size)
    raster = not window_major
    windows, tokens = grid.num_windows, grid.tokens_per_window

    def windowed(t: Tensor) -> Tensor:  # (..., L, c) -> (..., windows, T, c)
        t = to_window_major(t, height, width, window_size) if raster else t
        return t.reshape(*t.shape[:-2], windows, tokens, t.shape[-1])

    qw, kw, vw, grad_w = windowed(q), windowed(k), windowed(v), windowed(grad_output)
    scale = 1.0 / math.sqrt(q.shape[-1])
    scores = (qw @ kw.transpose(-2, -1)) * scale
    if grid.is_padded:
        scores = scores.masked_fill(~_valid_tokens(grid, q.device).view(windows, 1, tokens), float("-inf"))
    probs = scores.softmax(dim=-1)
    grad_probs = grad_w @ vw.transpose(-2, -1)
    grad_scores = probs * (grad_probs - (grad_probs * probs).sum(dim=-1, keepdim=True))
    grads = [
        (grad_scores @ kw) * scale,
        (grad_scores.transpose(-2, -1) @ qw) * scale,
        probs.transpose(-2, -1) @ grad_w,
    ]
    grads = [grad.reshape(*grad.shape[:-3], grid.padded_tokens, grad.shape[-1]) for grad in grads]
    if raster:
        grads = [from_window_major(grad, height, width, window_size) for grad in grads]
    if with_mean:
        grad_mean = grad_output.sum(dim=-2, keepdim=True)
        if raster or not grid.is_padded:
            grads[2] = grads[2] + grad_mean / grid.num_tokens
        else:
            weights = _valid_tokens(grid, q.device).to(v.dtype)[:, None] / grid.num_tokens
            grads[2] = grads[2] + weights * grad_mean
    return tuple(grads)


@sema_attention_backward_op.register_fake
def _sema_attention_backward_fake(grad_output, q, k, v, height, width, window_size, with_mean, window_major):
    return torch.empty_like(q), torch.empty_like(k), torch.empty_like(v)


def _setup_context(ctx, inputs, output) -> None:
    q, k, v, *ctx.geometry = inputs
    ctx.save_for_backward(q, k, v)


def _backward(ctx, grad_output):
    q, k, v = ctx.saved_tensors
    dq, dk, dv = sema_attention_backward_op(grad_output, q, k, v, *ctx.geometry)
    return dq, dk, dv, None, None, None, None, None


sema_attention_op.register_autograd(_backward, setup_context=_setup_context)


# --- dispatcher --------------------------------------------------------------------------------------------


def resolve_backend(backend: str, device: torch.device) -> str:
    """The backend `auto` stands for on `device`, after checking that a named one can run there."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown SEMA backend {backend!r}; choose one of {BACKENDS}")
    if backend == "auto":
        return "torch"
    if backend == "flex" and not (device.type == "cuda" and flex_available()):
        raise ValueError(
            f"SEMA backend 'flex' needs CUDA tensors and torch >= 2.6 (got {device.type}, torch {torch.__version__}); "
            "use backend='torch'"
        )
    return backend


def sema_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    height: int,
    width: int,
    window_size: int,
    *,
    with_mean: bool = True,
    token_order: str = "raster",
    backend: str = "auto",
) -> Tensor:
    """SEMA (window softmax attention + mean of v) on (B, heads, tokens, d); see the module docstring."""
    if token_order not in TOKEN_ORDERS:
        raise ValueError(f"unknown token_order {token_order!r}; choose one of {TOKEN_ORDERS}")
    grid = WindowGrid(height, width, window_size)
    expected = grid.num_tokens if token_order == "raster" else grid.padded_tokens
    if q.shape != k.shape or q.shape[:-1] != v.shape[:-1] or q.shape[-2] != expected:
        raise ValueError(
            f"SEMA expects q, k of equal shape (..., {expected}, d) and v (..., {expected}, d_v) for a "
            f"{height}x{width} map in {token_order} order with window {window_size}; "
            f"got q {tuple(q.shape)}, k {tuple(k.shape)}, v {tuple(v.shape)}"
        )
    if is_counting():
        return sema_attention_op(q, k, v, height, width, window_size, with_mean, token_order == "window_major")
    backend = resolve_backend(backend, q.device)
    if backend == "reference":
        if token_order == "raster":
            return reference_sema_attention(q, k, v, height, width, window_size, with_mean)
        raster = [from_window_major(t, height, width, window_size) for t in (q, k, v)]
        out = reference_sema_attention(*raster, height, width, window_size, with_mean)
        return to_window_major(out, height, width, window_size)
    if backend == "flex":
        return flex_sema_attention(q, k, v, grid, with_mean, token_order)
    return torch_sema_attention(q, k, v, grid, with_mean, token_order)


def sema_attention_packed(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    height: int,
    width: int,
    window_size: int,
    num_heads: int,
    *,
    with_mean: bool = True,
    backend: str = "auto",
) -> Tensor:
    """SEMA on window-major tokens with the heads packed in the channels: q, k (B, padded_tokens, heads * d),
    v (B, padded_tokens, heads * d_v) -> (B, padded_tokens, heads * d_v). The torch backend runs
    `torch_sema_attention_packed`; the others (and counting mode) go through `sema_attention`."""
    grid = WindowGrid(height, width, window_size)
    if q.ndim != 3 or q.shape != k.shape or q.shape[:-1] != v.shape[:-1] or q.shape[1] != grid.padded_tokens:
        raise ValueError(
            f"SEMA (packed) expects q, k (B, {grid.padded_tokens}, heads * d) and v (B, {grid.padded_tokens}, "
            f"heads * d_v) for a {height}x{width} map with window {window_size}; "
            f"got q {tuple(q.shape)}, k {tuple(k.shape)}, v {tuple(v.shape)}"
        )
    if q.shape[-1] % num_heads or v.shape[-1] % num_heads:
        raise ValueError(f"channels {q.shape[-1]} (q, k) and {v.shape[-1]} (v) must divide into {num_heads} heads")
    if not is_counting() and resolve_backend(backend, q.device) == "torch":
        return torch_sema_attention_packed(q, k, v, grid, num_heads, with_mean)
    batch, tokens = q.shape[:2]

    def split(t: Tensor) -> Tensor:
        return t.reshape(batch, tokens, num_heads, t.shape[-1] // num_heads).transpose(1, 2)

    out = sema_attention(
        split(q), split(k), split(v), height, width, window_size,
        with_mean=with_mean, token_order="window_major", backend=backend,
    )
    return out.transpose(1, 2).reshape(batch, tokens, v.shape[-1])
