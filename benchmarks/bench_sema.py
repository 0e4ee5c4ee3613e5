"""SEMA attention against full and naive window attention: forward+backward time and peak memory.

Two tables, over growing square maps (batch 1, 4 heads x 32 dims, window 8, + global mean for SEMA):

op     the attention op alone on q, k, v (B, heads, N, d) in raster order:
         full_sdpa          global softmax attention, F.scaled_dot_product_attention (flash on CUDA)
         full_matmul        global softmax attention, plain matmul + softmax (N x N scores)
         window_matmul      naive windows: partition, plain matmul + softmax per window, + mean
         sema_torch         usemabench SEMA, backend torch (partition + SDPA + mean)
         sema_flex          usemabench SEMA, backend flex, raster tokens (permuted inside)
         sema_flex_wm       the same on tokens already in window-major order (the kernel alone)
         linear             MLLA linear attention (ELU + 1, normalised)
block  the whole op from raster tokens x (B, N, C = 128): q, k = Linear(C -> 2C)(x), v = x, attention:
         full_sdpa          flash attention on raster tokens
         sema_torch         naive: q, k from raster tokens, SEMA torch (partition + SDPA) in raster order
         sema_torch_wm      tokens permuted once to window-major before the projection, SEMA torch
         sema_flex_wm       the same with FlexAttention (what `SEMAAttention` runs on CUDA)

CPU: fp32, 1k-16k tokens (the dense matmul capped by --max-dense-tokens). CUDA: bf16, 4k-262k tokens.
Time: CUDA events (perf_counter on CPU) around one forward+backward, median of repeats filling
--time-budget seconds (at least 3 on CUDA, 2 on CPU) after one warm-up call (which also compiles flex).
Memory: CUDA `max_memory_allocated` around one forward+backward (inputs, weights and the output gradient
included); CPU: `usemabench.profiler.profile.cpu_allocation_peak` + the live inputs. Out of memory is recorded
as `oom` and the run goes on. On CUDA the SEMA backends are first checked against the float32 reference.
GPU targets at 262,144 tokens (issue 2): sema_flex >= 100x faster than full_sdpa, peak <= 1.1x.

    python benchmarks/bench_sema.py                      # CUDA when available, else CPU; one bench record
    python benchmarks/bench_sema.py --tokens 4096 65536  # a subset
"""

from __future__ import annotations

import argparse
import gc
import math
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.nn.attention import SDPBackend, sdpa_kernel

from usemabench.core.records import environment_info, make_record, record_filename, write_record
from usemabench.profiler.profile import cpu_allocation_peak, latency_summary, time_calls
from usemabench.zoo.layers.sema import (
    flex_available,
    from_window_major,
    reference_sema_attention,
    sema_attention,
    to_window_major,
)

HEADS, HEAD_DIM, WINDOW, CHANNELS = 4, 32, 8, 128
TOKENS = {"cpu": (1024, 4096, 16384), "cuda": (4096, 16384, 65536, 262144)}
# (height, width, backends): batch 1 at 64 x 64 is also the first timed shape, so flex compiles once for both;
# padded maps (a further compilation here) are checked for flex by `pytest -m gpu tests/zoo/test_sema.py`.
CHECK_CASES = ((64, 64, ("torch", "flex")), (13, 21, ("torch",)))
CHECK_TOLERANCE = 2e-2  # bf16 inputs, float32 reference: max |error| / max(max |reference|, 1)
TARGET_TOKENS, TARGET_SPEEDUP, TARGET_MEMORY_RATIO = 262144, 100.0, 1.1


# --- the contenders -------------------------------------------------------------------------------------


def full_sdpa(device: torch.device) -> Callable[..., Tensor]:
    """F.scaled_dot_product_attention, held to the flash kernel on CUDA (the CPU picks its own flash kernel)."""
    if device.type != "cuda":
        return F.scaled_dot_product_attention

    def flash(q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
            return F.scaled_dot_product_attention(q, k, v)

    return flash


def full_matmul(q: Tensor, k: Tensor, v: Tensor) -> Tensor:
    return ((q @ k.transpose(-2, -1)) / math.sqrt(q.shape[-1])).softmax(dim=-1) @ v


def window_matmul(q: Tensor, k: Tensor, v: Tensor, side: int) -> Tensor:
    """Naive window attention: partition, matmul + softmax per window, un-partition, + mean."""
    windows = [to_window_major(t, side, side, WINDOW).unflatten(-2, (-1, WINDOW * WINDOW)) for t in (q, k, v)]
    out = full_matmul(*windows).flatten(-3, -2)
    return from_window_major(out, side, side, WINDOW) + v.mean(dim=-2, keepdim=True)


def linear_attention(q: Tensor, k: Tensor, v: Tensor) -> Tensor:
    q, k = F.elu(q) + 1.0, F.elu(k) + 1.0
    normaliser = 1.0 / (q @ k.mean(dim=-2, keepdim=True).transpose(-2, -1) + 1e-6)
    return (q @ ((k.transpose(-2, -1) @ v) / k.shape[-2])) * normaliser


def op_contenders(side: int, device: torch.device) -> dict[str, Callable[..., Tensor]]:
    def sema(backend: str, order: str = "raster") -> Callable[..., Tensor]:
        return lambda q, k, v: sema_attention(q, k, v, side, side, WINDOW, token_order=order, backend=backend)

    contenders = {
        "full_sdpa": full_sdpa(device),
        "full_matmul": full_matmul,
        "window_matmul": lambda q, k, v: window_matmul(q, k, v, side),
        "sema_torch": sema("torch"),
        "sema_flex": sema("flex"),
        "sema_flex_wm": sema("flex", "window_major"),
        "linear": linear_attention,
    }
    if device.type != "cuda" or not flex_available():
        contenders = {name: fn for name, fn in contenders.items() if "flex" not in name}
    return contenders


def block_contenders(side: int, device: torch.device) -> dict[str, Callable[..., Tensor]]:
    def heads(t: Tensor) -> Tensor:
        return t.unflatten(-1, (HEADS, HEAD_DIM)).transpose(1, 2)

    def merge(t: Tensor) -> Tensor:
        return t.transpose(1, 2).flatten(-2)

    def raster(attention: Callable) -> Callable:
        def block(x: Tensor, weight: Tensor) -> Tensor:
            q, k = F.linear(x, weight).chunk(2, dim=-1)
            return merge(attention(heads(q), heads(k), heads(x)))

        return block

    def window_major(backend: str) -> Callable:
        def block(x: Tensor, weight: Tensor) -> Tensor:
            windowed = to_window_major(x, side, side, WINDOW)
            q, k = F.linear(windowed, weight).chunk(2, dim=-1)
            out = sema_attention(
                heads(q), heads(k), heads(windowed), side, side, WINDOW, token_order="window_major", backend=backend
            )
            return from_window_major(merge(out), side, side, WINDOW)

        return block

    contenders = {
        "full_sdpa": raster(full_sdpa(device)),
        "sema_torch": raster(lambda q, k, v: sema_attention(q, k, v, side, side, WINDOW, backend="torch")),
        "sema_torch_wm": window_major("torch"),
        "sema_flex_wm": window_major("flex"),
    }
    if device.type != "cuda" or not flex_available():
        contenders.pop("sema_flex_wm")
    return contenders


def op_inputs(side: int, device: torch.device, dtype: torch.dtype) -> tuple[list[Tensor], Tensor]:
    shape = (1, HEADS, side * side, HEAD_DIM)
    return [torch.randn(shape, device=device, dtype=dtype).requires_grad_() for _ in range(3)], torch.randn(
        shape, device=device, dtype=dtype
    )


def block_inputs(side: int, device: torch.device, dtype: torch.dtype) -> tuple[list[Tensor], Tensor]:
    x = torch.randn(1, side * side, CHANNELS, device=device, dtype=dtype).requires_grad_()
    weight = (torch.randn(2 * CHANNELS, CHANNELS, device=device) / math.sqrt(CHANNELS)).to(dtype).requires_grad_()
    return [x, weight], torch.randn(1, side * side, CHANNELS, device=device, dtype=dtype)


# --- measuring ------------------------------------------------------------------------------------------


def forward_backward(fn: Callable[..., Tensor], inputs: list[Tensor], grad_output: Tensor) -> Callable[[], None]:
    def step() -> None:
        for tensor in inputs:
            tensor.grad = None
        fn(*inputs).backward(grad_output)

    return step


def peak_memory(step: Callable[[], None], inputs: list[Tensor], grad_output: Tensor, device: torch.device) -> int:
    """Bytes at the peak of one call, the inputs and the output gradient included."""
    for tensor in inputs:
        tensor.grad = None
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        step()
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device)
    gc.collect()
    live = sum(t.untyped_storage().nbytes() for t in (*inputs, grad_output))
    return live + cpu_allocation_peak(step)


def measure(fn: Callable[..., Tensor], make_inputs: Callable, side: int, device: torch.device, dtype: torch.dtype,
            time_budget: float) -> dict:  # fmt: skip
    row = {"tokens": side * side, "grid": [side, side]}
    try:
        inputs, grad_output = make_inputs(side, device, dtype)
        step = forward_backward(fn, inputs, grad_output)
        started = time.perf_counter()
        step()  # warm-up; compiles flex on its first shape
        first = time_calls(step, device, warmup=0, repeats=1)[0]
        repeats = min(50, max(3 if device.type == "cuda" else 2, round(time_budget / max(first, 1e-6))))
        seconds = time_calls(step, device, warmup=0, repeats=repeats)
        row |= {"status": "ok", "time_ms": latency_summary(seconds, warmup=2)}
        row["peak_memory_mb"] = peak_memory(step, inputs, grad_output, device) / 2**20
        row["wall_seconds"] = time.perf_counter() - started
    except torch.OutOfMemoryError as error:
        row |= {"status": "oom", "error": str(error).splitlines()[0]}
    except Exception as error:  # noqa: BLE001 - one contender failing must not end the run; it is recorded
        row |= {
            "status": "failed",
            "error": f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}",
        }
    finally:
        inputs = grad_output = step = None
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return row


def print_row(table: str, name: str, row: dict) -> None:
    label = f"{table:5s} {name:14s} N={row['tokens']:7d}"
    if row["status"] == "ok":
        print(f"{label} {row['time_ms']['median']:10.3f} ms {row['peak_memory_mb']:10.1f} MiB", flush=True)
    else:
        print(f"{label} {row['status']}: {row.get('error', '')}", flush=True)


# --- correctness on CUDA ----------------------------------------------------------------------------------


def check_backends(device: torch.device, dtype: torch.dtype) -> list[dict]:
    """SEMA backends on `dtype` inputs vs the dense reference in float32 on the same values, fwd and grads."""
    checks = []
    for height, width, backends in CHECK_CASES:
        shape = (1, HEADS, height * width, HEAD_DIM)
        leaves = [torch.randn(shape, device=device).to(dtype).requires_grad_() for _ in range(3)]
        grad_output = torch.randn(shape, device=device).to(dtype)
        as_float = [t.detach().float().requires_grad_() for t in leaves]
        reference = reference_sema_attention(*as_float, height, width, WINDOW)
        expected = [reference, *torch.autograd.grad(reference, as_float, grad_output.float())]
        for backend in backends:
            out = sema_attention(*leaves, height, width, WINDOW, backend=backend)
            results = [out, *torch.autograd.grad(out, leaves, grad_output)]
            errors = {
                name: (result.float() - ref).abs().max().item() / max(ref.abs().max().item(), 1.0)
                for name, result, ref in zip(("out", "dq", "dk", "dv"), results, expected, strict=True)
            }
            worst = max(errors.values())
            ok = worst <= CHECK_TOLERANCE
            checks.append({"backend": backend, "grid": [height, width], "relative_errors": errors, "ok": ok})
            verdict = "ok" if ok else "FAIL"
            print(f"check {backend:5s} {height}x{width}: worst relative error {worst:.2e} ({verdict})", flush=True)
    return checks


def target_summary(results: dict) -> dict:
    """sema vs full_sdpa at TARGET_TOKENS: speed-up and memory ratio, per table and SEMA contender."""
    summary = {}
    for table, contenders in results.items():
        rows = {name: {r["tokens"]: r for r in rows} for name, rows in contenders.items()}
        flash = rows.get("full_sdpa", {}).get(TARGET_TOKENS)
        if not flash or flash["status"] != "ok":
            continue
        for name in (n for n in rows if n.startswith("sema")):
            row = rows[name].get(TARGET_TOKENS)
            if row and row["status"] == "ok":
                speedup = flash["time_ms"]["median"] / row["time_ms"]["median"]
                memory = row["peak_memory_mb"] / flash["peak_memory_mb"]
                summary[f"{table}/{name}"] = {
                    "speedup_vs_full_sdpa": speedup,
                    "memory_vs_full_sdpa": memory,
                    "met": speedup >= TARGET_SPEEDUP and memory <= TARGET_MEMORY_RATIO,
                }
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records-dir", type=Path, default=Path("leaderboard/records/bench"))
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--tokens", type=int, nargs="+", help="square token counts (default: by device)")
    parser.add_argument(
        "--max-dense-tokens", type=int, help="skip full_matmul above this (default: 4096 on CPU, none on CUDA)"
    )
    parser.add_argument("--time-budget", type=float, help="seconds of timed repeats per cell (default 0.3 CUDA, 1 CPU)")
    parser.add_argument("--threads", type=int, help="CPU threads (1 avoids thread-pool stalls on a shared machine)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    on_cuda = device.type == "cuda"
    dtype, precision = (torch.bfloat16, "bf16") if on_cuda else (torch.float32, "fp32")
    tokens = args.tokens or TOKENS[device.type]
    for count in tokens:
        if math.isqrt(count) ** 2 != count:
            raise SystemExit(f"--tokens {count} is not a square number (the maps are square)")
    max_dense = args.max_dense_tokens or (None if on_cuda else 4096)
    time_budget = args.time_budget or (0.3 if on_cuda else 1.0)
    # Several shapes and layouts compile flex here; past the recompile limit it would fall back to dense N x N.
    torch._dynamo.config.recompile_limit = 64
    started = time.perf_counter()

    checks = check_backends(device, dtype) if on_cuda and flex_available() else []
    results: dict[str, dict[str, list[dict]]] = {"op": {}, "block": {}}
    for count in tokens:
        side = math.isqrt(count)
        for table, contenders, make_inputs in (
            ("op", op_contenders(side, device), op_inputs),
            ("block", block_contenders(side, device), block_inputs),
        ):
            for name, fn in contenders.items():
                if name == "full_matmul" and max_dense is not None and count > max_dense:
                    row = {
                        "tokens": count,
                        "grid": [side, side],
                        "status": "skipped",
                        "error": f"above --max-dense-tokens {max_dense}",
                    }
                else:
                    row = measure(fn, make_inputs, side, device, dtype, time_budget)
                results[table].setdefault(name, []).append(row)
                print_row(table, name, row)

    failed = [f"check {c['backend']} {c['grid']}" for c in checks if not c["ok"]]
    failed += [
        f"{table}/{name} at {row['tokens']}"
        for table, contenders in results.items()
        for name, rows in contenders.items()
        for row in rows
        if row["status"] == "failed"
    ]
    metrics = {
        "variant": "sema_attention",
        "shape": {"batch": 1, "heads": HEADS, "head_dim": HEAD_DIM, "window": WINDOW, "block_channels": CHANNELS},
        "results": results,
        "targets": {
            "tokens": TARGET_TOKENS,
            "speedup": TARGET_SPEEDUP,
            "memory_ratio": TARGET_MEMORY_RATIO,
            "reached": target_summary(results),
        },
        "correctness": checks,
    }
    cost = {
        "mode": "forward+backward",
        "timing_method": ("CUDA events" if on_cuda else "time.perf_counter")
        + " around one forward+backward; median after one warm-up call",
        "memory_method": (
            "torch.cuda.max_memory_allocated after reset_peak_memory_stats around one forward+backward"
            if on_cuda
            else "usemabench.profiler.profile.cpu_allocation_peak of one forward+backward + bytes of the inputs"
        )
        + "; inputs, weights and the output gradient included",
        "wall_seconds": time.perf_counter() - started,
        "load_average_1min": os.getloadavg()[0],  # other work on the machine skews CPU timings
    }
    backends = {
        "sema": ["torch", "flex"] if on_cuda and flex_available() else ["torch"],
        "full_sdpa": "flash" if on_cuda else "default dispatch (flash for cpu)",
    }
    record = make_record(
        "bench",
        status="failed" if failed else "ok",
        metrics=metrics,
        cost=cost,
        environment=environment_info(str(device), precision, backends=backends),
        error=f"failed: {', '.join(failed)} (check tolerance {CHECK_TOLERANCE})" if failed else None,
    )
    path = write_record(record, args.records_dir, record_filename(record).replace("bench_", "bench_sema_", 1))
    for key, reached in metrics["targets"]["reached"].items():
        speedup, memory = reached["speedup_vs_full_sdpa"], reached["memory_vs_full_sdpa"]
        print(f"{key}: {speedup:.0f}x faster than full_sdpa, {memory:.2f}x its peak memory")
    print(f"wrote {path} ({cost['wall_seconds']:.0f} s)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
