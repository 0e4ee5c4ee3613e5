"""Selective-scan backends head to head: forward+backward time and peak memory of the scan alone.

Shape: batch 1, D = 256 channels, N = 16 states, L = 4,096 ... 262,144 tokens (the scan of one Mamba layer
at 64^2 ... 512^2 pixels); bf16 u, delta, B, C; fp32 A, D, delta_bias; delta_softplus; no z gate (the call
VMamba's SS2D makes). Backends: `torch` and `triton` (usemabench), `cuda` (mamba-ssm) when it imports;
a backend that cannot run is recorded with the reason.

Before timing, each backend's output and gradients at a small size are compared with the `reference`
backend run in float32 on the same bf16 inputs; the errors go into the record.

Measured per (backend, L), on the GPU:
- time: CUDA events around one forward+backward (`usemabench.profiler.profile.time_calls`), after warm-up
  (the first call compiles the Triton kernels); median of enough repeats to fill ~0.4 s (3 to 50).
- memory: `torch.cuda.max_memory_allocated` after `reset_peak_memory_stats` around one forward+backward,
  reported absolute (inputs and output gradient included) and above what was allocated before the call.
- a call that runs out of memory is recorded as `oom`, one that raises as `failed`, and the run goes on.
- per kernel, at L = 65,536: GPU time in one forward+backward from the profiler's kernel records
  (`kernel_breakdown`), to show which kernel to work on.

Usage (one `bench` record under --records-dir; well under 90 s on an H100):
    python benchmarks/bench_scan.py
    python benchmarks/bench_scan.py --check    # correctness of every backend on CUDA vs float64, ~30 s
                                               # (mostly Triton compilation); exit status 1 on a failure
    python benchmarks/bench_scan.py --sweep    # also times alternative Triton tile configs at L = 65,536
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import torch

from usemabench.core.records import environment_info, make_record, record_filename, write_record
from usemabench.profiler.profile import latency_summary, time_calls
from usemabench.zoo.layers.scan import backend_problem, selective_scan, selective_scan_reference

DEVICE = "cuda"
DIM, D_STATE = 256, 16
LENGTHS = (4096, 16384, 65536, 131072, 262144)
BACKENDS = ("torch", "triton", "cuda")
CHECK_LENGTH, CHECK_DIM = 512, 64
SWEEP_LENGTH = 65536  # also the length of the per-kernel breakdown
BREAKDOWN_CALLS = 5
TIME_BUDGET_S = 0.4
# --check passes when max |error| <= tol * max(max |reference|, 1) against float64, as in the tests.
CHECK_TOLERANCE = {torch.float32: 2e-5, torch.bfloat16: 1e-2}

ScanFn = Callable[..., torch.Tensor]


def scan_inputs(length: int, dim: int, d_state: int, dtype: torch.dtype, device: str, *, batch: int = 1,
                groups: int = 0, seed: int = 0) -> tuple[dict[str, torch.Tensor], torch.Tensor]:  # fmt: skip
    """Mamba-like leaf tensors (A = -exp(.), softplus(raw delta) around 0.3) and an output gradient."""
    generator = torch.Generator(device=device).manual_seed(seed)

    def randn(*shape: int, like: torch.dtype = dtype, scale: float = 1.0, shift: float = 0.0) -> torch.Tensor:
        values = torch.randn(*shape, generator=generator, device=device) * scale + shift
        return values.to(like).requires_grad_()

    bc_shape = (batch, groups, d_state, length) if groups else (batch, d_state, length)
    inputs = {
        "u": randn(batch, dim, length),
        "delta": randn(batch, dim, length, scale=0.5, shift=-1.0),
        "A": (-torch.exp(torch.randn(dim, d_state, generator=generator, device=device) * 0.5)).requires_grad_(),
        "B": randn(*bc_shape),
        "C": randn(*bc_shape),
        "D": randn(dim, like=torch.float32),
        "delta_bias": randn(dim, like=torch.float32, scale=0.3),
    }
    grad_output = torch.randn(batch, dim, length, generator=generator, device=device).to(dtype)
    return inputs, grad_output


def backend_fn(backend: str, triton_config=None) -> ScanFn:
    if triton_config is not None:
        from usemabench.zoo.layers.scan_triton import selective_scan_triton

        return lambda *args, **kwargs: selective_scan_triton(*args, **kwargs, config=triton_config)
    return lambda *args, **kwargs: selective_scan(*args, **kwargs, backend=backend)


def forward_backward(scan: ScanFn, inputs: dict, grad_output: torch.Tensor) -> Callable[[], torch.Tensor]:
    """One call: clear the gradients, forward, backward; returns the output (detached)."""

    def step() -> torch.Tensor:
        for tensor in inputs.values():
            tensor.grad = None
        out = scan(**inputs, delta_softplus=True)
        out.backward(grad_output)
        return out.detach()

    return step


def output_and_grads(scan: ScanFn, inputs: dict, grad_output: torch.Tensor) -> dict[str, torch.Tensor]:
    out = forward_backward(scan, inputs, grad_output)()
    return {"y": out} | {name: tensor.grad for name, tensor in inputs.items()}


def reference_output_and_grads(inputs: dict, grad_output: torch.Tensor, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """The `reference` backend on the same input values, computing in `dtype`."""
    cast = {name: tensor.detach().to(dtype).requires_grad_() for name, tensor in inputs.items()}
    return output_and_grads(selective_scan_reference, cast, grad_output.to(dtype))


def relative_errors(results: dict[str, torch.Tensor], reference: dict[str, torch.Tensor]) -> dict[str, float]:
    """Per tensor: max |result - reference| / max(max |reference|, 1)."""
    return {
        name: (results[name].to(ref.dtype) - ref).abs().max().item() / max(ref.abs().max().item(), 1.0)
        for name, ref in reference.items()
    }


def tensor_label(name: str) -> str:
    """'y' for the output, 'dX' for the gradient of input X."""
    return name if name == "y" else f"d{name}"


def release_memory() -> None:
    gc.collect()
    torch.cuda.empty_cache()


def measure(scan: ScanFn, length: int, device: str) -> dict:
    """Time and peak memory of forward+backward at one length; `oom` when the device cannot hold it."""
    try:
        result = {"length": length, "status": "ok"} | _time_and_memory(scan, length, device)
    except torch.cuda.OutOfMemoryError as error:
        result = {"length": length, "status": "oom", "error": str(error).splitlines()[0]}
    except Exception as error:  # a kernel that fails to compile or run is recorded; the other runs go on
        result = {"length": length, "status": "failed", "error": f"{type(error).__name__}: {error}"[:2000]}
    release_memory()
    return result


def _time_and_memory(scan: ScanFn, length: int, device: str) -> dict:
    inputs, grad_output = scan_inputs(length, DIM, D_STATE, torch.bfloat16, device)
    step = forward_backward(scan, inputs, grad_output)
    step()  # compiles the Triton kernels on the first call
    estimate = time_calls(step, torch.device(device), warmup=0, repeats=1)[0]
    repeats = min(50, max(3, round(TIME_BUDGET_S / max(estimate, 1e-6))))
    seconds = time_calls(step, torch.device(device), warmup=1, repeats=repeats)
    for tensor in inputs.values():
        tensor.grad = None
    torch.cuda.synchronize()
    before = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    step()
    torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated()
    return {
        "time_ms": latency_summary(seconds, warmup=3),  # the compiling call, the estimate, one more
        "peak_memory_mb": peak / 2**20,
        "peak_memory_above_inputs_mb": (peak - before) / 2**20,
    }


def kernel_breakdown(scan: ScanFn, length: int, device: str) -> dict:
    """GPU time per kernel in one forward+backward, ms, averaged over a few profiled calls: where the time goes.

    From the profiler's kernel records (CUPTI), so launch gaps are left out and the sum is below the timed call.
    """
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile

    try:
        inputs, grad_output = scan_inputs(length, DIM, D_STATE, torch.bfloat16, device)
        step = forward_backward(scan, inputs, grad_output)
        step()  # compiles the Triton kernels
        torch.cuda.synchronize()
        with profile(activities=[ProfilerActivity.CUDA]) as trace:
            for _ in range(BREAKDOWN_CALLS):
                step()
            torch.cuda.synchronize()
        kernels = {
            event.key[:200]: event.device_time_total / 1000 / BREAKDOWN_CALLS
            for event in trace.key_averages()
            if event.device_type == DeviceType.CUDA
        }
        result = {"length": length, "status": "ok", "kernels_ms": dict(sorted(kernels.items(), key=lambda kv: -kv[1]))}
    except Exception as error:  # a diagnostic: its failure is recorded and the benchmark goes on
        result = {"length": length, "status": "failed", "error": f"{type(error).__name__}: {error}"[:2000]}
    release_memory()
    return result


def print_breakdown(backend: str, breakdown: dict) -> None:
    if breakdown["status"] != "ok":
        print(f"  {backend:7s} kernel breakdown failed: {breakdown['error'][:300]}", flush=True)
        return
    kernels = breakdown["kernels_ms"]
    top = ", ".join(f"{name[:40]} {ms:.3f}" for name, ms in list(kernels.items())[:6])
    print(f"  {backend:7s} L={breakdown['length']} kernels {sum(kernels.values()):.3f} ms: {top}", flush=True)


def print_result(label: str, result: dict) -> None:
    if result["status"] == "ok":
        print(
            f"  {label:7s} L={result['length']:7d}  {result['time_ms']['median']:9.3f} ms  "
            f"{result['peak_memory_mb']:9.1f} MiB peak ({result['peak_memory_above_inputs_mb']:.1f} above inputs)",
            flush=True,
        )
    else:
        print(f"  {label:7s} L={result['length']:7d}  {result['status']}: {result.get('error', '')[:300]}", flush=True)


def available(backends: list[str], device: str) -> tuple[list[str], dict[str, str]]:
    runnable, reasons = [], {}
    for backend in backends:
        problem = backend_problem(backend, device)
        if problem is None:
            runnable.append(backend)
        else:
            reasons[backend] = problem
            print(f"  {backend}: not run ({problem})", flush=True)
    return runnable, reasons


def ratios_to_cuda(results: dict[str, list[dict]]) -> dict[str, list[dict]]:
    """time and memory of each backend divided by mamba-ssm's at the same L (the issue's 1.5x target)."""
    cuda = {r["length"]: r for r in results.get("cuda", []) if r["status"] == "ok"}
    ratios: dict[str, list[dict]] = {}
    for backend, rows in results.items():
        if backend == "cuda" or not cuda:
            continue
        ratios[backend] = [
            {
                "length": row["length"],
                "time": row["time_ms"]["median"] / cuda[row["length"]]["time_ms"]["median"],
                "memory": row["peak_memory_above_inputs_mb"] / cuda[row["length"]]["peak_memory_above_inputs_mb"],
            }
            for row in rows
            if row["status"] == "ok" and row["length"] in cuda
        ]
    return ratios


def sweep_configs() -> list:
    """The Triton tile configs that --sweep times at L = 65,536, the default first (for choosing the defaults)."""
    from usemabench.zoo.layers.scan_triton import ScanTritonConfig

    return [
        ScanTritonConfig(),  # chunk 128, 1 channel per program, 4 warps
        ScanTritonConfig(block_d=2),  # the default before the first sweep
        ScanTritonConfig(block_d=2, num_warps=4),
        ScanTritonConfig(block_d=4),
        ScanTritonConfig(num_warps=2),
        ScanTritonConfig(num_warps=8),  # scan_registers.py: the gradient kernel spills at 4 warps, not at 8 or 16
        ScanTritonConfig(num_warps=16),
        ScanTritonConfig(chunk_size=64),
        ScanTritonConfig(chunk_size=64, block_d=2),
        ScanTritonConfig(chunk_size=64, block_d=4),
        ScanTritonConfig(chunk_size=256),
        ScanTritonConfig(chunk_size=256, block_d=2),
        ScanTritonConfig(channel_split=16),
        ScanTritonConfig(carry_block_rows=64, carry_block_chunks=32),
        ScanTritonConfig(carry_block_rows=16, carry_block_chunks=128),
    ]


def sweep_triton_configs(device: str) -> list[dict]:
    """Time and memory of each of `sweep_configs()` at L = 65,536."""
    from usemabench.zoo.layers.scan_triton import ScanTritonConfig

    rows = []
    for config in sweep_configs():
        result = measure(backend_fn("triton", config), SWEEP_LENGTH, device)
        rows.append({"config": asdict(config)} | result)
        changed = {k: v for k, v in asdict(config).items() if v != getattr(ScanTritonConfig(), k)}
        print_result(f"triton {changed or 'default'}", result)
    return rows


def run_benchmark(args: argparse.Namespace) -> int:
    device = DEVICE
    started = time.perf_counter()
    backends, unavailable = available(args.backends, device)
    correctness, results = {}, {}
    inputs, grad_output = scan_inputs(CHECK_LENGTH, CHECK_DIM, D_STATE, torch.bfloat16, device, seed=1)
    reference = reference_output_and_grads(inputs, grad_output, torch.float32)
    for backend in backends:
        correctness[backend] = {"length": CHECK_LENGTH, "dim": CHECK_DIM}
        try:
            errors = relative_errors(output_and_grads(backend_fn(backend), inputs, grad_output), reference)
        except Exception as error:  # recorded; the timing below records its own failure
            correctness[backend]["error"] = f"{type(error).__name__}: {error}"[:2000]
            print(f"  {backend}: failed: {correctness[backend]['error'][:300]}", flush=True)
            continue
        correctness[backend]["max_error_relative_to_max"] = errors
        worst = max(errors, key=errors.get)
        print(f"  {backend}: worst error vs the float32 reference {errors[worst]:.2e} ({tensor_label(worst)})", flush=True)
    del inputs, grad_output, reference
    for backend in backends:
        results[backend] = []
        for length in args.lengths:
            results[backend].append(measure(backend_fn(backend), length, device))
            print_result(backend, results[backend][-1])
    breakdown = {}
    for backend in backends:
        breakdown[backend] = kernel_breakdown(backend_fn(backend), SWEEP_LENGTH, device)
        print_breakdown(backend, breakdown[backend])
    metrics = {
        "variant": "selective_scan",
        "shape": {"batch": 1, "dim": DIM, "d_state": D_STATE, "groups": 1},
        "call": "bf16 u, delta, B, C; fp32 A, D, delta_bias; delta_softplus=True; z=None",
        "results": results,
        "ratios_to_cuda": ratios_to_cuda(results),
        "correctness": correctness,
        "kernel_breakdown": breakdown,
        "unavailable": unavailable,
    }
    if args.sweep and "triton" in backends:
        metrics["triton_config_sweep"] = sweep_triton_configs(device)
    if "triton" in backends:
        from usemabench.zoo.layers.scan_triton import DEFAULT_CONFIG

        metrics["triton_config"] = asdict(DEFAULT_CONFIG)
    cost = {
        "mode": "forward+backward",
        "timing_method": "CUDA events around one forward+backward; median after warm-up",
        "memory_method": (
            "torch.cuda.max_memory_allocated after reset_peak_memory_stats around one forward+backward; "
            "peak_memory_mb includes the inputs and the output gradient, peak_memory_above_inputs_mb does not"
        ),
        "wall_seconds": time.perf_counter() - started,
    }
    environment = environment_info(device, "bf16", backends={"selective_scan": backends})
    record = make_record("bench", metrics=metrics, cost=cost, environment=environment)
    # Runs of different backend sets (or with the sweep) on one GPU must not overwrite each other.
    label = "-".join(backends) + ("_sweep" if "triton_config_sweep" in metrics else "")
    filename = record_filename(record).replace("bench_", f"bench_selective-scan_{label}_", 1)
    path = write_record(record, args.records_dir, filename)
    print(f"wrote {path} ({cost['wall_seconds']:.0f} s)")
    return 0


CHECK_CASES = (  # (batch, dim, L, N, groups): partial last chunks, grouped B/C, L = 1, N = 1, N not a power of 2
    (2, 64, 1000, 16, 0),
    (1, 64, 777, 16, 4),
    (1, 8, 1, 16, 0),
    (1, 6, 300, 1, 0),
    (2, 16, 513, 5, 2),
)


def run_check(args: argparse.Namespace) -> int:
    """Every runnable CUDA backend against the float64 reference, fp32 and bf16; 1 when any error is too big."""
    started = time.perf_counter()
    backends, _ = available(args.backends, DEVICE)
    failures = 0
    for batch, dim, length, d_state, groups in CHECK_CASES:
        for dtype in (torch.float32, torch.bfloat16):
            inputs, grad_output = scan_inputs(length, dim, d_state, dtype, DEVICE, batch=batch, groups=groups, seed=2)
            reference = reference_output_and_grads(inputs, grad_output, torch.float64)
            for backend in backends:
                label = f"{backend:6s} {str(dtype)[6:]:8s} batch={batch} dim={dim} L={length} N={d_state} groups={groups}"
                try:
                    errors = relative_errors(output_and_grads(backend_fn(backend), inputs, grad_output), reference)
                except Exception as error:  # report and go on to the other cases
                    failures += 1
                    print(f"FAIL {label}: {type(error).__name__}: {str(error)[:500]}", flush=True)
                    continue
                worst = max(errors, key=errors.get)
                ok = errors[worst] <= CHECK_TOLERANCE[dtype]
                failures += not ok
                print(
                    f"{'ok  ' if ok else 'FAIL'} {label}: worst {tensor_label(worst)} {errors[worst]:.2e} "
                    f"(tol {CHECK_TOLERANCE[dtype]:.0e})",
                    flush=True,
                )
    print(f"{failures} failure(s), {time.perf_counter() - started:.0f} s")
    return 1 if failures else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records-dir", type=Path, default=Path("leaderboard/records/bench"))
    parser.add_argument("--lengths", type=int, nargs="+", default=list(LENGTHS))
    parser.add_argument("--backends", nargs="+", choices=BACKENDS, default=list(BACKENDS))
    parser.add_argument("--check", action="store_true", help="only compare the backends with the reference")
    parser.add_argument("--sweep", action="store_true", help="also time alternative Triton tile configs")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("bench_scan.py needs a CUDA GPU", file=sys.stderr)
        return 2
    return run_check(args) if args.check else run_benchmark(args)


if __name__ == "__main__":
    sys.exit(main())
