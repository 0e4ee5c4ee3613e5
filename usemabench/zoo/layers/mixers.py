"""Token mixers and the Mamba-like (MLLA) block that holds them.

The block is MLLA's macro block (Han et al., "Demystify Mamba in Vision: A Linear Attention Perspective",
NeurIPS 2024; reference code LeapLabTHU/MLLA `models/mlla.py`); SEMA (arXiv 2506.08297) keeps it and swaps
only the attention, which is our reading [inferred]. The mixers share one interface, `(B, N, C) tokens in
raster order + (height, width) -> (B, N, C)`, and the attention ones the same parameters (a q/k projection
C -> 2C, v = the input, LePE = depthwise 3x3 conv on v), so that an ablation changes nothing but the mixing.
Two of those choices are options: `v_projection` (v = Linear(x) instead of x; the mean mixer too) and
`qk_scale` (None = 1/sqrt(head_dim); softmax mixers only, refused by linear and mean, which have no scale).

    sema    window softmax attention + mean of V (USEMA_SPEC.md)      window  window attention only
    full    global softmax attention (SDPA)                           mean    mean of V only (no q/k)
    linear  MLLA linear attention (ELU + 1 kernels, normalised)

MLLA's RoPE on q and k is left out (USEMA_SPEC.md: optional, off by default) [reconstructed].
"""

from __future__ import annotations

import math

import torch.nn.functional as F
from timm.layers import DropPath, Mlp
from torch import Tensor, nn

from usemabench.zoo.layers.init import init_transformer_weights
from usemabench.zoo.layers.sema import from_window_major, sema_attention_packed, to_window_major

TOKEN_MIXERS = ("sema", "full", "linear", "window", "mean")


def _conv_on_tokens(conv: nn.Module, x: Tensor, height: int, width: int) -> Tensor:
    """Apply a 2D conv to (B, N, C) raster tokens and return tokens."""
    batch, tokens, channels = x.shape
    image = x.transpose(1, 2).reshape(batch, channels, height, width)
    return conv(image).flatten(2).transpose(1, 2)


def depthwise_conv3x3(dim: int) -> nn.Conv2d:
    return nn.Conv2d(dim, dim, kernel_size=3, padding=1, groups=dim)


def _split_heads(x: Tensor, num_heads: int) -> Tensor:
    """(B, N, C) -> (B, heads, N, C / heads)."""
    batch, tokens, channels = x.shape
    return x.reshape(batch, tokens, num_heads, channels // num_heads).transpose(1, 2)


def _merge_heads(x: Tensor) -> Tensor:
    """(B, heads, N, d) -> (B, N, heads * d)."""
    batch, heads, tokens, head_dim = x.shape
    return x.transpose(1, 2).reshape(batch, tokens, heads * head_dim)


class _QKAttention(nn.Module):
    """Shared parts of the attention mixers: q, k = Linear(x); v = x (or Linear(x)); output + LePE(v).

    `qk_scale` (None: 1/sqrt(head_dim)) is applied by scaling q by qk_scale * sqrt(head_dim), so that every
    kernel keeps its own default 1/sqrt(head_dim) and no kernel needs a scale argument.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        qkv_bias: bool = True,
        v_projection: bool = False,
        qk_scale: float | None = None,
    ) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
        self.dim, self.num_heads, self.qk_scale = dim, num_heads, qk_scale
        self.qk = nn.Linear(dim, 2 * dim, bias=qkv_bias)
        # inferred: v = the input without a projection (MLLA); v_projection=True adds one
        self.v_proj = nn.Linear(dim, dim, bias=qkv_bias) if v_projection else None
        self.lepe = depthwise_conv3x3(dim)

    def packed_queries_and_keys(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """q, k as (B, N, C) tokens, heads packed in the channels."""
        q, k = self.qk(x).chunk(2, dim=-1)
        if self.qk_scale is not None:
            q = q * (self.qk_scale * math.sqrt(self.dim // self.num_heads))
        return q, k

    def queries_and_keys(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """q, k as (B, heads, N, C / heads)."""
        q, k = self.packed_queries_and_keys(x)
        return _split_heads(q, self.num_heads), _split_heads(k, self.num_heads)

    def values(self, x: Tensor) -> Tensor:
        """v as (B, N, C) tokens: x itself, or its projection with `v_projection`."""
        return x if self.v_proj is None else self.v_proj(x)

    def extra_repr(self) -> str:
        options = f"v_projection={self.v_proj is not None}, qk_scale={self.qk_scale}"
        return f"dim={self.dim}, num_heads={self.num_heads}, {options}"


class SEMAAttention(_QKAttention):
    """SEMA token mixer: window softmax attention + mean of v (`with_mean=False`: window only) + LePE.

    The tokens are permuted to window-major order once, before the q/k projection, so q, k and v are born
    in the order the kernel wants and only the output is permuted back; the heads stay packed in the
    channels (`sema_attention_packed`), so no head split or merge copies them.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        window_size: int = 8,
        with_mean: bool = True,
        backend: str = "auto",
        qkv_bias: bool = True,
        v_projection: bool = False,
        qk_scale: float | None = None,
    ) -> None:
        super().__init__(dim, num_heads, qkv_bias, v_projection, qk_scale)
        self.window_size, self.with_mean, self.backend = window_size, with_mean, backend

    def forward(self, x: Tensor, height: int, width: int) -> Tensor:
        values = self.values(x)
        lepe = _conv_on_tokens(self.lepe, values, height, width)
        windowed = to_window_major(x, height, width, self.window_size)
        q, k = self.packed_queries_and_keys(windowed)
        v = windowed if self.v_proj is None else to_window_major(values, height, width, self.window_size)
        out = sema_attention_packed(
            q, k, v, height, width, self.window_size, self.num_heads, with_mean=self.with_mean, backend=self.backend
        )
        return from_window_major(out, height, width, self.window_size) + lepe

    def extra_repr(self) -> str:
        options = f"window_size={self.window_size}, with_mean={self.with_mean}, backend={self.backend}"
        return f"{super().extra_repr()}, {options}"


class FullAttention(_QKAttention):
    """Global softmax attention over all tokens (F.scaled_dot_product_attention) + LePE."""

    def forward(self, x: Tensor, height: int, width: int) -> Tensor:
        q, k = self.queries_and_keys(x)
        values = self.values(x)
        # x is usually a channels-first feature map seen as tokens; the fused SDPA kernels (flash, cuDNN,
        # memory-efficient) need a unit stride on the head dimension and otherwise fall back to `math`.
        v = _split_heads(values.contiguous(), self.num_heads)
        out = F.scaled_dot_product_attention(q, k, v)
        return _merge_heads(out) + _conv_on_tokens(self.lepe, values, height, width)


class LinearAttention(_QKAttention):
    """MLLA linear attention: phi = ELU + 1 on q and k, out_i = phi(q_i) S / (phi(q_i) . z), + LePE.

    S = sum_j phi(k_j) v_j^T / N and z = mean_j phi(k_j), as in MLLA (whose 1e-6 keeps the division finite).
    There is no softmax scale here, so a `qk_scale` is refused rather than silently ignored.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        qkv_bias: bool = True,
        v_projection: bool = False,
        qk_scale: float | None = None,
    ) -> None:
        if qk_scale is not None:
            raise ValueError(f"the linear mixer has no softmax scale; qk_scale must be None, got {qk_scale}")
        super().__init__(dim, num_heads, qkv_bias, v_projection)

    def forward(self, x: Tensor, height: int, width: int) -> Tensor:
        q, k = self.queries_and_keys(x)
        q, k = F.elu(q) + 1.0, F.elu(k) + 1.0
        values = self.values(x)
        v = _split_heads(values, self.num_heads)
        tokens = x.shape[1]
        normaliser = 1.0 / (q @ k.mean(dim=-2, keepdim=True).transpose(-2, -1) + 1e-6)
        state = (k.transpose(-2, -1) @ v) / tokens
        out = (q @ state) * normaliser
        return _merge_heads(out) + _conv_on_tokens(self.lepe, values, height, width)


class MeanMixer(nn.Module):
    """SEMA's global term alone: the mean of v over all tokens, + LePE(v) (no q/k, hence no `qk_scale`).

    `v_projection` gives v = Linear(x), as in the attention mixers, so the ablation keeps SEMA's v.
    """

    def __init__(self, dim: int, v_projection: bool = False) -> None:
        super().__init__()
        self.v_proj = nn.Linear(dim, dim) if v_projection else None
        self.lepe = depthwise_conv3x3(dim)

    def forward(self, x: Tensor, height: int, width: int) -> Tensor:
        values = x if self.v_proj is None else self.v_proj(x)
        return values.mean(dim=1, keepdim=True) + _conv_on_tokens(self.lepe, values, height, width)


def build_token_mixer(
    name: str,
    dim: int,
    num_heads: int,
    window_size: int = 8,
    backend: str = "auto",
    qkv_bias: bool = True,
    v_projection: bool = False,
    qk_scale: float | None = None,
) -> nn.Module:
    """One of TOKEN_MIXERS by name; `qk_scale` only for the softmax ones (sema, window, full)."""
    if name == "sema":
        return SEMAAttention(dim, num_heads, window_size, True, backend, qkv_bias, v_projection, qk_scale)
    if name == "window":
        return SEMAAttention(dim, num_heads, window_size, False, backend, qkv_bias, v_projection, qk_scale)
    if name == "full":
        return FullAttention(dim, num_heads, qkv_bias, v_projection, qk_scale)
    if name == "linear":
        return LinearAttention(dim, num_heads, qkv_bias, v_projection, qk_scale)
    if name == "mean":
        if qk_scale is not None:
            raise ValueError(f"the mean mixer has no q/k; qk_scale must be None, got {qk_scale}")
        return MeanMixer(dim, v_projection)
    raise ValueError(f"unknown token mixer {name!r}; choose one of {TOKEN_MIXERS}")


class MambaLikeBlock(nn.Module):
    """MLLA's Mamba-like block around a token mixer, on (B, N, C) raster tokens of an H x W map.

        x <- x + DWConv(x);  s <- x;  h <- LN(x)                      (conditional position encoding)
        g <- SiLU(Linear(h));  u <- SiLU(DWConv(Linear(h)))            (gate; in-projection + local conv)
        x <- s + DropPath(Linear(mixer(u) * g))
        x <- x + DWConv(x);  x <- x + DropPath(MLP(LN(x)))              (MLP C -> 4C -> C, GELU)

    About 13 C^2 parameters. Example:
        >>> block = MambaLikeBlock(dim=64, num_heads=2, mixer="sema", window_size=8)
        >>> block(torch.randn(1, 24 * 20, 64), 24, 20).shape
        torch.Size([1, 480, 64])
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        mixer: str = "sema",
        window_size: int = 8,
        mlp_ratio: float = 4.0,
        drop_path: float = 0.0,
        backend: str = "auto",
        qkv_bias: bool = True,
        v_projection: bool = False,
        qk_scale: float | None = None,
    ) -> None:
        super().__init__()
        self.cpe1 = depthwise_conv3x3(dim)
        self.norm1 = nn.LayerNorm(dim)
        self.act_proj = nn.Linear(dim, dim)
        self.in_proj = nn.Linear(dim, dim)
        self.dwc = depthwise_conv3x3(dim)
        self.act = nn.SiLU()
        self.mixer = build_token_mixer(
            mixer, dim, num_heads, window_size, backend, qkv_bias, v_projection, qk_scale
        )
        self.out_proj = nn.Linear(dim, dim)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.cpe2 = depthwise_conv3x3(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(in_features=dim, hidden_features=int(dim * mlp_ratio), act_layer=nn.GELU)
        self.apply(init_transformer_weights)

    def forward(self, x: Tensor, height: int, width: int) -> Tensor:
        if x.shape[1] != height * width:
            raise ValueError(f"MambaLikeBlock got {x.shape[1]} tokens for a {height}x{width} map")
        x = x + _conv_on_tokens(self.cpe1, x, height, width)
        shortcut = x
        x = self.norm1(x)
        gate = self.act(self.act_proj(x))
        x = self.act(_conv_on_tokens(self.dwc, self.in_proj(x), height, width))
        x = self.out_proj(self.mixer(x, height, width) * gate)
        x = shortcut + self.drop_path(x)
        x = x + _conv_on_tokens(self.cpe2, x, height, width)
        return x + self.drop_path(self.mlp(self.norm2(x)))
