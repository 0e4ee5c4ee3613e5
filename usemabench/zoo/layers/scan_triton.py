"""The selective scan as Triton kernels, forward and backward, so Mamba layers run fast without nvcc.

Same signature, layout and semantics as mamba-ssm's `selective_scan_fn` (see `scan.py`): per batch b,
channel d, state n and token t, with g(d) the B/C group of channel d,

    dt[d,t]  = softplus(delta[d,t] + delta_bias[d])   (bias and softplus optional)
    a[d,n,t] = exp(dt[d,t] A[d,n]),   x[d,n,t] = dt[d,t] u[d,t] B[g(d),n,t]
    h[d,n,t] = a[d,n,t] h[d,n,t-1] + x[d,n,t],   h[., ., -1] = 0
    y[d,t]   = (sum_n C[g(d),n,t] h[d,n,t] + D[d] u[d,t]) * silu(z[d,t])

Plan. The sequence is cut into chunks of `chunk_size` tokens and every kernel except the carry runs one
program per (chunk, block of channels, batch item), holding a (channels, N, chunk) tile in registers and
accumulating in float32 whatever the input dtype.

Forward
  1. chunk summary: chunk k maps its start state to its end state as h_end = P_k h_start + S_k with
     P_k = exp(A sum_t dt_t) and S_k = sum_t exp(A sum_{s>t} dt_s) x_t (a reduction, no scan).
  2. carry: a scan over the chunk axis of these affine maps gives H_k, the state entering chunk k.
     H is the only saved intermediate: B*D*N*L/chunk_size floats, never the B*D*N*L states.
  3. output: inside each chunk an associative scan of (a, x) started from H_k gives h, then y.
Backward (g_t = dloss/dh_t, with dy_t = dout_t silu(z_t), obeys g_t = C_t dy_t + a_{t+1} g_{t+1})
  4. chunk summary of the adjoint: what chunk k sends to the state before it, X_k = a_{t0} g_{t0}, is
     P_k X_{k+1} + Q_k with Q_k = sum_t exp(A sum_{s<=t} dt_s) C_t dy_t.
  5. carry: the same scan, right to left, gives the adjoint entering each chunk from its right.
  6. gradients: recompute h (forward scan from H_k) and g (reverse scan), then, with a_t h_{t-1} = h_t - x_t,
        ddt_t = sum_n g_t (u_t B_t + A (h_t - x_t)),   du_t = dt_t sum_n g_t B_t + D dy_t,
        dA = sum_t g_t (h_t - x_t) dt_t,   dB_t = sum_{d in group} g_t dt_t u_t,   dC_t = sum_{d in group} dy_t h_t,
        dD = sum_t dy_t u_t,   ddelta = ddt * sigmoid(delta + bias) (softplus),   dbias = sum_t ddelta,
        dz = dout y_pre sigmoid(z) (1 + z (1 - sigmoid(z))).
     A program walks all channels of (a slice of) one group, so dB and dC are summed in registers and
     written once; dA, dD and dbias go to per-chunk partials summed afterwards (deterministic).

Chunks are independent in kernels 1, 3, 4 and 6, so the GPU is filled even at batch 1; only the small
carry scan (one float per (b, d, n, chunk)) runs along the sequence. N need not be a power of two: the
state axis is padded inside the kernels and masked.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import triton
import triton.language as tl
from torch import Tensor

from usemabench.zoo.layers.scan import validate_scan_inputs


@dataclass(frozen=True)
class ScanTritonConfig:
    """Tile sizes (powers of two). The defaults won the H100 tile sweep at L=65,536, D=256, N=16 among those
    that keep memory low (5.57 ms against 6.16 ms for the earlier block_d=2; chunk_size=64 was 5.07 ms but
    needs 1.44x the memory): `leaderboard/records/bench/bench_selective-scan_triton_sweep_*.json`, made by
    `benchmarks/bench_scan.py --sweep`.

    chunk_size: tokens per chunk (lowered to the sequence length's power of two, at least 16, for short ones).
    block_d: channels per program (lowered to the largest power of two dividing the channels per group).
    carry_block_rows, carry_block_chunks: the (b, d, n) rows x chunks tile of the carry scan.
    channel_split: programs sharing one group's channels in the gradient kernel (their dB, dC are added
        atomically); None picks enough to fill the GPU.
    num_warps: None picks from the tile size.
    """

    chunk_size: int = 128
    block_d: int = 1
    carry_block_rows: int = 32
    carry_block_chunks: int = 64
    channel_split: int | None = None
    num_warps: int | None = None


DEFAULT_CONFIG = ScanTritonConfig()

# Read once, like triton.jit does when it decorates the kernels below: interpreted kernels take CPU tensors.
_INTERPRETED = os.environ.get("TRITON_INTERPRET", "0") == "1"


# ------------------------------------------------------------------------------------------ device helpers


@triton.jit
def _linear_combine(decay_left, value_left, decay_right, value_right):
    """Composition of h -> decay h + value maps, left one first: the operator of every scan here."""
    return decay_left * decay_right, value_left * decay_right + value_right


@triton.jit
def _softplus(x):
    """log(1 + e^x) as max(x, 0) + log1p(e^-|x|); log1p by Goldberg's correction (tl has no log1p)."""
    small = tl.exp(-tl.abs(x))
    one_plus = 1.0 + small
    log1p = tl.where(one_plus == 1.0, small, tl.log(one_plus) * small / (one_plus - 1.0))
    return tl.maximum(x, 0.0) + log1p


@triton.jit
def _chunk_program(
    L, D, N, channels_per_group, G, CHUNK: tl.constexpr, BLOCK_D: tl.constexpr, N_PAD: tl.constexpr
):  # fmt: skip
    """Where a (chunk, channel block, batch item) program of kernels 1, 3 and 4 reads and writes.

    Returns chunk, batch, the channel, state and token offsets with the state and token masks, the channels'
    row offsets in (batch, D, L) tensors and the group's offset in (batch, G, N, L) ones.
    """
    chunk = tl.program_id(0)
    d_start = tl.program_id(1) * BLOCK_D
    batch = tl.program_id(2).to(tl.int64)
    offs_d = d_start + tl.arange(0, BLOCK_D)
    offs_n = tl.arange(0, N_PAD)
    offs_t = chunk * CHUNK + tl.arange(0, CHUNK)
    row_offsets = (batch * D + offs_d).to(tl.int64) * L
    group_offset = (batch * G + d_start // channels_per_group) * N * L
    return chunk, batch, offs_d, offs_n, offs_n < N, offs_t, offs_t < L, row_offsets, group_offset


@triton.jit
def _load_delta(
    delta_ptr, bias_ptr, row_offsets, offs_d, offs_t, mask_t, HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr
):
    """(raw, dt): delta + bias and the step size, both float32 (BLOCK_D, CHUNK); dt is 0 past the sequence."""
    raw = tl.load(delta_ptr + row_offsets[:, None] + offs_t[None, :], mask=mask_t[None, :], other=0.0).to(tl.float32)
    if HAS_BIAS:
        raw += tl.load(bias_ptr + offs_d).to(tl.float32)[:, None]
    if SOFTPLUS:
        dt = _softplus(raw)
    else:
        dt = raw
    return raw, tl.where(mask_t[None, :], dt, 0.0)


@triton.jit
def _load_tokens(ptr, row_offsets, offs_t, mask_t):
    """A (BLOCK_D, CHUNK) float32 tile of a (batch, dim, L) tensor, 0 past the sequence."""
    return tl.load(ptr + row_offsets[:, None] + offs_t[None, :], mask=mask_t[None, :], other=0.0).to(tl.float32)


@triton.jit
def _load_state_tokens(ptr, group_offset, offs_n, mask_n, offs_t, mask_t, L):
    """A (N_PAD, CHUNK) float32 tile of B or C (batch, G, N, L) for one group, 0 in the padding."""
    offsets = group_offset + offs_n[:, None].to(tl.int64) * L + offs_t[None, :]
    return tl.load(ptr + offsets, mask=mask_n[:, None] & mask_t[None, :], other=0.0).to(tl.float32)


@triton.jit
def _gated_output_grad(dout_ptr, z_ptr, row_offsets, offs_t, mask_t, HAS_Z: tl.constexpr):
    """(dy, dout, z): the gradient reaching the pre-gate output, dout * silu(z), and what dz needs."""
    dout = _load_tokens(dout_ptr, row_offsets, offs_t, mask_t)
    if HAS_Z:
        z = _load_tokens(z_ptr, row_offsets, offs_t, mask_t)
        dy = dout * z * tl.sigmoid(z)
    else:
        z = dout
        dy = dout
    return dy, dout, z


# ----------------------------------------------------------------------------------------------- kernels


@triton.jit
def _forward_summary_kernel(
    u_ptr, delta_ptr, A_ptr, B_ptr, bias_ptr, decay_ptr, value_ptr,
    L, D, N, channels_per_group, G, n_chunks,
    HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr,
    CHUNK: tl.constexpr, BLOCK_D: tl.constexpr, N_PAD: tl.constexpr,
):  # fmt: skip
    """Kernel 1: (P_k, S_k) of chunk k, stored in slot k + 1 of (batch, n_chunks, D, N); slot 0 = zero state."""
    chunk, batch, offs_d, offs_n, mask_n, offs_t, mask_t, row_offsets, group_offset = _chunk_program(
        L, D, N, channels_per_group, G, CHUNK, BLOCK_D, N_PAD
    )

    _, dt = _load_delta(delta_ptr, bias_ptr, row_offsets, offs_d, offs_t, mask_t, HAS_BIAS, SOFTPLUS)
    u = _load_tokens(u_ptr, row_offsets, offs_t, mask_t)
    B = _load_state_tokens(B_ptr, group_offset, offs_n, mask_n, offs_t, mask_t, L)
    state_offsets = offs_d[:, None] * N + offs_n[None, :]
    A = tl.load(A_ptr + state_offsets, mask=mask_n[None, :], other=0.0).to(tl.float32)

    later = tl.cumsum(dt, axis=1, reverse=True) - dt  # sum of dt after t within the chunk
    weight = tl.exp(A[:, :, None] * later[:, None, :])
    value = tl.sum(weight * ((dt * u)[:, None, :] * B[None, :, :]), axis=2)
    decay = tl.exp(A * tl.sum(dt, axis=1)[:, None])

    slot = (batch * n_chunks + chunk + 1) * D * N + state_offsets
    mask_store = mask_n[None, :] & (chunk + 1 < n_chunks)
    tl.store(decay_ptr + slot, decay, mask=mask_store)
    tl.store(value_ptr + slot, value, mask=mask_store)
    first = batch * n_chunks * D * N + state_offsets
    tl.store(decay_ptr + first, tl.zeros_like(decay), mask=mask_n[None, :] & (chunk == 0))
    tl.store(value_ptr + first, tl.zeros_like(value), mask=mask_n[None, :] & (chunk == 0))


@triton.jit
def _carry_kernel(
    decay_ptr, value_ptr, n_rows, row_length, n_chunks,
    REVERSE: tl.constexpr, BLOCK_R: tl.constexpr, BLOCK_K: tl.constexpr,
):  # fmt: skip
    """Kernels 2 and 5: in place, value[k] <- decay[k] * (result at the previous chunk) + value[k].

    Buffers are (batch, n_chunks, row_length) with rows (batch, d, n); REVERSE walks the chunks right to left.
    """
    offs_r = tl.program_id(0) * BLOCK_R + tl.arange(0, BLOCK_R)
    mask_r = offs_r < n_rows
    batch = (offs_r // row_length).to(tl.int64)
    row_base = batch * n_chunks * row_length + offs_r % row_length
    is_last_column = (tl.arange(0, BLOCK_K) == BLOCK_K - 1)[None, :]
    carry = tl.zeros((BLOCK_R,), dtype=tl.float32)
    for start in range(0, n_chunks, BLOCK_K):
        step = start + tl.arange(0, BLOCK_K)
        if REVERSE:
            chunk = n_chunks - 1 - step
        else:
            chunk = step
        mask = mask_r[:, None] & (step < n_chunks)[None, :]
        offsets = row_base[:, None] + chunk[None, :].to(tl.int64) * row_length
        # Past the end: the identity map, so the last column holds the carry out of this tile.
        decay = tl.load(decay_ptr + offsets, mask=mask, other=1.0)
        value = tl.load(value_ptr + offsets, mask=mask, other=0.0)
        decay, value = tl.associative_scan((decay, value), axis=1, combine_fn=_linear_combine)
        state = decay * carry[:, None] + value
        tl.store(value_ptr + offsets, state, mask=mask)
        carry = tl.sum(tl.where(is_last_column, state, 0.0), axis=1)


@triton.jit
def _forward_output_kernel(
    u_ptr, delta_ptr, A_ptr, B_ptr, C_ptr, D_ptr, z_ptr, bias_ptr, start_ptr, out_ptr,
    L, D, N, channels_per_group, G, n_chunks,
    HAS_D: tl.constexpr, HAS_Z: tl.constexpr, HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr,
    CHUNK: tl.constexpr, BLOCK_D: tl.constexpr, N_PAD: tl.constexpr,
):  # fmt: skip
    """Kernel 3: states inside chunk k from its start state, then y."""
    chunk, batch, offs_d, offs_n, mask_n, offs_t, mask_t, row_offsets, group_offset = _chunk_program(
        L, D, N, channels_per_group, G, CHUNK, BLOCK_D, N_PAD
    )

    _, dt = _load_delta(delta_ptr, bias_ptr, row_offsets, offs_d, offs_t, mask_t, HAS_BIAS, SOFTPLUS)
    u = _load_tokens(u_ptr, row_offsets, offs_t, mask_t)
    B = _load_state_tokens(B_ptr, group_offset, offs_n, mask_n, offs_t, mask_t, L)
    C = _load_state_tokens(C_ptr, group_offset, offs_n, mask_n, offs_t, mask_t, L)
    state_offsets = offs_d[:, None] * N + offs_n[None, :]
    A = tl.load(A_ptr + state_offsets, mask=mask_n[None, :], other=0.0).to(tl.float32)
    start = tl.load(start_ptr + (batch * n_chunks + chunk) * D * N + state_offsets, mask=mask_n[None, :], other=0.0)

    decay = tl.exp(A[:, :, None] * dt[:, None, :])
    update = (dt * u)[:, None, :] * B[None, :, :]
    decay, update = tl.associative_scan((decay, update), axis=2, combine_fn=_linear_combine)
    states = decay * start[:, :, None] + update
    y = tl.sum(C[None, :, :] * states, axis=1)
    if HAS_D:
        y += tl.load(D_ptr + offs_d).to(tl.float32)[:, None] * u
    if HAS_Z:
        z = _load_tokens(z_ptr, row_offsets, offs_t, mask_t)
        y *= z * tl.sigmoid(z)
    offsets = row_offsets[:, None] + offs_t[None, :]
    tl.store(out_ptr + offsets, y.to(out_ptr.dtype.element_ty), mask=mask_t[None, :])


@triton.jit
def _backward_summary_kernel(
    dout_ptr, z_ptr, delta_ptr, A_ptr, C_ptr, bias_ptr, decay_ptr, value_ptr,
    L, D, N, channels_per_group, G, n_chunks,
    HAS_Z: tl.constexpr, HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr,
    CHUNK: tl.constexpr, BLOCK_D: tl.constexpr, N_PAD: tl.constexpr,
):  # fmt: skip
    """Kernel 4: (P_k, Q_k) of chunk k, stored in slot k - 1; the last slot gets the zero adjoint."""
    chunk, batch, offs_d, offs_n, mask_n, offs_t, mask_t, row_offsets, group_offset = _chunk_program(
        L, D, N, channels_per_group, G, CHUNK, BLOCK_D, N_PAD
    )

    _, dt = _load_delta(delta_ptr, bias_ptr, row_offsets, offs_d, offs_t, mask_t, HAS_BIAS, SOFTPLUS)
    dy, _, _ = _gated_output_grad(dout_ptr, z_ptr, row_offsets, offs_t, mask_t, HAS_Z)
    C = _load_state_tokens(C_ptr, group_offset, offs_n, mask_n, offs_t, mask_t, L)
    state_offsets = offs_d[:, None] * N + offs_n[None, :]
    A = tl.load(A_ptr + state_offsets, mask=mask_n[None, :], other=0.0).to(tl.float32)

    weight = tl.exp(A[:, :, None] * tl.cumsum(dt, axis=1)[:, None, :])
    value = tl.sum(weight * (dy[:, None, :] * C[None, :, :]), axis=2)
    decay = tl.exp(A * tl.sum(dt, axis=1)[:, None])

    slot = (batch * n_chunks + chunk - 1) * D * N + state_offsets
    mask_store = mask_n[None, :] & (chunk > 0)
    tl.store(decay_ptr + slot, decay, mask=mask_store)
    tl.store(value_ptr + slot, value, mask=mask_store)
    last = (batch * n_chunks + n_chunks - 1) * D * N + state_offsets
    tl.store(decay_ptr + last, tl.zeros_like(decay), mask=mask_n[None, :] & (chunk == n_chunks - 1))
    tl.store(value_ptr + last, tl.zeros_like(value), mask=mask_n[None, :] & (chunk == n_chunks - 1))


@triton.jit
def _backward_gradients_kernel(
    u_ptr, delta_ptr, A_ptr, B_ptr, C_ptr, D_ptr, z_ptr, bias_ptr, start_ptr, adjoint_ptr, dout_ptr,
    du_ptr, ddelta_ptr, dz_ptr, dA_ptr, dD_ptr, dbias_ptr, dB_ptr, dC_ptr,
    L, D, N, channels_per_group, G, n_chunks, channel_split, blocks_per_program,
    HAS_D: tl.constexpr, HAS_Z: tl.constexpr, HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr,
    ATOMIC_BC: tl.constexpr, CHUNK: tl.constexpr, BLOCK_D: tl.constexpr, N_PAD: tl.constexpr,
):  # fmt: skip
    """Kernel 6: all gradients of chunk k for a slice of one group's channels (see the module docstring)."""
    chunk = tl.program_id(0)
    group = tl.program_id(1) // channel_split
    split = tl.program_id(1) % channel_split
    batch = tl.program_id(2).to(tl.int64)
    offs_n = tl.arange(0, N_PAD)
    mask_n = offs_n < N
    offs_t = chunk * CHUNK + tl.arange(0, CHUNK)
    mask_t = offs_t < L
    # a_{t+1} multiplies g_{t+1} inside the chunk; at the chunk's end the carried adjoint already includes it.
    mask_next = offs_t + 1 < tl.minimum(L, (chunk + 1) * CHUNK)
    group_offset = (batch * G + group) * N * L
    B = _load_state_tokens(B_ptr, group_offset, offs_n, mask_n, offs_t, mask_t, L)
    C = _load_state_tokens(C_ptr, group_offset, offs_n, mask_n, offs_t, mask_t, L)
    dB = tl.zeros((N_PAD, CHUNK), dtype=tl.float32)
    dC = tl.zeros((N_PAD, CHUNK), dtype=tl.float32)

    for block in range(blocks_per_program):
        d_start = group * channels_per_group + (split * blocks_per_program + block) * BLOCK_D
        offs_d = d_start + tl.arange(0, BLOCK_D)
        row_offsets = (batch * D + offs_d).to(tl.int64) * L
        state_offsets = offs_d[:, None] * N + offs_n[None, :]
        chunk_states = (batch * n_chunks + chunk) * D * N + state_offsets
        A = tl.load(A_ptr + state_offsets, mask=mask_n[None, :], other=0.0).to(tl.float32)
        raw, dt = _load_delta(delta_ptr, bias_ptr, row_offsets, offs_d, offs_t, mask_t, HAS_BIAS, SOFTPLUS)
        _, dt_next = _load_delta(delta_ptr, bias_ptr, row_offsets, offs_d, offs_t + 1, mask_next, HAS_BIAS, SOFTPLUS)
        u = _load_tokens(u_ptr, row_offsets, offs_t, mask_t)
        dy, dout, z = _gated_output_grad(dout_ptr, z_ptr, row_offsets, offs_t, mask_t, HAS_Z)

        # States h_t, recomputed from the chunk's start state.
        update = (dt * u)[:, None, :] * B[None, :, :]
        decay, states = tl.associative_scan(
            (tl.exp(A[:, :, None] * dt[:, None, :]), update), axis=2, combine_fn=_linear_combine
        )
        start = tl.load(start_ptr + chunk_states, mask=mask_n[None, :], other=0.0)
        states = decay * start[:, :, None] + states
        y = tl.sum(C[None, :, :] * states, axis=1)
        dC += tl.sum(dy[:, None, :] * states, axis=0)
        decayed_previous = states - update  # a_t h_{t-1}

        # Adjoint g_t, from the adjoint entering the chunk from its right.
        decay, adjoint = tl.associative_scan(
            (tl.exp(A[:, :, None] * dt_next[:, None, :]), dy[:, None, :] * C[None, :, :]),
            axis=2, combine_fn=_linear_combine, reverse=True,
        )  # fmt: skip
        carried = tl.load(adjoint_ptr + chunk_states, mask=mask_n[None, :], other=0.0)
        adjoint = decay * carried[:, :, None] + adjoint

        adjoint_B = tl.sum(adjoint * B[None, :, :], axis=1)
        adjoint_decay = adjoint * decayed_previous
        ddt = u * adjoint_B + tl.sum(adjoint_decay * A[:, :, None], axis=1)
        du = dt * adjoint_B
        dB += tl.sum(adjoint * (dt * u)[:, None, :], axis=0)
        partial_offsets = (batch * n_chunks + chunk) * D + offs_d
        tl.store(dA_ptr + chunk_states, tl.sum(adjoint_decay * dt[:, None, :], axis=2), mask=mask_n[None, :])
        if HAS_D:
            skip = tl.load(D_ptr + offs_d).to(tl.float32)
            du += skip[:, None] * dy
            y += skip[:, None] * u
            tl.store(dD_ptr + partial_offsets, tl.sum(dy * u, axis=1))
        if SOFTPLUS:
            ddt *= tl.sigmoid(raw)
        ddt = tl.where(mask_t[None, :], ddt, 0.0)
        if HAS_BIAS:
            tl.store(dbias_ptr + partial_offsets, tl.sum(ddt, axis=1))
        offsets = row_offsets[:, None] + offs_t[None, :]
        tl.store(du_ptr + offsets, du.to(du_ptr.dtype.element_ty), mask=mask_t[None, :])
        tl.store(ddelta_ptr + offsets, ddt.to(ddelta_ptr.dtype.element_ty), mask=mask_t[None, :])
        if HAS_Z:
            gate = tl.sigmoid(z)
            dz = dout * y * gate * (1.0 + z * (1.0 - gate))
            tl.store(dz_ptr + offsets, dz.to(dz_ptr.dtype.element_ty), mask=mask_t[None, :])

    state_tokens = group_offset + offs_n[:, None].to(tl.int64) * L + offs_t[None, :]
    mask = mask_n[:, None] & mask_t[None, :]
    if ATOMIC_BC:
        tl.atomic_add(dB_ptr + state_tokens, dB, mask=mask, sem="relaxed")
        tl.atomic_add(dC_ptr + state_tokens, dC, mask=mask, sem="relaxed")
    else:
        tl.store(dB_ptr + state_tokens, dB, mask=mask)
        tl.store(dC_ptr + state_tokens, dC, mask=mask)


# ------------------------------------------------------------------------------------------------ launch


@dataclass(frozen=True)
class _Launch:
    """Problem sizes and the tile sizes derived from them for one call."""

    batch: int
    dim: int
    length: int
    d_state: int
    groups: int
    chunk: int
    n_chunks: int
    block_d: int
    n_pad: int
    num_warps: int
    carry_rows: int
    carry_chunks: int
    channel_split: int | None

    @property
    def channels_per_group(self) -> int:
        return self.dim // self.groups

    def grid(self) -> tuple[int, int, int]:
        return (self.n_chunks, self.dim // self.block_d, self.batch)


def _largest_power_of_two_dividing(value: int, cap: int) -> int:
    power = 1
    while power * 2 <= cap and value % (power * 2) == 0:
        power *= 2
    return power


def _plan(u: Tensor, A: Tensor, groups: int, config: ScanTritonConfig) -> _Launch:
    for name in ("chunk_size", "block_d", "carry_block_rows", "carry_block_chunks"):
        value = getattr(config, name)
        if value < 1 or value & (value - 1):
            raise ValueError(f"ScanTritonConfig.{name} must be a power of two, got {value}")
    batch, dim, length = u.shape
    if length == 0 or batch == 0:
        raise ValueError(f"selective_scan_triton: empty input, u has shape {tuple(u.shape)}")
    d_state = A.shape[1]
    chunk = min(config.chunk_size, max(16, triton.next_power_of_2(length)))  # no scans over 1-element axes
    n_chunks = triton.cdiv(length, chunk)
    block_d = _largest_power_of_two_dividing(dim // groups, config.block_d)
    n_pad = triton.next_power_of_2(d_state)
    num_warps = config.num_warps or max(1, min(8, block_d * n_pad * chunk // 512))
    blocks = dim // groups // block_d
    if config.channel_split is not None and (config.channel_split < 1 or blocks % config.channel_split):
        raise ValueError(
            f"ScanTritonConfig.channel_split={config.channel_split} must divide the {blocks} channel blocks per group"
        )
    return _Launch(
        batch, dim, length, d_state, groups, chunk, n_chunks, block_d, n_pad, num_warps,
        config.carry_block_rows, min(config.carry_block_chunks, triton.next_power_of_2(n_chunks)),
        config.channel_split,
    )  # fmt: skip


def _run_carry(plan: _Launch, decay: Tensor, value: Tensor, reverse: bool) -> None:
    rows = plan.batch * plan.dim * plan.d_state
    _carry_kernel[(triton.cdiv(rows, plan.carry_rows),)](
        decay, value, rows, plan.dim * plan.d_state, plan.n_chunks,
        REVERSE=reverse, BLOCK_R=plan.carry_rows, BLOCK_K=plan.carry_chunks, num_warps=4,
    )  # fmt: skip


def _chunk_buffers(plan: _Launch, like: Tensor) -> tuple[Tensor, Tensor]:
    shape = (plan.batch, plan.n_chunks, plan.dim, plan.d_state)
    return like.new_empty(shape, dtype=torch.float32), like.new_empty(shape, dtype=torch.float32)


def _channel_split(plan: _Launch, device: torch.device) -> int:
    """How many programs share a group's channels: the requested number, or enough to give each SM ~4."""
    if plan.channel_split is not None:
        return plan.channel_split
    blocks = plan.channels_per_group // plan.block_d
    target = 4 * torch.cuda.get_device_properties(device).multi_processor_count if device.type == "cuda" else 1
    programs = plan.n_chunks * plan.groups * plan.batch
    split = 1
    while programs * split < target and blocks % (split * 2) == 0:
        split *= 2
    return split


def _forward(u, delta, A, B, C, D, z, delta_bias, softplus: bool, plan: _Launch) -> tuple[Tensor, Tensor]:
    """(out, chunk start states)."""
    decay, starts = _chunk_buffers(plan, u)
    sizes = (plan.length, plan.dim, plan.d_state, plan.channels_per_group, plan.groups, plan.n_chunks)
    tiles = dict(CHUNK=plan.chunk, BLOCK_D=plan.block_d, N_PAD=plan.n_pad, num_warps=plan.num_warps)
    flags = dict(HAS_BIAS=delta_bias is not None, SOFTPLUS=softplus)
    bias = delta_bias if delta_bias is not None else u  # unused placeholder pointers
    _forward_summary_kernel[plan.grid()](u, delta, A, B, bias, decay, starts, *sizes, **flags, **tiles)
    _run_carry(plan, decay, starts, reverse=False)
    del decay
    out = torch.empty_like(u)
    _forward_output_kernel[plan.grid()](
        u, delta, A, B, C, D if D is not None else u, z if z is not None else u, bias, starts, out, *sizes,
        HAS_D=D is not None, HAS_Z=z is not None, **flags, **tiles,
    )  # fmt: skip
    return out, starts


def _backward(dout, u, delta, A, B, C, D, z, delta_bias, softplus: bool, starts: Tensor, plan: _Launch):
    """Gradients of (u, delta, A, B, C, D, z, delta_bias); float32 reductions, cast to the inputs' dtypes."""
    sizes = (plan.length, plan.dim, plan.d_state, plan.channels_per_group, plan.groups, plan.n_chunks)
    tiles = dict(CHUNK=plan.chunk, BLOCK_D=plan.block_d, N_PAD=plan.n_pad, num_warps=plan.num_warps)
    flags = dict(HAS_BIAS=delta_bias is not None, SOFTPLUS=softplus)
    bias = delta_bias if delta_bias is not None else u
    gate = z if z is not None else u
    decay, adjoints = _chunk_buffers(plan, u)
    _backward_summary_kernel[plan.grid()](
        dout, gate, delta, A, C, bias, decay, adjoints, *sizes, HAS_Z=z is not None, **flags, **tiles
    )
    _run_carry(plan, decay, adjoints, reverse=True)
    del decay

    split = _channel_split(plan, u.device)
    du = torch.empty_like(u)
    ddelta = torch.empty_like(delta)
    dz = torch.empty_like(z) if z is not None else None
    dA = u.new_empty((plan.batch, plan.n_chunks, plan.dim, plan.d_state), dtype=torch.float32)
    dD = u.new_empty((plan.batch, plan.n_chunks, plan.dim), dtype=torch.float32) if D is not None else None
    dbias = u.new_empty((plan.batch, plan.n_chunks, plan.dim), dtype=torch.float32) if delta_bias is not None else None
    new_bc = torch.zeros if split > 1 else torch.empty
    dB = new_bc(B.shape, dtype=torch.float32, device=u.device)
    dC = new_bc(C.shape, dtype=torch.float32, device=u.device)
    placeholder = dA
    _backward_gradients_kernel[(plan.n_chunks, plan.groups * split, plan.batch)](
        u, delta, A, B, C, D if D is not None else u, gate, bias, starts, adjoints, dout,
        du, ddelta, dz if dz is not None else placeholder, dA,
        dD if dD is not None else placeholder, dbias if dbias is not None else placeholder, dB, dC,
        *sizes, split, plan.channels_per_group // plan.block_d // split,
        HAS_D=D is not None, HAS_Z=z is not None, ATOMIC_BC=split > 1, **flags, **tiles,
    )  # fmt: skip
    return (
        du,
        ddelta,
        dA.sum(dim=(0, 1)),
        dB,
        dC,
        dD.sum(dim=(0, 1)) if dD is not None else None,
        dz,
        dbias.sum(dim=(0, 1)) if dbias is not None else None,
    )


class _SelectiveScanTriton(torch.autograd.Function):
    """Saves the inputs and the chunk start states; the backward recomputes everything else."""

    @staticmethod
    def forward(ctx, u, delta, A, B, C, D, z, delta_bias, delta_softplus, config):
        groups = validate_scan_inputs(u, delta, A, B, C, D, z, delta_bias)
        grouped_input = B.dim() == 4
        tensors = _prepare(u, delta, A, B, C, D, z, delta_bias)
        plan = _plan(u, A, groups, config)
        out, starts = _forward(*tensors, delta_softplus, plan)
        ctx.save_for_backward(*tensors, starts)
        ctx.plan = plan
        ctx.delta_softplus = delta_softplus
        ctx.grouped_input = grouped_input
        ctx.input_dtypes = [t.dtype if t is not None else None for t in (A, B, C, D, delta_bias)]
        return out

    @staticmethod
    def backward(ctx, dout):
        *tensors, starts = ctx.saved_tensors
        du, ddelta, dA, dB, dC, dD, dz, dbias = _backward(
            dout.contiguous(), *tensors, ctx.delta_softplus, starts, ctx.plan
        )
        A_dtype, B_dtype, C_dtype, D_dtype, bias_dtype = ctx.input_dtypes
        if not ctx.grouped_input:
            dB, dC = dB.squeeze(1), dC.squeeze(1)
        return (
            du,
            ddelta,
            dA.to(A_dtype),
            dB.to(B_dtype),
            dC.to(C_dtype),
            dD.to(D_dtype) if dD is not None else None,
            dz,
            dbias.to(bias_dtype) if dbias is not None else None,
            None,
            None,
        )


def _prepare(u, delta, A, B, C, D, z, delta_bias) -> tuple:
    """Contiguous tensors, B and C as (batch, G, N, L), A, D and delta_bias as float32."""
    as_groups = lambda t: (t.unsqueeze(1) if t.dim() == 3 else t).contiguous()  # noqa: E731
    as_float = lambda t: t.float().contiguous() if t is not None else None  # noqa: E731
    return (
        u.contiguous(),
        delta.contiguous(),
        as_float(A),
        as_groups(B),
        as_groups(C),
        as_float(D),
        z.contiguous() if z is not None else None,
        as_float(delta_bias),
    )


def selective_scan_triton(
    u: Tensor,
    delta: Tensor,
    A: Tensor,
    B: Tensor,
    C: Tensor,
    D: Tensor | None = None,
    z: Tensor | None = None,
    delta_bias: Tensor | None = None,
    delta_softplus: bool = False,
    *,
    config: ScanTritonConfig | None = None,
) -> Tensor:
    """The selective scan on CUDA tensors (or on the CPU under TRITON_INTERPRET=1), differentiable.

    >>> y = selective_scan_triton(u, delta, A, B, C, D, z=z, delta_bias=bias, delta_softplus=True)
    >>> y.float().sum().backward()
    """
    if A.is_complex():
        raise ValueError("selective_scan_triton: A must be real; complex A is not supported")
    if u.device.type != "cuda" and not _INTERPRETED:
        raise ValueError(
            f"selective_scan_triton needs CUDA tensors, got {u.device.type}; on the CPU use the torch backend "
            "(or set TRITON_INTERPRET=1 before this module is imported, for testing)"
        )
    return _SelectiveScanTriton.apply(u, delta, A, B, C, D, z, delta_bias, delta_softplus, config or DEFAULT_CONFIG)
