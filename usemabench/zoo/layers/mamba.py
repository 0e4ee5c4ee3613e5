"""The Mamba block (Gu & Dao, "Mamba: Linear-Time Sequence Modeling with Selective State Spaces", 2023) in
pure PyTorch around `selective_scan`, with the semantics, parameter names and initialisation of mamba-ssm's
`mamba_ssm.modules.mamba_simple.Mamba` (state-spaces/mamba), so its state dicts load unchanged.

in_proj -> (x, z); x -> causal depthwise conv1d (d_conv) -> SiLU -> x_proj -> (dt, B, C); dt -> dt_proj;
y = selective_scan(x, dt, A = -exp(A_log), B, C, D, z, delta_bias = dt_proj.bias, softplus) -> out_proj.

The block computes in float32 even under autocast: U-Mamba does so because its Mamba layers produced NaNs
in float16 (a known trap). The dtype that ran is kept in `compute_dtype`, the scan backend in `scan_backend_used`.
"""

from __future__ import annotations

import contextlib
import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from usemabench.zoo.layers.counting import is_counting
from usemabench.zoo.layers.scan import last_backend_used, selective_scan

_AUTOCAST_DEVICES = ("cpu", "cuda", "xpu", "mps")


def autocast_disabled(device_type: str) -> contextlib.AbstractContextManager:
    """Autocast off for `device_type` (a no-op on devices autocast does not know, such as meta)."""
    if device_type in _AUTOCAST_DEVICES:
        return torch.autocast(device_type=device_type, enabled=False)
    return contextlib.nullcontext()


def init_dt_projection_(
    weight: Tensor,
    bias: Tensor,
    dt_rank: int,
    dt_min: float,
    dt_max: float,
    dt_init_floor: float,
    dt_scale: float = 1.0,
) -> None:
    """mamba-ssm's dt initialisation, in place: weight ~ U(+-dt_scale / sqrt(dt_rank)), bias = softplus^-1(dt)
    with dt log-uniform in [dt_min, dt_max] (floored), so that softplus(bias) starts in that range."""
    std = dt_rank**-0.5 * dt_scale
    with torch.no_grad():
        weight.uniform_(-std, std)
        dt = torch.exp(torch.rand_like(bias) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min))
        dt = dt.clamp(min=dt_init_floor)
        bias.copy_(dt + torch.log(-torch.expm1(-dt)))  # inverse of softplus


def s4d_real_log_A(d_inner: int, d_state: int, device: torch.device | None = None) -> Tensor:
    """log of S4D-Real's A = (1, 2, ..., N) per channel; the block uses A = -exp(A_log)."""
    return torch.log(torch.arange(1, d_state + 1, dtype=torch.float32, device=device)).repeat(d_inner, 1)


class MambaLayer(nn.Module):
    """mamba-ssm's `Mamba` mixer on (batch, length, d_model) tokens.

    Args: d_model; d_state (N, 16); d_conv (causal conv width, 4); expand (d_inner = expand * d_model, 2);
    dt_rank ("auto" = ceil(d_model / 16)); dt_min/dt_max/dt_init_floor/dt_scale (dt initialisation);
    conv_bias, bias (of the conv and of the in/out projections); scan_backend ("auto", "reference",
    "torch", "triton", "cuda").

    >>> layer = MambaLayer(d_model=64)
    >>> tokens = torch.randn(2, 100, 64)
    >>> layer(tokens).shape   # torch.Size([2, 100, 64])
    """

    def __init__(
        self,
        d_model: int,
        d_state: int = 16,
        d_conv: int = 4,
        expand: int = 2,
        dt_rank: int | str = "auto",
        dt_min: float = 0.001,
        dt_max: float = 0.1,
        dt_init_floor: float = 1e-4,
        dt_scale: float = 1.0,
        conv_bias: bool = True,
        bias: bool = False,
        scan_backend: str = "auto",
    ) -> None:
        super().__init__()
        self.d_model = d_model
        self.d_state = d_state
        self.d_inner = int(expand * d_model)
        self.dt_rank = math.ceil(d_model / 16) if dt_rank == "auto" else int(dt_rank)
        self.scan_backend = scan_backend
        self.in_proj = nn.Linear(d_model, 2 * self.d_inner, bias=bias)
        self.conv1d = nn.Conv1d(
            self.d_inner, self.d_inner, d_conv, groups=self.d_inner, padding=d_conv - 1, bias=conv_bias
        )
        self.x_proj = nn.Linear(self.d_inner, self.dt_rank + 2 * d_state, bias=False)
        self.dt_proj = nn.Linear(self.dt_rank, self.d_inner, bias=True)
        init_dt_projection_(
            self.dt_proj.weight, self.dt_proj.bias, self.dt_rank, dt_min, dt_max, dt_init_floor, dt_scale
        )
        self.dt_proj.bias._no_reinit = True
        self.A_log = nn.Parameter(s4d_real_log_A(self.d_inner, d_state, self.dt_proj.weight.device))
        self.A_log._no_weight_decay = True
        self.D = nn.Parameter(torch.ones(self.d_inner, device=self.dt_proj.weight.device))
        self.D._no_weight_decay = True
        self.out_proj = nn.Linear(self.d_inner, d_model, bias=bias)
        self.compute_dtype: torch.dtype = torch.float32
        self.scan_backend_used: str | None = None

    def forward(self, hidden_states: Tensor) -> Tensor:
        """(batch, length, d_model) -> (batch, length, d_model), in the parameters' dtype (float32 normally)."""
        length = hidden_states.shape[1]
        with autocast_disabled(hidden_states.device.type):
            self.compute_dtype = self.in_proj.weight.dtype
            xz = self.in_proj(hidden_states.to(self.compute_dtype)).transpose(1, 2)  # (batch, 2 * d_inner, length)
            x, z = xz.chunk(2, dim=1)
            x = F.silu(self.conv1d(x)[..., :length])  # causal: keep the first `length` outputs
            dt, B, C = self.x_proj(x.transpose(1, 2)).split([self.dt_rank, self.d_state, self.d_state], dim=-1)
            dt = F.linear(dt, self.dt_proj.weight).transpose(1, 2)  # the bias enters the scan as delta_bias
            y = selective_scan(
                x,
                dt,
                -torch.exp(self.A_log.float()),
                B.transpose(1, 2),
                C.transpose(1, 2),
                self.D.float(),
                z=z,
                delta_bias=self.dt_proj.bias.float(),
                delta_softplus=True,
                backend=self.scan_backend,
            )
            if not is_counting():  # counting runs the backend-independent custom op
                self.scan_backend_used = last_backend_used()
            return self.out_proj(y.transpose(1, 2))
