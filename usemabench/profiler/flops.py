"""Counting MACs and FLOPs of a model, on the `meta` device, with formulas for what PyTorch misses.

Built on `torch.utils.flop_counter.FlopCounterMode`, entered inside `counting_mode()` so that SEMA and the
selective scan run as custom ops with fake kernels and the formulas registered here.

Convention (one for every op, every device):
- 1 MAC = one multiply plus one add; FLOPs = 2 * MACs. Matmul, conv and attention are counted exactly
  (dense, mask and causality ignored). Every formula returns FLOPs, and `macs = flops // 2`.
- Elementwise ops, normalisations, softmax, pooling, interpolation and reductions count 0, as in
  FlopCounterMode and in most published tables: they are memory-bound and a few % of a conv net's MACs.
  The one exception is the global mean inside SEMA: it is part of the operator's definition, counted as
  one MAC per element of V.
- Training counts forward plus backward of a loss on the outputs; the optimizer step counts 0. A conv's
  or matmul's backward repeats each forward multiply once per gradient it computes (input, weight).
  Backward of attention counts 2x its forward (the gradient matmuls, no recomputation), the same on every
  device: the counts describe the model, not the kernel that ran (flash kernels recompute the scores, and
  PyTorch's own CUDA formulas count that; we override them). SEMA's backward: 2x its window part + the mean.
- SEMA (`usemabench::sema_attention`): B * heads * (2 * w^2 * d per token over the padded windows + d per
  token for the mean), the formula of `sema.sema_attention_macs`.
- Selective scan (`usemabench::selective_scan`): 9 * B * L * D * N MAC-equivalents, + B * L * D each for
  D*u and the z gate when present (mamba-ssm's convention, `scan.selective_scan_macs`); backward 2x forward.

Counting runs on `meta` (any resolution costs nothing); a model that cannot run there (an op without a
meta kernel, data-dependent Python control flow) is counted on `fallback_device` and the reason returned.

A tripwire (`UncountedOpTripwire`) stops the count when an op that moves a large tensor has no formula
and is not a known zero-cost op (elementwise, view, norm, reduction, data movement), so that a new
attention or scan kernel can never be counted silently as 0.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import torch
from torch import nn
from torch.func import functional_call
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode, register_flop_formula

from usemabench.zoo.layers import scan, sema  # define the custom ops usemabench::sema_attention, ::selective_scan
from usemabench.zoo.layers.counting import counting_mode

aten = torch.ops.aten

MODES = ("infer", "train")
FLOP_CONVENTION = (
    "FLOPs = 2 x MACs; matmul/conv/attention dense; elementwise, norm, softmax, pooling, interpolation and "
    "reductions 0 (except SEMA's mean: 1 MAC per element); attention backward 2x forward (no recomputation); "
    "selective scan 9*B*L*D*N MACs (+B*L*D each for D, z), backward 2x forward; optimizer step 0"
)
# The tripwire ignores ops whose tensors all have fewer elements than this (bias adds, scalars, indices).
DEFAULT_TRIPWIRE_NUMEL = 1 << 15


class UncountedOpError(Exception):
    """An op that moves large tensors has no FLOP formula: the count would silently miss it.

    Not a RuntimeError on purpose: the meta-to-CPU fallback must never swallow it.
    """


# --- formulas -------------------------------------------------------------------------------------------


def attention_flops(query_shape: Sequence[int], key_shape: Sequence[int], value_shape: Sequence[int]) -> int:
    """softmax(Q K^T) V with Q (..., Lq, d), K (..., Lk, d), V (..., Lk, dv): 2 * batch * Lq * Lk * (d + dv).

    The batch is taken from Q, so grouped-query attention (fewer K/V heads) counts every query head.
    """
    *batch, query_length, head_dim = query_shape
    key_length = key_shape[-2]
    value_dim = value_shape[-1]
    return 2 * math.prod(batch) * query_length * key_length * (head_dim + value_dim)


def _sdpa_forward_flop(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    return attention_flops(query_shape, key_shape, value_shape)


def _sdpa_backward_flop(grad_out_shape, query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    # dS = dO V^T, dV = P^T dO, dQ = dS K, dK = dS^T Q: four matmuls, twice the forward's two.
    return 2 * attention_flops(query_shape, key_shape, value_shape)


def conv_macs(x_shape: Sequence[int], w_shape: Sequence[int], out_shape: Sequence[int], transposed: bool) -> int:
    """MACs of a (transposed) convolution: one per weight element per output (input, if transposed) position.

    The weight shape holds the per-group channel count, so grouped and depthwise convolutions come out right.
    """
    positions = (x_shape if transposed else out_shape)[2:]
    return x_shape[0] * math.prod(positions) * math.prod(w_shape)


def _conv_backward_flop(
    grad_out_shape, x_shape, w_shape, bias, stride, padding, dilation, transposed, output_padding, groups,
    output_mask, *, out_shape=None, **kwargs,
) -> int:
    # The input gradient and the weight gradient each repeat every multiply of the forward once.
    # PyTorch's own formula counts the weight gradient of a grouped conv `groups` times too often
    # (C_in instead of C_in / groups channels): 512x for a 512-channel depthwise conv.
    forward = conv_macs(x_shape, w_shape, grad_out_shape, transposed)
    return 2 * forward * (int(output_mask[0]) + int(output_mask[1]))


# Passed to FlopCounterMode as `custom_mapping`, overriding PyTorch's own entries for the same ops: the CPU
# fused attention kernel has no formula in PyTorch (it would count 0); the CUDA attention backward formulas
# include the flash recomputation, which the `meta` device (math path) and our convention do not; the conv
# backward formula ignores groups.
FORMULA_OVERRIDES: dict[Any, Any] = {
    aten.convolution_backward: _conv_backward_flop,
    aten._scaled_dot_product_flash_attention_for_cpu: _sdpa_forward_flop,
    aten._scaled_dot_product_flash_attention: _sdpa_forward_flop,
    aten._scaled_dot_product_efficient_attention: _sdpa_forward_flop,
    aten._scaled_dot_product_cudnn_attention: _sdpa_forward_flop,
    aten._scaled_dot_product_flash_attention_for_cpu_backward: _sdpa_backward_flop,
    aten._scaled_dot_product_flash_attention_backward: _sdpa_backward_flop,
    aten._scaled_dot_product_efficient_attention_backward: _sdpa_backward_flop,
    aten._scaled_dot_product_cudnn_attention_backward: _sdpa_backward_flop,
}


# SEMA: the op's own cost function (sema.py) is the single source of the formula.


def _sema_macs(q_shape, v_shape, height: int, width: int, window_size: int, with_mean: bool) -> tuple[int, int]:
    """(window attention MACs, mean MACs) of one `usemabench::sema_attention` call, from its arguments."""
    lead = math.prod(q_shape[:-2])
    head_dim, value_dim = q_shape[-1], v_shape[-1]
    window = sema.sema_attention_macs(lead, 1, height, width, head_dim, window_size, value_dim, with_mean=False)
    total = sema.sema_attention_macs(lead, 1, height, width, head_dim, window_size, value_dim, with_mean=with_mean)
    return window, total - window


@register_flop_formula(torch.ops.usemabench.sema_attention)
def _sema_forward_flop(
    q_shape, k_shape, v_shape, height, width, window_size, with_mean, window_major, *, out_shape=None
) -> int:
    window, mean = _sema_macs(q_shape, v_shape, height, width, window_size, with_mean)
    return 2 * (window + mean)


@register_flop_formula(torch.ops.usemabench.sema_attention_backward)
def _sema_backward_flop(
    grad_shape, q_shape, k_shape, v_shape, height, width, window_size, with_mean, window_major, *, out_shape=None
) -> int:
    # dS, dV, dQ, dK: four products the size of the forward's two; the mean's gradient spreads dO's mean
    # back over the tokens, one MAC per element of V (the convention sema.py states).
    window, mean = _sema_macs(q_shape, v_shape, height, width, window_size, with_mean)
    return 2 * (2 * window + mean)


# The selective scan: mamba-ssm's convention, as stated in scan.py (`selective_scan_macs`).


def _scan_macs(u_shape, A_shape, D_shape, z_shape) -> int:
    batch, dim, length = u_shape
    d_state = A_shape[1]
    return scan.selective_scan_macs(batch, dim, length, d_state, with_D=D_shape is not None, with_z=z_shape is not None)


@register_flop_formula(torch.ops.usemabench.selective_scan)
def _scan_forward_flop(u_shape, delta_shape, A_shape, B_shape, C_shape, D_shape, z_shape, *args, out_shape=None) -> int:
    return 2 * _scan_macs(u_shape, A_shape, D_shape, z_shape)


@register_flop_formula(torch.ops.usemabench.selective_scan_backward)
def _scan_backward_flop(
    grad_shape, u_shape, delta_shape, A_shape, B_shape, C_shape, D_shape, z_shape, *args, out_shape=None
) -> int:
    # By convention twice the forward (the adjoint scan plus the gradients of its inputs), like attention.
    return 2 * 2 * _scan_macs(u_shape, A_shape, D_shape, z_shape)


# --- the tripwire ---------------------------------------------------------------------------------------

_REDUCTION_TAG = getattr(torch.Tag, "reduction", None)

# Ops known to cost no MACs under our convention, by overload-packet name (the part after `aten.`).
_NAMED_ZERO_COST_OPS = frozenset(
    {
        # creation and data movement
        "empty", "empty_like", "empty_strided", "new_empty", "new_empty_strided", "zeros", "zeros_like",
        "new_zeros", "ones", "ones_like", "new_ones", "full", "full_like", "new_full", "fill_", "zero_",
        "arange", "linspace", "scalar_tensor", "lift_fresh", "copy_", "_to_copy", "clone", "contiguous",
        "cat", "stack", "constant_pad_nd", "reflection_pad2d", "replication_pad2d", "roll", "flip", "repeat",
        "_unsafe_view", "index", "index_select", "index_put", "index_put_", "index_add", "gather", "scatter",
        "scatter_add", "slice_scatter", "select_scatter", "slice_backward", "select_backward",
        "index_select_backward", "masked_fill", "masked_fill_", "where", "tril", "triu", "col2im", "im2col", "pixel_shuffle", "pixel_unshuffle",
        "channel_shuffle", "_unsafe_index", "_unsafe_index_put", "split_with_sizes_copy", "unbind_copy",
        # normalisation
        "native_batch_norm", "native_batch_norm_backward", "_native_batch_norm_legit",
        "_native_batch_norm_legit_no_training", "_native_batch_norm_legit_functional", "batch_norm_backward",
        "native_layer_norm", "native_layer_norm_backward", "native_group_norm", "native_group_norm_backward",
        "_fused_rms_norm", "_fused_rms_norm_backward", "cudnn_batch_norm", "cudnn_batch_norm_backward",
        "miopen_batch_norm",
        # softmax
        "_softmax", "_log_softmax", "_safe_softmax", "_softmax_backward_data", "_log_softmax_backward_data",
        # pooling and interpolation
        "max_pool2d_with_indices", "max_pool2d_with_indices_backward", "avg_pool2d", "avg_pool2d_backward",
        "_adaptive_avg_pool2d", "_adaptive_avg_pool2d_backward", "adaptive_max_pool2d",
        "adaptive_max_pool2d_backward", "upsample_nearest2d", "upsample_nearest2d_backward",
        "upsample_bilinear2d", "upsample_bilinear2d_backward", "upsample_bicubic2d",
        "upsample_bicubic2d_backward", "_upsample_nearest_exact2d", "_upsample_nearest_exact2d_backward",
        "_upsample_bicubic2d_aa", "_upsample_bicubic2d_aa_backward", "_upsample_bilinear2d_aa",
        "_upsample_bilinear2d_aa_backward", "grid_sampler_2d", "grid_sampler_2d_backward",
        # reductions not tagged as such, losses, random numbers
        "var_mean", "std_mean", "cumsum", "logsumexp", "topk", "sort", "max", "min", "argmax", "argmin",
        "nll_loss_forward", "nll_loss_backward", "nll_loss2d_forward", "nll_loss2d_backward",
        "native_dropout", "native_dropout_backward", "bernoulli", "bernoulli_", "rand", "rand_like", "randn",
        "randn_like", "randint", "uniform_", "normal_",
    }
)

# Activations by name too: which of them carry the `pointwise` tag changes between PyTorch releases
# (2.11 leaves `leaky_relu_` untagged, seen on the H100), and the tripwire must not depend on that.
_ACTIVATIONS = ("relu", "leaky_relu", "gelu", "silu", "sigmoid", "tanh", "hardtanh", "elu", "softplus", "mish",
                "hardswish", "hardsigmoid", "threshold")
ZERO_COST_OPS = _NAMED_ZERO_COST_OPS | {f"{name}{suffix}" for name in _ACTIVATIONS for suffix in ("", "_", "_backward")}


def _has_zero_cost_tags(op: torch._ops.OpOverload) -> bool:
    tags = set(op.tags)
    if torch.Tag.pointwise in tags or torch.Tag.view_copy in tags or torch.Tag.inplace_view in tags:
        return True
    return _REDUCTION_TAG is not None and _REDUCTION_TAG in tags


def _is_variant_of_pointwise(name: str) -> bool:
    """`leaky_relu_backward`, `gelu_backward`, in-place `leaky_relu_`: elementwise like the op they derive
    from, but not tagged so in every PyTorch release (2.11 leaves `leaky_relu_` untagged)."""
    if name.endswith("_backward"):
        base = name.removesuffix("_backward")
    elif name.endswith("_") and not name.endswith("__"):
        base = name.removesuffix("_")
    else:
        return False
    packet = getattr(aten, base, None)
    if packet is None:
        return False
    return any(_has_zero_cost_tags(getattr(packet, overload)) for overload in packet.overloads())


def is_zero_cost(op: torch._ops.OpOverload) -> bool:
    """True for ops our convention counts as 0: elementwise, views, reductions and the named list above."""
    name = op._overloadpacket.__name__
    return op.is_view or _has_zero_cost_tags(op) or name in ZERO_COST_OPS or _is_variant_of_pointwise(name)


def _largest_numel(values: Iterable[Any]) -> int:
    flat, _ = torch.utils._pytree.tree_flatten(list(values))
    return max((value.numel() for value in flat if isinstance(value, torch.Tensor)), default=0)


class UncountedOpTripwire(TorchDispatchMode):
    """Raise UncountedOpError when an op without a formula moves a tensor of >= `min_numel` elements.

    Enter it *outside* the FlopCounterMode: it then sees exactly the ops the counter executed after
    trying their decompositions, so an op that decomposes into counted matmuls does not trip it.
    """

    def __init__(self, formulas: Mapping[Any, Any], min_numel: int = DEFAULT_TRIPWIRE_NUMEL) -> None:
        super().__init__()
        self.formulas = formulas
        self.min_numel = min_numel

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if func._overloadpacket in self.formulas or is_zero_cost(func):
            return out
        numel = _largest_numel([args, kwargs, out])
        if numel >= self.min_numel:
            raise UncountedOpError(
                f"{func} moves a tensor of {numel} elements but has no FLOP formula, so it would be counted "
                "as 0. Register one with torch.utils.flop_counter.register_flop_formula, or, if it truly "
                "costs no MACs (data movement, elementwise), add it to usemabench.profiler.flops.ZERO_COST_OPS."
            )
        return out


# --- counting -------------------------------------------------------------------------------------------


def _loss(output: Any) -> torch.Tensor:
    """A scalar depending on every output (deep supervision returns a list); its cost is negligible."""
    outputs = output if isinstance(output, (list, tuple)) else [output]
    return sum(out.float().sum() for out in outputs)


def _tensors_on(model: nn.Module, device: str) -> dict[str, torch.Tensor]:
    """Copies of `model`'s parameters and buffers on `device` (`meta`: shapes only), same requires_grad."""
    state = {**dict(model.named_parameters()), **dict(model.named_buffers())}
    return {
        name: tensor.detach().to(device, copy=True).requires_grad_(tensor.requires_grad)
        for name, tensor in state.items()
    }


def _run_counted(
    model: nn.Module, input_shape: Sequence[int], mode: str, device: str, tripwire_numel: int
) -> FlopCounterMode:
    """Run `model` with its weights swapped for copies on `device` (the model itself is not touched)."""
    inputs = torch.randn(*input_shape, device=device)
    tensors = _tensors_on(model, device)
    counter = FlopCounterMode(display=False, custom_mapping=FORMULA_OVERRIDES)
    with counting_mode(), UncountedOpTripwire(counter.flop_registry, tripwire_numel), counter:
        if mode == "train":
            model.train()
            _loss(functional_call(model, tensors, (inputs,))).backward()
        else:
            model.eval()
            with torch.no_grad():
                functional_call(model, tensors, (inputs,))
    return counter


def count_flops(
    model: nn.Module,
    input_shape: Sequence[int],
    mode: str = "infer",
    device: str = "meta",
    fallback_device: str = "cpu",
    tripwire_numel: int = DEFAULT_TRIPWIRE_NUMEL,
) -> dict[str, Any]:
    """MACs and FLOPs of one forward (`infer`) or forward + backward (`train`) at `input_shape` (B, C, H, W).

    Returns {"macs", "flops", "by_op": {op name: FLOPs}, "device": where it was counted,
    "fallback_reason": why not on `device` (None when it was), "convention": FLOP_CONVENTION}.
    The caller's model keeps its weights, device and train/eval mode.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    was_training = {module: module.training for module in model.modules()}
    fallback_reason = None
    try:
        counter = _run_counted(model, input_shape, mode, device, tripwire_numel)
        counted_on = device
    except (NotImplementedError, RuntimeError) as error:
        if device == fallback_device:
            raise
        fallback_reason = f"{device} failed ({type(error).__name__}: {str(error).splitlines()[0][:300]})"
        counter = _run_counted(model, input_shape, mode, fallback_device, tripwire_numel)
        counted_on = fallback_device
    finally:
        for module, training in was_training.items():
            module.training = training
    by_op = {str(op): int(count) for op, count in counter.get_flop_counts().get("Global", {}).items()}
    flops = sum(by_op.values())
    return {
        "macs": flops // 2,
        "flops": flops,
        "by_op": dict(sorted(by_op.items())),
        "device": counted_on,
        "fallback_reason": fallback_reason,
        "convention": FLOP_CONVENTION,
    }
