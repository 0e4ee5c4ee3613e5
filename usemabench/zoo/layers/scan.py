"""The selective scan of Mamba (Gu & Dao, 2023): one interface, several backends.

Layout and semantics are those of mamba-ssm's `selective_scan_fn`:

    u, delta, z : (batch, dim, L)          A : (dim, N), real          D, delta_bias : (dim,)
    B, C        : (batch, N, L), or grouped (batch, G, N, L) where channel d uses group d // (dim / G)
                  (VMamba's SS2D stacks its 4 scan directions as G = 4 groups)

    delta_t <- softplus(delta_t + delta_bias)        (bias and softplus each optional)
    h_t      = exp(delta_t * A) * h_{t-1} + delta_t * B_t * u_t       h_{-1} = 0, h_t : (batch, dim, N)
    y_t      = sum_n C_t[n] * h_t[n] + D * u_t
    y       <- y * silu(z)

y is returned in u's dtype; the recurrence accumulates in float32 (float64 for float64 inputs).

Backends (`resolve_scan_backend` picks one; `last_backend_used()` names the one that ran):
- `reference`: a loop over time steps. Obviously correct, O(L) forward and backward through autograd
  (mamba-ssm's own `selective_scan_ref` has an O(L^2) backward on the CPU).
- `torch`: chunked parallel scan in pure PyTorch, the CPU default. Inside a chunk of T steps a
  Hillis-Steele scan (log2 T vectorised steps); across chunks a sequential carry of the state. A custom
  backward keeps only the chunk-start states and recomputes each chunk, so memory is O(B*D*L + B*D*T*N),
  never O(B*D*L*N).
- `triton`: `usemabench.zoo.layers.scan_triton.selective_scan_triton` (same signature), for CUDA tensors
  (or on the CPU under `TRITON_INTERPRET=1`).
- `cuda`: mamba-ssm's compiled kernel, when `mamba_ssm` imports (it raises without its CUDA extension).

FLOP counting: under `counting.counting_mode()` the scan goes through the custom ops
    usemabench::selective_scan(Tensor u, Tensor delta, Tensor A, Tensor B, Tensor C, Tensor? D,
        Tensor? z, Tensor? delta_bias, bool delta_softplus) -> Tensor
    usemabench::selective_scan_backward(Tensor grad_y, <the same inputs>) -> Tensor[]
        (gradients of u, delta, A, B, C, then of D, z, delta_bias for those given)
which have fake (meta) implementations, so counts work on the meta device and do not depend on the
backend. The cost convention is mamba-ssm's (state-spaces/mamba issue #110, as used by VMamba's fvcore
handles): 9*B*L*D*N multiply-accumulate equivalents, plus B*D*L for D and for z (`selective_scan_macs`).
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import os
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from usemabench.zoo.layers.counting import is_counting

BACKENDS = ("reference", "torch", "triton", "cuda")

_last_backend: str | None = None


def validate_scan_inputs(
    u: Tensor,
    delta: Tensor,
    A: Tensor,
    B: Tensor,
    C: Tensor,
    D: Tensor | None = None,
    z: Tensor | None = None,
    delta_bias: Tensor | None = None,
) -> int:
    """Check shapes against the layout above and return the number of B/C groups."""
    if u.dim() != 3:
        raise ValueError(f"selective_scan: u must be (batch, dim, L), got shape {tuple(u.shape)}")
    batch, dim, length = u.shape
    for name, tensor in (("delta", delta), ("z", z)):
        if tensor is not None and tensor.shape != u.shape:
            raise ValueError(f"selective_scan: {name} must have u's shape {tuple(u.shape)}, got {tuple(tensor.shape)}")
    if A.is_complex() or A.dim() != 2 or A.shape[0] != dim:
        raise ValueError(f"selective_scan: A must be real (dim={dim}, N), got {A.dtype} {tuple(A.shape)}")
    d_state = A.shape[1]
    groups = None
    for name, tensor in (("B", B), ("C", C)):
        if tensor.dim() == 3 and tensor.shape == (batch, d_state, length):
            this_groups = 1
        elif tensor.dim() == 4 and tensor.shape[0] == batch and tensor.shape[2:] == (d_state, length):
            this_groups = tensor.shape[1]
        else:
            raise ValueError(
                f"selective_scan: {name} must be (batch={batch}, N={d_state}, L={length}) or "
                f"(batch, groups, N, L), got {tuple(tensor.shape)}"
            )
        if groups is not None and this_groups != groups:
            raise ValueError(f"selective_scan: B has {groups} groups but C has {this_groups}")
        groups = this_groups
    if dim % groups:
        raise ValueError(f"selective_scan: dim={dim} is not divisible by the {groups} groups of B and C")
    for name, tensor in (("D", D), ("delta_bias", delta_bias)):
        if tensor is not None and tensor.shape != (dim,):
            raise ValueError(f"selective_scan: {name} must be (dim={dim},), got {tuple(tensor.shape)}")
    return groups


def _compute_dtype(u: Tensor) -> torch.dtype:
    """float32 accumulation, or float64 when the inputs are float64."""
    return torch.promote_types(u.dtype, torch.float32)


def _effective_delta(delta: Tensor, delta_bias: Tensor | None, delta_softplus: bool, dtype: torch.dtype) -> Tensor:
    delta = delta.to(dtype)
    if delta_bias is not None:
        delta = delta + delta_bias.to(dtype)[:, None]
    return F.softplus(delta) if delta_softplus else delta


def _skip_and_gate(y: Tensor, u: Tensor, D: Tensor | None, z: Tensor | None, out_dtype: torch.dtype) -> Tensor:
    """y + D*u, then gating by silu(z), then the cast back to u's dtype."""
    if D is not None:
        y = y + D.to(y.dtype)[:, None] * u.to(y.dtype)
    if z is not None:
        y = y * F.silu(z.to(y.dtype))
    return y.to(out_dtype)


def _as_groups(B: Tensor) -> Tensor:
    """(batch, N, L) -> (batch, 1, N, L); grouped inputs unchanged."""
    return B.unsqueeze(1) if B.dim() == 3 else B


# --------------------------------------------------------------------------------------------- reference


def selective_scan_reference(
    u: Tensor,
    delta: Tensor,
    A: Tensor,
    B: Tensor,
    C: Tensor,
    D: Tensor | None = None,
    z: Tensor | None = None,
    delta_bias: Tensor | None = None,
    delta_softplus: bool = False,
) -> Tensor:
    """The recurrence step by step (the plain definition the other backends are tested against)."""
    validate_scan_inputs(u, delta, A, B, C, D, z, delta_bias)
    dtype = _compute_dtype(u)
    dim = u.shape[1]
    delta = _effective_delta(delta, delta_bias, delta_softplus, dtype)
    B = _as_groups(B)
    C = _as_groups(C)
    # Each channel's own copy of its group's B and C: (batch, dim, N, L).
    B = B.to(dtype).repeat_interleave(dim // B.shape[1], dim=1)
    C = C.to(dtype).repeat_interleave(dim // C.shape[1], dim=1)
    A = A.to(dtype)
    state = u.new_zeros(u.shape[0], dim, A.shape[1], dtype=dtype)
    outputs = []
    for u_t, delta_t, B_t, C_t in zip(u.to(dtype).unbind(-1), delta.unbind(-1), B.unbind(-1), C.unbind(-1)):
        state = torch.exp(delta_t[..., None] * A) * state + (delta_t * u_t)[..., None] * B_t
        outputs.append((state * C_t).sum(-1))
    return _skip_and_gate(torch.stack(outputs, dim=-1), u, D, z, u.dtype)


# ------------------------------------------------------------------------------------------------- torch


# Decay products below this are set to 0: their terms are far below float32 (and float64) resolution
# next to the O(1) ones, and left alone they become subnormal numbers, which slow CPU arithmetic ~100x.
_NEGLIGIBLE_DECAY = 1e-30


def _decay(delta: Tensor, A: Tensor) -> Tensor:
    """exp(delta_t * A) for one chunk: (batch, G, Dg, T) x (G, Dg, N) -> (batch, G, Dg, T, N)."""
    return F.threshold(torch.exp(delta[..., None] * A[:, :, None]), _NEGLIGIBLE_DECAY, 0.0)


def _linear_scan(decay: Tensor, update: Tensor, initial: Tensor, reverse: bool = False) -> Tensor:
    """All h_t = decay_t * h_{t-1} + update_t along dim -2, h_{-1} = initial (reverse: h_{t+1} feeds h_t).

    Hillis-Steele: after the step with stride s, position t holds the recurrence over its last 2s inputs.
    """
    decay = decay.clone()
    update = update.clone()
    first = -1 if reverse else 0
    update[..., first, :] += decay[..., first, :] * initial
    length = update.shape[-2]
    stride = 1
    while stride < length:
        # `target` positions combine with the `source` positions `stride` steps before them (after, in reverse).
        later, earlier = slice(stride, None), slice(None, -stride)
        target, source = (earlier, later) if reverse else (later, earlier)
        # Right-hand sides are evaluated before the writes, so each step reads the previous step's values.
        update[..., target, :] += decay[..., target, :] * update[..., source, :]
        if 2 * stride < length:
            decay[..., target, :] = F.threshold(decay[..., target, :] * decay[..., source, :], _NEGLIGIBLE_DECAY, 0.0)
        stride *= 2
    return update


def _scan_chunks(u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor, chunk_size: int) -> tuple[Tensor, Tensor]:
    """y_t = C_t . h_t chunk by chunk; returns y and the state entering each chunk (for the backward).

    Grouped layouts: u, delta (batch, G, Dg, L); A (G, Dg, N); B, C (batch, G, L, N); delta and A in the
    accumulation dtype.
    """
    dtype = delta.dtype
    batch, groups, group_dim, length = u.shape
    state = u.new_zeros(batch, groups, group_dim, A.shape[-1], dtype=dtype)
    y = u.new_empty(u.shape, dtype=dtype)
    chunk_states = []
    for start in range(0, length, chunk_size):
        steps = slice(start, start + chunk_size)
        chunk_states.append(state)
        delta_c = delta[..., steps]
        update = (delta_c * u[..., steps].to(dtype))[..., None] * B[:, :, None, steps].to(dtype)
        states = _linear_scan(_decay(delta_c, A), update, state)
        y[..., steps] = torch.einsum("bgdtn,bgtn->bgdt", states, C[:, :, steps].to(dtype))
        state = states[..., -1, :].clone()  # a view would keep every chunk's states alive
    return y, torch.stack(chunk_states, dim=-2)


def _scan_chunks_backward(
    grad_y: Tensor, u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor, chunk_states: Tensor, chunk_size: int
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Gradients of `_scan_chunks` wrt u, delta, A, B, C (accumulation dtype), chunks in reverse, each recomputed."""
    dtype = delta.dtype
    grad_u = torch.empty_like(delta)
    grad_delta = torch.empty_like(delta)
    grad_A = torch.zeros_like(A)
    grad_B = B.new_empty(B.shape, dtype=dtype)
    grad_C = C.new_empty(C.shape, dtype=dtype)
    carry = torch.zeros_like(chunk_states[..., 0, :])  # dL/dh at the chunk's end, from the chunks after it
    starts = range(0, u.shape[-1], chunk_size)
    for index in reversed(range(len(starts))):
        steps = slice(starts[index], starts[index] + chunk_size)
        initial = chunk_states[..., index, :]
        delta_c = delta[..., steps]
        u_c = u[..., steps].to(dtype)
        B_c = B[:, :, steps].to(dtype)
        grad_y_c = grad_y[..., steps]
        decay = _decay(delta_c, A)
        states = _linear_scan(decay, (delta_c * u_c)[..., None] * B_c[:, :, None], initial)
        # Adjoint g_t = dL/dh_t = C_t dy_t + decay_{t+1} g_{t+1}: a reverse scan of the same form.
        next_decay = torch.cat([decay[..., 1:, :], torch.ones_like(decay[..., :1, :])], dim=-2)
        adjoint = _linear_scan(next_decay, grad_y_c[..., None] * C[:, :, None, steps].to(dtype), carry, reverse=True)
        previous_states = torch.cat([initial[..., None, :], states[..., :-1, :]], dim=-2)
        grad_log_decay = adjoint * previous_states * decay  # dL/d(delta_t * A)
        adjoint_B = torch.einsum("bgdtn,bgtn->bgdt", adjoint, B_c)
        grad_u[..., steps] = adjoint_B * delta_c
        grad_delta[..., steps] = adjoint_B * u_c + torch.einsum("bgdtn,gdn->bgdt", grad_log_decay, A)
        grad_A += torch.einsum("bgdtn,bgdt->gdn", grad_log_decay, delta_c)
        grad_B[:, :, steps] = torch.einsum("bgdtn,bgdt->bgtn", adjoint, delta_c * u_c)
        grad_C[:, :, steps] = torch.einsum("bgdtn,bgdt->bgtn", states, grad_y_c)
        carry = decay[..., 0, :] * adjoint[..., 0, :]
    return grad_u, grad_delta, grad_A, grad_B, grad_C


class _Layout:
    """The inputs viewed in the grouped layout of `_scan_chunks`, with delta's bias and softplus applied."""

    def __init__(self, u, delta, A, B, C, delta_bias, delta_softplus) -> None:
        groups = _as_groups(B).shape[1]
        self.dtype = _compute_dtype(u)
        batch, dim, length = u.shape
        self.grouped = (batch, groups, dim // groups, length)
        self.delta_pre = delta.to(self.dtype)
        if delta_bias is not None:
            self.delta_pre = self.delta_pre + delta_bias.to(self.dtype)[:, None]
        delta_eff = F.softplus(self.delta_pre) if delta_softplus else self.delta_pre
        self.args = (
            u.reshape(self.grouped),
            delta_eff.reshape(self.grouped),
            A.to(self.dtype).reshape(groups, dim // groups, -1),
            _as_groups(B).transpose(-1, -2),
            _as_groups(C).transpose(-1, -2),
        )


def _torch_forward(u, delta, A, B, C, D, z, delta_bias, delta_softplus, chunk_size) -> tuple[Tensor, Tensor, Tensor]:
    """(y in u's dtype, the scan part C_t . h_t, the chunk-start states)."""
    layout = _Layout(u, delta, A, B, C, delta_bias, delta_softplus)
    scanned, chunk_states = _scan_chunks(*layout.args, chunk_size)
    scanned = scanned.reshape(u.shape)
    return _skip_and_gate(scanned, u, D, z, u.dtype), scanned, chunk_states


def _torch_backward(
    grad_y, u, delta, A, B, C, D, z, delta_bias, delta_softplus, chunk_size, scanned=None, chunk_states=None
) -> list[Tensor | None]:
    """Gradients wrt (u, delta, A, B, C, D, z, delta_bias), None for absent inputs; recomputes what is not given."""
    layout = _Layout(u, delta, A, B, C, delta_bias, delta_softplus)
    if chunk_states is None:
        scanned, chunk_states = _scan_chunks(*layout.args, chunk_size)
        scanned = scanned.reshape(u.shape)
    dtype = layout.dtype
    grad = grad_y.to(dtype)
    u_ = u.to(dtype)
    grad_D = grad_z = grad_bias = None
    if z is not None:
        z_ = z.to(dtype)
        gate = torch.sigmoid(z_)
        ungated = scanned if D is None else scanned + D.to(dtype)[:, None] * u_
        grad_z = grad * ungated * gate * (1 + z_ * (1 - gate))  # d silu(z)/dz = s(z) (1 + z (1 - s(z)))
        grad = grad * z_ * gate
    grad_u, grad_delta, grad_A, grad_B, grad_C = _scan_chunks_backward(
        grad.reshape(layout.grouped), *layout.args, chunk_states, chunk_size
    )
    grad_u = grad_u.reshape(u.shape)
    grad_delta = grad_delta.reshape(u.shape)
    if D is not None:
        grad_D = (grad * u_).sum((0, 2))
        grad_u = grad_u + grad * D.to(dtype)[:, None]
    if delta_softplus:
        grad_delta = grad_delta * torch.sigmoid(layout.delta_pre)
    if delta_bias is not None:
        grad_bias = grad_delta.sum((0, 2))
    grads = (grad_u, grad_delta, grad_A.reshape(A.shape), grad_B.transpose(-1, -2).reshape(B.shape),
             grad_C.transpose(-1, -2).reshape(C.shape), grad_D, grad_z, grad_bias)
    inputs = (u, delta, A, B, C, D, z, delta_bias)
    return [None if g is None else g.to(x.dtype) for g, x in zip(grads, inputs)]


class _TorchScan(torch.autograd.Function):
    """Autograd around `_torch_forward`: saves the inputs and one state per chunk."""

    @staticmethod
    def forward(ctx, u, delta, A, B, C, D, z, delta_bias, delta_softplus, chunk_size):
        y, scanned, chunk_states = _torch_forward(u, delta, A, B, C, D, z, delta_bias, delta_softplus, chunk_size)
        # The scan part is needed again only for the gradient of z.
        ctx.save_for_backward(u, delta, A, B, C, D, z, delta_bias, None if z is None else scanned, chunk_states)
        ctx.delta_softplus = delta_softplus
        ctx.chunk_size = chunk_size
        return y

    @staticmethod
    def backward(ctx, grad_y):
        *inputs, scanned, chunk_states = ctx.saved_tensors
        grads = _torch_backward(grad_y, *inputs, ctx.delta_softplus, ctx.chunk_size, scanned, chunk_states)
        return (*grads, None, None)


def default_chunk_size(batch: int, dim: int, d_state: int, device: torch.device) -> int:
    """A power of two keeping one chunk's (batch, dim, T, N) tensors near a size that suits the device.

    On the CPU short chunks win (the scan's log2 T factor dominates; measured best at T = 16-32); on a GPU long
    chunks win (fewer kernel launches), within a memory budget.
    """
    budget = 2**24 if device.type == "cuda" else 2**16  # elements per chunk tensor
    size = budget // max(batch * dim * d_state, 1)
    return 1 << min(max(size.bit_length() - 1, 4), 11)  # between 16 and 2048 steps


def _chunk_size_for(u: Tensor, A: Tensor, chunk_size: int | None) -> int:
    if chunk_size is None:
        return default_chunk_size(u.shape[0], u.shape[1], A.shape[1], u.device)
    if chunk_size < 1:
        raise ValueError(f"selective_scan_torch: chunk_size must be >= 1, got {chunk_size}")
    return chunk_size


def selective_scan_torch(
    u: Tensor,
    delta: Tensor,
    A: Tensor,
    B: Tensor,
    C: Tensor,
    D: Tensor | None = None,
    z: Tensor | None = None,
    delta_bias: Tensor | None = None,
    delta_softplus: bool = False,
    chunk_size: int | None = None,
) -> Tensor:
    """Chunked parallel scan in pure PyTorch (any device) with an explicit backward; see the module docstring."""
    validate_scan_inputs(u, delta, A, B, C, D, z, delta_bias)
    chunk_size = _chunk_size_for(u, A, chunk_size)
    return _TorchScan.apply(u, delta, A, B, C, D, z, delta_bias, delta_softplus, chunk_size)


# ------------------------------------------------------------------------------------- triton and cuda


@functools.cache
def _import_problem(module_name: str) -> str | None:
    """Why `module_name` cannot be imported (None when it can). Imported only when a backend is requested."""
    if importlib.util.find_spec(module_name.split(".")[0]) is None:
        return f"{module_name.split('.')[0]} is not installed"
    try:
        importlib.import_module(module_name)
    except Exception as error:  # mamba_ssm raises ImportError or OSError without its compiled extension
        return f"importing {module_name} failed: {type(error).__name__}: {error}"
    return None


def backend_problem(backend: str, device: torch.device | str) -> str | None:
    """Why `backend` cannot run on `device`, or None when it can."""
    device = torch.device(device)
    if backend not in BACKENDS:
        raise ValueError(f"unknown selective-scan backend {backend!r}; choose auto or one of {', '.join(BACKENDS)}")
    if backend in ("reference", "torch"):
        return None
    if backend == "cuda":
        if device.type != "cuda":
            return f"mamba-ssm's kernel needs CUDA tensors, got {device.type}"
        return _import_problem("mamba_ssm.ops.selective_scan_interface")
    if device.type != "cuda" and os.environ.get("TRITON_INTERPRET") != "1":
        return f"the Triton kernel needs CUDA tensors (or TRITON_INTERPRET=1 on the CPU), got {device.type}"
    return _import_problem("triton") or _import_problem("usemabench.zoo.layers.scan_triton")


def resolve_scan_backend(requested: str, device: torch.device | str) -> str:
    """`auto` -> cuda (mamba-ssm) if it runs here, else triton on CUDA, else torch; a named backend is checked."""
    device = torch.device(device)
    if requested == "auto":
        if device.type == "cuda":
            for candidate in ("cuda", "triton"):
                if backend_problem(candidate, device) is None:
                    return candidate
        return "torch"
    problem = backend_problem(requested, device)
    if problem is not None:
        raise RuntimeError(f"selective-scan backend {requested!r} cannot run: {problem}")
    return requested


def _selective_scan_triton(*args, **kwargs) -> Tensor:
    from usemabench.zoo.layers.scan_triton import selective_scan_triton

    return selective_scan_triton(*args, **kwargs)


def _selective_scan_cuda(*args, **kwargs) -> Tensor:
    from mamba_ssm.ops.selective_scan_interface import selective_scan_fn

    return selective_scan_fn(*args, **kwargs)


_BACKEND_FUNCTIONS: dict[str, Callable[..., Tensor]] = {
    "reference": selective_scan_reference,
    "torch": selective_scan_torch,
    "triton": _selective_scan_triton,
    "cuda": _selective_scan_cuda,
}


# ------------------------------------------------------------------------------ custom ops for counting


@torch.library.custom_op("usemabench::selective_scan", mutates_args=())
def _selective_scan_op(
    u: Tensor,
    delta: Tensor,
    A: Tensor,
    B: Tensor,
    C: Tensor,
    D: Tensor | None,
    z: Tensor | None,
    delta_bias: Tensor | None,
    delta_softplus: bool,
) -> Tensor:
    return selective_scan_torch(u, delta, A, B, C, D, z, delta_bias, delta_softplus).contiguous()


@_selective_scan_op.register_fake
def _(u, delta, A, B, C, D, z, delta_bias, delta_softplus):
    return u.new_empty(u.shape)


@torch.library.custom_op("usemabench::selective_scan_backward", mutates_args=())
def _selective_scan_backward_op(
    grad_y: Tensor,
    u: Tensor,
    delta: Tensor,
    A: Tensor,
    B: Tensor,
    C: Tensor,
    D: Tensor | None,
    z: Tensor | None,
    delta_bias: Tensor | None,
    delta_softplus: bool,
) -> list[Tensor]:
    chunk_size = _chunk_size_for(u, A, None)
    grads = _torch_backward(grad_y, u, delta, A, B, C, D, z, delta_bias, delta_softplus, chunk_size)
    return [grad.contiguous() for grad in grads if grad is not None]


@_selective_scan_backward_op.register_fake
def _(grad_y, u, delta, A, B, C, D, z, delta_bias, delta_softplus):
    return [tensor.new_empty(tensor.shape) for tensor in (u, delta, A, B, C, D, z, delta_bias) if tensor is not None]


def _setup_context(ctx, inputs: tuple, output: Tensor) -> None:
    *tensors, delta_softplus = inputs
    ctx.present = [tensor is not None for tensor in tensors]
    ctx.delta_softplus = delta_softplus
    ctx.save_for_backward(*(tensor for tensor in tensors if tensor is not None))


def _backward(ctx, grad_y: Tensor) -> tuple[Tensor | None, ...]:
    saved = iter(ctx.saved_tensors)
    tensors = [next(saved) if present else None for present in ctx.present]
    grads = iter(torch.ops.usemabench.selective_scan_backward(grad_y, *tensors, ctx.delta_softplus))
    return (*(next(grads) if present else None for present in ctx.present), None)


torch.library.register_autograd("usemabench::selective_scan", _backward, setup_context=_setup_context)


def selective_scan_macs(
    batch: int, dim: int, length: int, d_state: int, with_D: bool = True, with_z: bool = False
) -> int:
    """Forward cost in multiply-accumulate equivalents, mamba-ssm's convention (see the module docstring)."""
    return 9 * batch * length * dim * d_state + batch * dim * length * (int(with_D) + int(with_z))


# ---------------------------------------------------------------------------------------------- dispatch


def selective_scan(
    u: Tensor,
    delta: Tensor,
    A: Tensor,
    B: Tensor,
    C: Tensor,
    D: Tensor | None = None,
    z: Tensor | None = None,
    delta_bias: Tensor | None = None,
    delta_softplus: bool = False,
    backend: str = "auto",
) -> Tensor:
    """The selective scan with the backend `resolve_scan_backend(backend, u.device)` picks.

    >>> y = selective_scan(u, delta, A, B, C, D, z=z, delta_bias=bias, delta_softplus=True)
    >>> last_backend_used()
    'torch'
    """
    validate_scan_inputs(u, delta, A, B, C, D, z, delta_bias)
    if is_counting():
        return torch.ops.usemabench.selective_scan(u, delta, A, B, C, D, z, delta_bias, delta_softplus)
    global _last_backend
    name = resolve_scan_backend(backend, u.device)
    _last_backend = name
    return _BACKEND_FUNCTIONS[name](u, delta, A, B, C, D, z=z, delta_bias=delta_bias, delta_softplus=delta_softplus)


def last_backend_used() -> str | None:
    """The backend of the most recent `selective_scan` call in this process (None before any), for records."""
    return _last_backend
