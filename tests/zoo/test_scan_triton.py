"""The Triton selective scan against the `reference` backend in float64: outputs and every gradient.

On the CPU the kernels run in Triton's interpreter, which must be switched on (TRITON_INTERPRET=1) before
triton itself is imported, since its standard library (tl.sum, tl.cumsum, ...) is decorated at import.
So `test_interpreter_suite` reruns this file's `interpreter` tests in a child pytest with the variable set,
and the rest of the session keeps compiled Triton. With a GPU the same cases, and larger ones, run on CUDA.
Without a GPU, Triton's compiler (with the ptxas it ships) still lowers every kernel to sm_80 and sm_90
machine code, which catches code that the interpreter accepts and the compiler rejects.

Tolerance, per tensor: max |result - reference| <= tol * max(max |reference|, 1).
  float32 inputs: tol = 2e-5 (measured <= 3.1e-7 in the interpreter; the GPU's approximate exp/log add little)
  bfloat16 inputs: tol = 1e-2 (outputs and returned gradients are rounded to bfloat16, 2^-8 relative;
  the reference sees the same bfloat16 inputs; measured <= 3.7e-3)
"""

from __future__ import annotations

import os
import subprocess
import sys
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch

triton = pytest.importorskip("triton")

from usemabench.zoo.layers import scan_triton  # noqa: E402
from usemabench.zoo.layers.scan import selective_scan_reference  # noqa: E402

INTERPRETER = os.environ.get("TRITON_INTERPRET") == "1"
CUDA = torch.cuda.is_available() and not INTERPRETER
interpreter_only = pytest.mark.skipif(not INTERPRETER, reason="runs in the child pytest of test_interpreter_suite")
TOLERANCE = {torch.float32: 2e-5, torch.bfloat16: 1e-2}
INPUT_NAMES = ("u", "delta", "A", "B", "C", "D", "z", "delta_bias")


@dataclass(frozen=True)
class Case:
    name: str
    batch: int
    dim: int
    length: int
    d_state: int
    groups: int = 0  # 0: B and C as (batch, N, L); else (batch, groups, N, L)
    extras: bool = True  # D, z, delta_bias and softplus
    config: dict = field(default_factory=dict)


# Small chunks so a few tokens already span several chunks, several carry tiles and a partial last chunk.
INTERPRETER_CASES = [
    Case("partial-last-chunk", 2, 4, 19, 4, config=dict(chunk_size=8, block_d=2, carry_block_chunks=2)),
    Case("length-1", 1, 2, 1, 4, extras=False, config=dict(chunk_size=8)),
    Case("d_state-1-odd-dim", 1, 3, 10, 1, config=dict(chunk_size=4, carry_block_chunks=2)),
    Case("d_state-16", 1, 2, 12, 16, config=dict(chunk_size=4)),
    Case("grouped-atomic-dBdC", 2, 8, 9, 3, groups=2, config=dict(chunk_size=4, block_d=2, channel_split=2)),
    Case("no-extras", 2, 4, 7, 2, extras=False, config=dict(chunk_size=4, block_d=4)),
]
GPU_CASES = INTERPRETER_CASES + [
    Case("default-config", 2, 64, 1000, 16),
    Case("default-grouped-4", 1, 64, 777, 16, groups=4),
    Case("default-no-extras", 1, 32, 4096, 16, extras=False),
]


def make_inputs(case: Case, dtype: torch.dtype, device: str) -> tuple[list[torch.Tensor | None], torch.Tensor]:
    """Mamba-like inputs (A = -exp(.), raw delta around softplus^-1(0.3)) and an output gradient."""
    generator = torch.Generator().manual_seed(zlib.crc32(case.name.encode()))

    def randn(*shape: int, scale: float = 1.0, shift: float = 0.0, like: torch.dtype = dtype) -> torch.Tensor:
        return (torch.randn(*shape, generator=generator) * scale + shift).to(device=device, dtype=like)

    batch, dim, length, d_state = case.batch, case.dim, case.length, case.d_state
    bc_shape = (batch, case.groups, d_state, length) if case.groups else (batch, d_state, length)
    if case.extras:
        delta = randn(batch, dim, length, scale=0.5, shift=-1.0)
    else:
        delta = randn(batch, dim, length, scale=0.1, shift=0.3).abs()
    inputs = [
        randn(batch, dim, length),
        delta,
        -torch.exp(randn(dim, d_state, scale=0.5, like=torch.float32)),
        randn(*bc_shape),
        randn(*bc_shape),
        randn(dim, like=torch.float32) if case.extras else None,
        randn(batch, dim, length) if case.extras else None,
        randn(dim, scale=0.3, like=torch.float32) if case.extras else None,
    ]
    return inputs, randn(batch, dim, length)


def output_and_grads(scan, inputs, grad_output, softplus: bool, cast: torch.dtype | None = None):
    leaves = [None if t is None else t.detach().to(cast or t.dtype).requires_grad_() for t in inputs]
    out = scan(*leaves, delta_softplus=softplus)
    out.backward(grad_output.to(out.dtype))
    return out, {name: leaf.grad for name, leaf in zip(INPUT_NAMES, leaves) if leaf is not None}


def assert_matches_reference(case: Case, dtype: torch.dtype, device: str) -> None:
    inputs, grad_output = make_inputs(case, dtype, device)
    config = scan_triton.ScanTritonConfig(**case.config)

    def triton_scan(*args, **kwargs):
        return scan_triton.selective_scan_triton(*args, **kwargs, config=config)

    out, grads = output_and_grads(triton_scan, inputs, grad_output, case.extras)
    expected, expected_grads = output_and_grads(
        selective_scan_reference, inputs, grad_output, case.extras, cast=torch.float64
    )
    assert out.dtype == dtype and out.shape == expected.shape
    results = {"y": (out, expected)} | {name: (grads[name], expected_grads[name]) for name in grads}
    assert set(results) == {"y"} | {n for n, t in zip(INPUT_NAMES, inputs) if t is not None}
    for name, tensor in zip(INPUT_NAMES, inputs):
        if tensor is not None:
            assert grads[name].dtype == tensor.dtype, f"d{name} should come back in {name}'s dtype"
    for name, (value, reference) in results.items():
        assert value.shape == reference.shape, name
        scale = max(reference.abs().max().item(), 1.0)
        error = (value.double() - reference).abs().max().item()
        assert error <= TOLERANCE[dtype] * scale, f"{case.name} {dtype}: {name} off by {error:.2e} (scale {scale:.2e})"


def test_interpreter_suite() -> None:
    """The interpreter tests below, in a child pytest that imports triton with TRITON_INTERPRET=1."""
    if INTERPRETER:
        pytest.skip("already interpreting: the interpreter tests run in this session")
    child = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", __file__,
         "-k", "test_interpreter_ and not suite"],  # fmt: skip
        cwd=Path(__file__).resolve().parents[2],
        env={**os.environ, "TRITON_INTERPRET": "1"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert child.returncode == 0, child.stdout[-6000:] + child.stderr[-3000:]
    assert " passed" in child.stdout and " skipped" not in child.stdout, child.stdout[-3000:]


@interpreter_only
@pytest.mark.parametrize("case", INTERPRETER_CASES, ids=lambda case: case.name)
def test_interpreter_float32_matches_reference(case: Case) -> None:
    assert_matches_reference(case, torch.float32, "cpu")


@interpreter_only
@pytest.mark.parametrize("case", INTERPRETER_CASES[:1] + INTERPRETER_CASES[4:5], ids=lambda case: case.name)
def test_interpreter_bfloat16_matches_reference(case: Case) -> None:
    assert_matches_reference(case, torch.bfloat16, "cpu")


@interpreter_only
def test_interpreter_rejects_a_chunk_size_not_a_power_of_two() -> None:
    inputs, _ = make_inputs(INTERPRETER_CASES[0], torch.float32, "cpu")
    with pytest.raises(ValueError, match="chunk_size must be a power of two"):
        scan_triton.selective_scan_triton(*inputs, config=scan_triton.ScanTritonConfig(chunk_size=12))


@interpreter_only
def test_interpreter_rejects_a_channel_split_not_dividing_the_channel_blocks() -> None:
    inputs, _ = make_inputs(INTERPRETER_CASES[0], torch.float32, "cpu")
    with pytest.raises(ValueError, match="channel_split=4 must divide the 2 channel blocks"):
        scan_triton.selective_scan_triton(*inputs, config=scan_triton.ScanTritonConfig(block_d=2, channel_split=4))


@pytest.mark.gpu
@pytest.mark.skipif(not CUDA, reason="needs a CUDA GPU (and compiled Triton)")
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
@pytest.mark.parametrize("case", GPU_CASES, ids=lambda case: case.name)
def test_cuda_matches_reference(case: Case, dtype: torch.dtype) -> None:
    assert_matches_reference(case, dtype, "cuda")


@pytest.fixture
def scan_registers(monkeypatch):
    """benchmarks/scan_registers.py, which compiles the kernels ahead of time."""
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[2] / "benchmarks"))
    import scan_registers

    return scan_registers


@pytest.mark.skipif(INTERPRETER, reason="the interpreter does not compile")
@pytest.mark.parametrize("arch", [80, 90], ids=["sm80", "sm90"])
def test_kernels_compile_for_ampere_and_hopper_without_a_gpu(scan_registers, arch: int) -> None:
    """The interpreter accepts code the GPU compiler rejects; this lowers each kernel to machine code."""
    launch = scan_registers.launch_parameters(scan_triton.DEFAULT_CONFIG)
    for name in scan_registers.KERNELS:
        cubin = scan_registers.compile_kernel(name, arch, launch).asm["cubin"]
        assert cubin[:4] == b"\x7fELF" and len(cubin) > 1000, name


@pytest.mark.skipif(INTERPRETER, reason="the interpreter does not compile")
def test_ptxas_reports_registers_and_spills_of_a_kernel(scan_registers) -> None:
    launch = scan_registers.launch_parameters(scan_triton.ScanTritonConfig(chunk_size=64, num_warps=16))
    assert (launch["CHUNK"], launch["BLOCK_D"], launch["N_PAD"], launch["num_warps"]) == (64, 1, 16, 16)
    ptx = scan_registers.compile_kernel("_forward_summary_kernel", 90, launch).asm["ptx"]
    usage = scan_registers.ptxas_usage(ptx, 90)
    assert 1 <= usage["registers"] <= 255 and usage["spill_store_bytes"] >= 0


@pytest.mark.skipif(torch.cuda.is_available() or INTERPRETER, reason="checks the refusal of CPU tensors")
def test_cpu_tensors_are_refused_without_the_interpreter() -> None:
    inputs, _ = make_inputs(INTERPRETER_CASES[0], torch.float32, "cpu")
    with pytest.raises(ValueError, match="needs CUDA tensors"):
        scan_triton.selective_scan_triton(*inputs)
