"""The selective scan: the reference against hand-computed values, every available backend against the reference."""

from __future__ import annotations

import math

import pytest
import torch

from usemabench.zoo.layers import scan
from usemabench.zoo.layers.counting import counting_mode
from usemabench.zoo.layers.scan import (
    BACKENDS,
    backend_problem,
    last_backend_used,
    resolve_scan_backend,
    selective_scan,
    selective_scan_reference,
    selective_scan_torch,
)

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
# (dtype, rtol, atol). mamba-ssm's and the Triton kernels take float32 at most (mamba-ssm's tolerance is the one
# its own tests use for float32); the pure-PyTorch backend is checked in float64.
DTYPE_AND_TOLERANCE = {
    "torch": (torch.float64, 1e-10, 1e-10),
    "triton": (torch.float32, 2e-4, 2e-4),
    "cuda": (torch.float32, 6e-4, 2e-3),
}


def available_backends() -> list[tuple[str, str]]:
    return [
        (backend, device)
        for device in DEVICES
        for backend in BACKENDS
        if backend != "reference" and backend_problem(backend, device) is None
    ]


def make_inputs(batch=2, dim=4, length=9, d_state=3, groups=None, dtype=torch.float64, device="cpu", with_extras=True):
    generator = torch.Generator().manual_seed(length * 31 + dim)

    def rand(*shape):
        return torch.randn(*shape, generator=generator, dtype=dtype).to(device)

    def positive(*shape):  # delta (and delta + bias) must be >= 0 without softplus, or the recurrence explodes
        return torch.rand(*shape, generator=generator, dtype=dtype).to(device)

    bc_shape = (batch, d_state, length) if groups is None else (batch, groups, d_state, length)
    inputs = {
        "u": rand(batch, dim, length),
        "delta": positive(batch, dim, length),
        "A": -torch.exp(rand(dim, d_state)),
        "B": rand(*bc_shape),
        "C": rand(*bc_shape),
    }
    if with_extras:
        inputs.update(D=rand(dim), z=rand(batch, dim, length), delta_bias=0.5 * positive(dim))
    return {name: tensor.requires_grad_() for name, tensor in inputs.items()}


def run_with_gradients(function, inputs: dict, delta_softplus: bool, **kwargs):
    output = function(**inputs, delta_softplus=delta_softplus, **kwargs)
    upstream = torch.linspace(-1, 1, output.numel(), dtype=output.dtype, device=output.device).reshape(output.shape)
    gradients = torch.autograd.grad(output, list(inputs.values()), upstream)
    return output, dict(zip(inputs, gradients))


def assert_matches_reference(function, inputs, delta_softplus, rtol=1e-10, atol=1e-10, **kwargs):
    expected, expected_grads = run_with_gradients(selective_scan_reference, inputs, delta_softplus)
    actual, actual_grads = run_with_gradients(function, inputs, delta_softplus, **kwargs)
    torch.testing.assert_close(actual, expected, rtol=rtol, atol=atol)
    for name in inputs:
        torch.testing.assert_close(actual_grads[name], expected_grads[name], rtol=rtol, atol=atol, msg=name)


def test_reference_matches_hand_computed_recurrence() -> None:
    # One channel, one state: h_t = exp(delta_t * a) h_{t-1} + delta_t b_t u_t; y_t = c_t h_t + d u_t.
    u = torch.tensor([[[1.0, 2.0, 3.0]]], dtype=torch.float64)
    delta = torch.tensor([[[0.5, 1.0, 2.0]]], dtype=torch.float64)
    A = torch.tensor([[-1.0]], dtype=torch.float64)
    B = torch.ones(1, 1, 3, dtype=torch.float64)
    C = torch.full((1, 1, 3), 2.0, dtype=torch.float64)
    D = torch.tensor([0.5], dtype=torch.float64)
    h0 = 0.5
    h1 = math.exp(-1.0) * h0 + 2.0
    h2 = math.exp(-2.0) * h1 + 6.0
    expected = torch.tensor([[[2 * h0 + 0.5, 2 * h1 + 1.0, 2 * h2 + 1.5]]], dtype=torch.float64)
    torch.testing.assert_close(selective_scan_reference(u, delta, A, B, C, D), expected)


def test_reference_applies_bias_softplus_gate_and_groups_as_mamba_ssm_documents() -> None:
    # delta 0 with bias log(e - 1) gives softplus = 1; two states with a = -1, -2; y gated by silu(z);
    # two channels in two groups, each reading its own B and C.
    u = torch.tensor([[[1.0, 1.0], [2.0, 0.0]]], dtype=torch.float64)
    delta = torch.zeros(1, 2, 2, dtype=torch.float64)
    delta_bias = torch.full((2,), math.log(math.e - 1), dtype=torch.float64)
    A = torch.tensor([[-1.0, -2.0], [-1.0, -2.0]], dtype=torch.float64)
    B = torch.tensor([[[[1.0, 1.0], [1.0, 1.0]], [[1.0, 3.0], [0.0, 0.0]]]], dtype=torch.float64)  # (1, G=2, N=2, L=2)
    C = torch.ones(1, 2, 2, 2, dtype=torch.float64)
    z = torch.tensor([[[0.0, 1.0], [2.0, -1.0]]], dtype=torch.float64)
    silu = lambda value: value / (1 + math.exp(-value))  # noqa: E731
    # channel 0 (group 0): both states see b = 1. t0: h = (1, 1); t1: h = (e^-1 + 1, e^-2 + 1).
    channel0 = [2.0 * silu(0.0), (math.exp(-1) + math.exp(-2) + 2) * silu(1.0)]
    # channel 1 (group 1): state 0 sees b = 1 then 3, state 1 sees 0. t0: h0 = 2; t1: h0 = 2 e^-1 + 0.
    channel1 = [2.0 * silu(2.0), 2 * math.exp(-1) * silu(-1.0)]
    y = selective_scan_reference(u, delta, A, B, C, z=z, delta_bias=delta_bias, delta_softplus=True)
    torch.testing.assert_close(y, torch.tensor([[channel0, channel1]], dtype=torch.float64))


@pytest.mark.parametrize("length", [1, 5, 33])
@pytest.mark.parametrize("chunk_size", [1, 4, 16])
@pytest.mark.parametrize("groups", [None, 2])
def test_torch_backend_matches_reference_across_chunks(length: int, chunk_size: int, groups: int | None) -> None:
    inputs = make_inputs(length=length, groups=groups)
    assert_matches_reference(selective_scan_torch, inputs, True, chunk_size=chunk_size)


@pytest.mark.parametrize("backend,device", available_backends(), ids=lambda value: str(value))
@pytest.mark.parametrize("length", [1, 37, 100])
@pytest.mark.parametrize("groups", [None, 4])
@pytest.mark.parametrize("with_extras,delta_softplus", [(True, True), (False, False), (True, False)])
def test_backend_matches_reference(backend, device, length, groups, with_extras, delta_softplus) -> None:
    dtype, rtol, atol = DTYPE_AND_TOLERANCE[backend]
    inputs = make_inputs(dim=8, length=length, groups=groups, dtype=dtype, device=device, with_extras=with_extras)
    assert_matches_reference(selective_scan, inputs, delta_softplus, rtol, atol, backend=backend)
    assert last_backend_used() == backend


def test_torch_backend_keeps_float32_accumulation_for_bfloat16_inputs() -> None:
    inputs = {name: tensor.detach() for name, tensor in make_inputs(length=40, dtype=torch.float32).items()}
    low = {name: tensor.bfloat16() for name, tensor in inputs.items()}
    y = selective_scan_torch(**low, delta_softplus=True)
    assert y.dtype == torch.bfloat16
    expected = selective_scan_reference(**{name: tensor.float() for name, tensor in low.items()}, delta_softplus=True)
    torch.testing.assert_close(y.float(), expected, rtol=1e-2, atol=1e-2)


def test_torch_backend_saves_no_per_step_states() -> None:
    batch, dim, length, d_state, chunk = 1, 16, 256, 64, 32
    inputs = make_inputs(batch=batch, dim=dim, length=length, d_state=d_state, dtype=torch.float32)
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda tensor: saved.append(tensor.numel()) or tensor, lambda t: t):
        selective_scan_torch(**inputs, delta_softplus=True, chunk_size=chunk)
    all_states = batch * dim * length * d_state
    assert sum(saved) < all_states / 2, f"saved {sum(saved)} elements, the per-step states are {all_states}"


def test_auto_resolves_to_torch_on_cpu_and_named_backends_are_checked() -> None:
    assert resolve_scan_backend("auto", "cpu") == "torch"
    assert resolve_scan_backend("reference", "cpu") == "reference"
    with pytest.raises(RuntimeError, match="cuda.*CUDA tensors"):
        resolve_scan_backend("cuda", "cpu")
    with pytest.raises(ValueError, match="unknown selective-scan backend 'fast'"):
        resolve_scan_backend("fast", "cpu")


def test_dispatcher_names_the_backend_that_ran() -> None:
    inputs = make_inputs(length=3)
    selective_scan(**inputs, backend="reference")
    assert last_backend_used() == "reference"
    selective_scan(**inputs)
    assert last_backend_used() == "torch"


@pytest.mark.parametrize(
    "name,bad_shape,message",
    [
        ("B", (2, 5, 9), "B must be"),
        ("A", (4, 3, 1), "A must be real"),
        ("D", (3,), "D must be"),
        ("z", (2, 4, 8), "z must"),
    ],
)
def test_bad_shapes_raise_errors_naming_the_argument(name, bad_shape, message) -> None:
    inputs = {key: tensor.detach() for key, tensor in make_inputs().items()}
    inputs[name] = torch.zeros(bad_shape, dtype=torch.float64)
    with pytest.raises(ValueError, match=message):
        selective_scan(**inputs)


def test_groups_must_divide_dim() -> None:
    inputs = {key: tensor.detach() for key, tensor in make_inputs(dim=6, groups=4).items()}
    with pytest.raises(ValueError, match="not divisible by the 4 groups"):
        selective_scan(**inputs)


def test_counting_ops_pass_opcheck() -> None:
    inputs = {key: tensor.detach() for key, tensor in make_inputs(length=6, groups=2).items()}
    args = (*inputs.values(), True)
    tests = ("test_schema", "test_faketensor", "test_autograd_registration")
    torch.library.opcheck(torch.ops.usemabench.selective_scan.default, args, test_utils=tests)
    grad_y = torch.randn_like(inputs["u"])
    torch.library.opcheck(torch.ops.usemabench.selective_scan_backward.default, (grad_y, *args), test_utils=tests)


def test_counting_mode_routes_through_the_custom_ops_with_reference_gradients() -> None:
    inputs = make_inputs(length=7)
    del inputs["z"]  # an absent optional input must keep its place in the gradients
    expected, expected_grads = run_with_gradients(selective_scan_reference, inputs, True)
    with counting_mode():
        actual, actual_grads = run_with_gradients(selective_scan, inputs, True)
    torch.testing.assert_close(actual, expected)
    for name in inputs:
        torch.testing.assert_close(actual_grads[name], expected_grads[name], msg=name)


def test_counting_mode_runs_forward_and_backward_on_meta() -> None:
    inputs = {key: tensor.detach().to("meta").requires_grad_() for key, tensor in make_inputs(length=5000).items()}
    called = []

    class RecordOps(torch.utils._python_dispatch.TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            called.append(str(func.overloadpacket))
            return func(*args, **(kwargs or {}))

    with counting_mode(), RecordOps():
        y = selective_scan(**inputs, delta_softplus=True)
        y.sum().backward()
    assert y.device.type == "meta" and y.shape == inputs["u"].shape
    assert {"usemabench.selective_scan", "usemabench.selective_scan_backward"} <= set(called)
    assert all(tensor.grad.shape == tensor.shape for tensor in inputs.values())


def test_mac_convention() -> None:
    assert scan.selective_scan_macs(2, 8, 10, 16, with_D=True, with_z=True) == 9 * 2 * 10 * 8 * 16 + 2 * 2 * 8 * 10

