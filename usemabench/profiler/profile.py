"""Profiling one model at one resolution: parameters, MACs/FLOPs, peak memory, latency, as a record.

One record per (model, resolution, device, precision, mode), `kind="profile"`, with in `cost`:
    mode, batch, params {total, trainable}, macs and flops (per image, see `flops.py` for the convention),
    peak_memory_bytes + memory_method, latency_ms {median, iqr, q25, q75, min, repeats, warmup} + timing_method,
    throughput (images/s), and for training the optimizer and loss of the step.
A step the device cannot hold is recorded as `oom`; a size the model refuses (its size policy, or a
ValueError from its own input checks in a first plain forward) as `unsupported`; anything else that breaks
(a ValueError from the FLOP counter or the loss included) as `failed`.
A sweep (`profile_sweep`) records each and goes on.

What is measured (`infer`: one forward under no_grad; `train`: one full step: zero_grad, forward, Dice+CE
with deep supervision, backward, SGD step):
- peak memory on CUDA: `max_memory_allocated` after `reset_peak_memory_stats`, around one call after the
  warm-up; it includes the weights, gradients, optimizer state and inputs live during the call.
- peak memory on the CPU: the same quantity, from the profiler's memory events (every allocation and free
  of PyTorch's CPU allocator during one call, accumulated in time order) plus the bytes of the tensors live
  before the call. Allocations outside PyTorch's allocator (oneDNN scratch space) are not seen.
- latency: `warmup` calls, then `repeats` calls each timed alone, by CUDA events on the GPU (the GPU time
  between the call's first and last kernel launch) or `time.perf_counter` on the CPU; median and
  interquartile range; throughput = batch / median. On CUDA cuDNN autotuning is on (as nnU-Net trains).
  On the CPU the 1-minute load average before timing is recorded: other processes inflate CPU times.
- backends: the SDPA kernels one forward dispatched (profiler op names), the SEMA backend of the model's
  SEMA modules, the selective-scan backend that ran; precision is what autocast ran (the CPU runs fp32).
- execution mode (`runners.execution`; `cost.exec`): eager records carry no `exec` entry and keep their
  identity; another mode is also the record's `metrics.variant`. Under torch.compile the first call is timed
  apart (wall clock, compilation included) before the warm-up: `compile_seconds` = that call minus the
  steady-state median; graphs captured and graph breaks come from Dynamo's counters. A model Dynamo
  captures no graph of, or whose compilation raises, is `failed` with the reason, never timed eagerly.
- utilisation (`peaks.py`; `cost.utilisation`): achieved FLOP/s = FLOPs per image x batch / median call
  time, and on a GPU in the peak table the MFU against its datasheet peak for the precision.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from usemabench.core.records import (
    device_name,
    environment_info,
    make_record,
    model_entry,
    write_record,
)
from usemabench.profiler.flops import MODES, count_flops
from usemabench.profiler.peaks import utilisation
from usemabench.runners import defaults
from usemabench.runners.backends import kernel_backends as sema_and_scan_backends
from usemabench.runners.execution import CompileWatch, ExecMode, apply_exec, parse_exec
from usemabench.runners.losses import SegmentationLoss
from usemabench.runners.precision import autocast, resolve_device, resolve_precision
from usemabench.zoo.registry import count_parameters, create_model, get_model_info

SDPA_BACKENDS = ("auto", "math", "flash", "efficient", "cudnn")
# nnU-Net's optimizer (SGD, Nesterov, momentum 0.99): one momentum buffer per parameter.
OPTIMIZER = {"name": "SGD", "lr": 1e-2, "momentum": 0.99, "nesterov": True, "weight_decay": 3e-5}
LOSS = "Dice + CE, nnU-Net deep-supervision weights (usemabench.runners.losses.SegmentationLoss)"


class UnsupportedSize(ValueError):
    """The model's size policy refuses this resolution."""


class CompileFallbackError(RuntimeError):
    """torch.compile captured no graph of the model: it would have run eagerly under a compile label."""


# --- one call: inference forward or training step ------------------------------------------------------


@dataclass
class Step:
    """One inference forward or one training step, as a call; `optimizer` (training only) holds live state."""

    run: Callable[[], None]
    optimizer: torch.optim.Optimizer | None = None

    def __call__(self) -> None:
        self.run()


def make_step(
    model: nn.Module, mode: str, inputs: torch.Tensor, targets: torch.Tensor, precision: str, device: torch.device
) -> Step:
    """One inference forward (no_grad) or one training step (zero_grad, forward, loss, backward, SGD step)."""
    if mode == "infer":
        model.eval()

        def infer() -> None:
            with torch.no_grad(), autocast(precision, device):
                model(inputs)

        return Step(infer)
    model.train()
    loss_fn = SegmentationLoss()
    optimizer = torch.optim.SGD(
        model.parameters(), lr=OPTIMIZER["lr"], momentum=OPTIMIZER["momentum"], nesterov=OPTIMIZER["nesterov"],
        weight_decay=OPTIMIZER["weight_decay"],
    )
    scaler = torch.amp.GradScaler(device.type) if precision == "fp16" else None

    def train() -> None:
        optimizer.zero_grad(set_to_none=True)
        with autocast(precision, device):
            loss = loss_fn(model(inputs), targets)
        if scaler is None:
            loss.backward()
            optimizer.step()
        else:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()

    return Step(train, optimizer)


# --- memory -----------------------------------------------------------------------------------------------


def _live_bytes(tensors: Iterator[torch.Tensor]) -> int:
    """Bytes of the distinct storages behind `tensors`."""
    storages = {}
    for tensor in tensors:
        storage = tensor.untyped_storage()
        storages[storage.data_ptr()] = storage.nbytes()
    return sum(storages.values())


def _state_tensors(model: nn.Module, step: Step, extra: Sequence[torch.Tensor]) -> Iterator[torch.Tensor]:
    """Every tensor live between calls: weights, buffers, gradients, optimizer state, inputs."""
    yield from model.parameters()
    yield from model.buffers()
    yield from (parameter.grad for parameter in model.parameters() if parameter.grad is not None)
    if step.optimizer is not None:
        for state in step.optimizer.state.values():
            yield from (value for value in state.values() if isinstance(value, torch.Tensor))
    yield from extra


def cpu_op_profiler(**options) -> torch.profiler.profile:
    """torch.profiler over CPU ops, without Kineto's log lines on stderr.

    Kineto prints a start and a stop line per use and, on a machine without a GPU, "gpuGetDeviceCount failed":
    dozens of lines per profile that read as failures. Level 6 silences them; a KINETO_LOG_LEVEL the user set wins.
    """
    os.environ.setdefault("KINETO_LOG_LEVEL", "6")
    return torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU], **options)


def cpu_allocation_peak(step: Callable[[], None]) -> int:
    """Peak of (bytes allocated - bytes freed) by PyTorch's CPU allocator during `step`, from profiler events."""
    with cpu_op_profiler(profile_memory=True) as profiler:
        step()
    with tempfile.TemporaryDirectory() as folder:
        trace_path = Path(folder) / "trace.json"
        profiler.export_chrome_trace(str(trace_path))
        events = json.loads(trace_path.read_text())["traceEvents"]
    changes = sorted(
        (event["ts"], event["args"]["Bytes"])
        for event in events
        if event.get("name") == "[memory]" and event["args"].get("Device Type") == 0
    )
    running = peak = 0
    for _, change in changes:
        running += change
        peak = max(peak, running)
    return peak


def measure_peak_memory(
    step: Step, model: nn.Module, extra: Sequence[torch.Tensor], device: torch.device
) -> tuple[int, str]:
    """(peak bytes during one call, including what was live before it; the method, in words)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        step()
        torch.cuda.synchronize(device)
        method = (
            "torch.cuda.max_memory_allocated after reset_peak_memory_stats, one call after warm-up; includes "
            "weights, gradients, optimizer state and inputs; excludes the CUDA context and allocator cache"
        )
        return torch.cuda.max_memory_allocated(device), method
    live = _live_bytes(_state_tensors(model, step, extra))
    method = (
        "cpu: torch.profiler memory events of one call after warm-up (allocations minus frees of PyTorch's CPU "
        "allocator, peak in time order) + bytes of weights, gradients, optimizer state and inputs live before "
        "it; oneDNN scratch space not seen"
    )
    return live + cpu_allocation_peak(step), method


# --- latency ----------------------------------------------------------------------------------------------


def time_calls(step: Callable[[], None], device: torch.device, warmup: int, repeats: int) -> list[float]:
    """Seconds of each of `repeats` calls after `warmup` untimed ones (CUDA events on the GPU)."""
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    for _ in range(warmup):
        step()
    if device.type != "cuda":
        seconds = []
        for _ in range(repeats):
            start = time.perf_counter()
            step()
            seconds.append(time.perf_counter() - start)
        return seconds
    torch.cuda.synchronize(device)
    events = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        step()
        end.record()
        events.append((start, end))
    torch.cuda.synchronize(device)
    return [start.elapsed_time(end) / 1e3 for start, end in events]


def latency_summary(seconds: Sequence[float], warmup: int) -> dict[str, float | int]:
    """Median, quartiles, IQR and minimum in milliseconds, with the counts they come from."""
    milliseconds = np.asarray(seconds) * 1e3
    q25, median, q75 = np.percentile(milliseconds, [25, 50, 75])
    return {
        "median": float(median), "q25": float(q25), "q75": float(q75), "iqr": float(q75 - q25),
        "min": float(milliseconds.min()), "repeats": len(seconds), "warmup": warmup,
    }


# --- kernel backends ------------------------------------------------------------------------------------

_SDPA_KERNELS = {
    "_scaled_dot_product_flash_attention_for_cpu": "flash (cpu)",
    "_scaled_dot_product_flash_attention": "flash",
    "_scaled_dot_product_efficient_attention": "efficient",
    "_scaled_dot_product_cudnn_attention": "cudnn",
    "_scaled_dot_product_attention_math": "math",
}


def observed_sdpa_kernels(forward: Callable[[], None]) -> list[str]:
    """The scaled-dot-product-attention kernels one call dispatches, from the profiler's op names."""
    with cpu_op_profiler() as profiler:
        forward()
    names = {event.name.removeprefix("aten::") for event in profiler.events()}
    return sorted({kernel for op, kernel in _SDPA_KERNELS.items() if op in names})


def kernel_backends(
    model: nn.Module, device: torch.device, forward: Step, inputs: torch.Tensor, precision: str
) -> dict[str, Any]:
    """The SEMA and selective-scan backends (`runners.backends`) plus the SDPA kernels one forward dispatched."""
    backends = sema_and_scan_backends(model, inputs, device, precision)
    sdpa = observed_sdpa_kernels(forward)
    if sdpa:
        backends["sdpa"] = sdpa
    return backends


@contextlib.contextmanager
def cudnn_benchmark(enabled: bool) -> Iterator[None]:
    """cuDNN autotuning on, as nnU-Net trains (the warm-up calls absorb the tuning); restored afterwards."""
    previous = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = enabled or previous
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark = previous


@contextlib.contextmanager
def compile_cache_for_sweeps(limit: int = 256) -> Iterator[None]:
    """Raise torch.compile's recompile limit for a model built with SEMA's opt-in `flex` backend (`auto` is
    `torch`, which compiles nothing): compiled FlexAttention recompiles for new shapes, and a sweep over
    models and resolutions passes the default 8, after which dynamo silently runs the eager, dense N x N
    fallback (the wrong kernel, timed as if it were SEMA's)."""
    import torch._dynamo

    config = torch._dynamo.config
    name = "recompile_limit" if hasattr(config, "recompile_limit") else "cache_size_limit"  # renamed in torch 2.6
    previous = getattr(config, name)
    setattr(config, name, max(limit, previous))
    try:
        yield
    finally:
        setattr(config, name, previous)


@contextlib.contextmanager
def sdpa_backend(name: str) -> Iterator[None]:
    """Restrict F.scaled_dot_product_attention to one kernel (`math` = plain N x N attention); `auto` = no limit."""
    if name == "auto":
        yield
        return
    from torch.nn.attention import SDPBackend, sdpa_kernel

    kernels = {"math": SDPBackend.MATH, "flash": SDPBackend.FLASH_ATTENTION,
               "efficient": SDPBackend.EFFICIENT_ATTENTION, "cudnn": SDPBackend.CUDNN_ATTENTION}
    with sdpa_kernel([kernels[name]]):
        yield


@contextlib.contextmanager
def kernel_settings(sdpa: str, device: torch.device) -> Iterator[None]:
    """The kernel choices every call on real tensors runs under: the size check's forward as the measured ones."""
    with sdpa_backend(sdpa), cudnn_benchmark(device.type == "cuda"), compile_cache_for_sweeps():
        yield


# --- one record -----------------------------------------------------------------------------------------


def check_size(name: str, resolution: tuple[int, int]) -> None:
    """Raise UnsupportedSize when the model's size policy refuses `resolution` (the message says why)."""
    info = get_model_info(name)
    height, width = resolution
    if info.size_policy == "error" and (height % info.size_divisor or width % info.size_divisor):
        raise UnsupportedSize(
            f"model {name!r} needs height and width divisible by {info.size_divisor}; got {height}x{width}"
        )


def check_input(model: nn.Module, shape: tuple[int, ...], device: torch.device, precision: str) -> None:
    """Raise UnsupportedSize when the model's own input check refuses `shape`: a ValueError from one forward.

    One plain forward, before anything else runs, so that a ValueError from the FLOP counter, the loss or
    the measuring code is recorded as the bug it is (`failed`), not as a size the model refuses. Running out
    of memory is no refusal: the measurement meets it again and records `oom` with the FLOP counts.
    """
    inputs = torch.zeros(shape, device=device)
    try:
        make_step(model, "infer", inputs, inputs, precision, device)()
    except ValueError as refused:
        raise UnsupportedSize(f"the model refuses an input of shape {tuple(shape)}: {refused}") from refused
    except Exception as error:  # re-raised unless it is the device's limit
        if not is_out_of_memory(error):
            raise


def is_out_of_memory(error: BaseException) -> bool:
    """CUDA's OutOfMemoryError, or the RuntimeError cuBLAS/cuDNN raise when their workspace allocation fails."""
    if isinstance(error, torch.cuda.OutOfMemoryError):
        return True
    message = str(error)
    return isinstance(error, RuntimeError) and ("out of memory" in message or "ALLOC_FAILED" in message)


def _release_memory(device: torch.device) -> None:
    """On CUDA, free what the last profile left (reference cycles, an OOM's traceback): the next profile's
    peak memory counts every live allocation. The CPU method counts only its own tensors; gc there costs
    about a second per record for nothing."""
    if device.type == "cuda":
        gc.collect()
        torch.cuda.empty_cache()


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def first_call(step: Callable[[], None], device: torch.device) -> tuple[float, CompileWatch]:
    """Wall seconds of the first call of a compiled step (compilation included) and what Dynamo captured.

    Raises CompileFallbackError when Dynamo captured no graph: the call ran eagerly under a compile label.
    """
    watch = CompileWatch()
    _synchronize(device)
    with watch.watch():
        started = time.perf_counter()
        step()
        _synchronize(device)
        seconds = time.perf_counter() - started
    if watch.graphs == 0:
        raise CompileFallbackError("torch.compile captured no graph; the model would have run eagerly")
    return seconds, watch


def _measure(
    model: nn.Module, mode: str, resolution: tuple[int, int], batch: int, in_channels: int, num_classes: int,
    device: torch.device, precision: str, warmup: int, repeats: int, execution: ExecMode,
) -> dict[str, Any]:
    """Memory, latency and backends of `model` (already on `device`) run in `execution` mode; its tensors die
    with this frame."""
    inputs = torch.randn(batch, in_channels, *resolution, device=device)
    targets = torch.randint(0, num_classes, (batch, *resolution), device=device)
    runner = apply_exec(model, execution)
    step = make_step(runner, mode, inputs, targets, precision, device)
    compiled = None
    if execution.compile_mode is not None:
        compiled = first_call(step, device)
    for _ in range(warmup):
        step()
    if step.optimizer is not None:
        # The step frees the last step's gradients first; free them here, so the CPU method (which does not
        # see frees of blocks allocated before it started) does not count them twice.
        step.optimizer.zero_grad(set_to_none=True)
    peak_bytes, memory_method = measure_peak_memory(step, model, (inputs, targets), device)
    load = os.getloadavg()[0] if device.type == "cpu" and hasattr(os, "getloadavg") else None
    seconds = time_calls(step, device, warmup=0, repeats=repeats)
    latency = latency_summary(seconds, warmup)
    infer = make_step(runner, "infer", inputs, targets, precision, device)  # switches the model to eval mode
    backends = kernel_backends(model, device, infer, inputs, precision)
    extra: dict[str, Any] = {} if load is None else {"cpu_load_average_1min": load}  # shared machines need it
    if not execution.is_eager:
        extra["exec"] = {"mode": execution.name}
    if compiled is not None:
        seconds_first, watch = compiled
        extra["exec"].update(
            compile_mode=execution.compile_mode, first_call_seconds=seconds_first,
            compile_seconds=max(seconds_first - latency["median"] / 1e3, 0.0), **watch.summary(),
        )
    return {
        **extra,
        "peak_memory_bytes": int(peak_bytes),
        "memory_method": memory_method,
        "latency_ms": latency,
        "timing_method": f"{'CUDA events' if device.type == 'cuda' else 'time.perf_counter'} around each call",
        "throughput": batch / (latency["median"] / 1e3),
        "backends": backends,
    }


def profile_model(
    name: str,
    resolution: int | tuple[int, int],
    batch: int = 1,
    device: str = "cpu",
    precision: str = "fp32",
    mode: str = "infer",
    *,
    repeats: int = 10,
    warmup: int = 3,
    in_channels: int = 1,
    num_classes: int = 2,
    sdpa: str = "auto",
    exec_mode: str = "eager",
) -> dict:
    """The profile record of registered model `name` at `resolution` (see the module docstring)."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if sdpa not in SDPA_BACKENDS:
        raise ValueError(f"sdpa backend must be one of {SDPA_BACKENDS}, got {sdpa!r}")
    execution = parse_exec(exec_mode)
    resolution = (resolution, resolution) if isinstance(resolution, int) else tuple(resolution)
    torch_device = resolve_device(device)
    precision_ran = resolve_precision(precision, torch_device)
    info = get_model_info(name)
    config = {"in_channels": in_channels, "num_classes": num_classes, **info.default_config}
    cost: dict[str, Any] = {"mode": mode, "batch": batch}
    if not execution.is_eager:
        cost["exec"] = {"mode": execution.name}
    if mode == "train":
        cost.update(optimizer=OPTIMIZER, loss=LOSS)
    backends: dict[str, Any] = {}
    status, error = "ok", None
    model = None
    try:
        check_size(name, resolution)
        torch.manual_seed(0)
        with torch_device:  # initialising on the GPU takes a fraction of the CPU's time for 100M parameters
            model = create_model(name, in_channels, num_classes)
        total, trainable = count_parameters(model)
        cost["params"] = {"total": total, "trainable": trainable}
        with kernel_settings(sdpa, torch_device):
            check_input(model, (1, in_channels, *resolution), torch_device, precision_ran)
        counted = count_flops(model, (1, in_channels, *resolution), mode)
        cost.update(
            macs=counted["macs"], flops=counted["flops"], flops_by_op=counted["by_op"],
            flop_convention=counted["convention"] + "; per image", counted_on=counted["device"],
            count_fallback_reason=counted["fallback_reason"],
        )
        if torch_device.type == "cuda":
            cost["cudnn_benchmark"] = True
        with kernel_settings(sdpa, torch_device):
            measured = _measure(
                model, mode, resolution, batch, in_channels, num_classes, torch_device, precision_ran,
                warmup, repeats, execution,
            )
        backends = measured.pop("backends")
        cost.update(measured)
        cost["utilisation"] = utilisation(
            cost["flops"], batch, cost["latency_ms"]["median"], torch_device.type, device_name(str(torch_device)),
            precision_ran,
        )
    except UnsupportedSize as refused:  # the size policy, or the model's own input check (e.g. a fixed input size)
        status, error = "unsupported", f"{type(refused).__name__}: {refused}"
    except Exception as failure:  # noqa: BLE001 - a sweep records the failure and goes on
        if is_out_of_memory(failure):
            status, error = "oom", str(failure).splitlines()[0]
        else:
            status, error = "failed", f"{type(failure).__name__}: {failure}"
    del model
    _release_memory(torch_device)
    if sdpa != "auto":
        backends["sdpa_requested"] = sdpa
    variant = ", ".join(
        ([] if execution.is_eager else [execution.name]) + ([f"sdpa-{sdpa}"] if sdpa != "auto" else [])
    )
    return make_record(
        "profile",
        status=status,
        model=model_entry(name, config),
        resolution=list(resolution),
        metrics={"variant": variant} if variant else {},
        cost=cost,
        environment=environment_info(str(torch_device), precision_ran, backends),
        error=error,
    )


def profile_sweep(
    models: Sequence[str],
    resolutions: Sequence[int],
    modes: Sequence[str] = ("infer",),
    records_dir: str | Path | None = defaults.PROFILE_RECORDS_DIR,
    log: Callable[[str], None] = print,
    exec_modes: Sequence[str] = ("eager",),
    **settings: Any,
) -> list[dict]:
    """`profile_model` for every (model, resolution, mode, execution mode), each record written when made."""
    records = []
    for name in models:
        for resolution in resolutions:
            for mode in modes:
                for exec_mode in exec_modes:
                    started = time.perf_counter()
                    record = profile_model(name, resolution, mode=mode, exec_mode=exec_mode, **settings)
                    records.append(record)
                    where = write_record(record, records_dir) if records_dir is not None else None
                    log(_summary_line(record, time.perf_counter() - started, where))
    return records


def _summary_line(record: dict, seconds: float, path: Path | None) -> str:
    cost = record["cost"]
    side = "x".join(str(value) for value in record["resolution"])
    execution = cost.get("exec", {})
    parts = [f"{record['model']['name']:<16} {side:>9} {cost['mode']:<5} {execution.get('mode', 'eager'):<13} "
             f"{record['status']:<11}"]
    if "macs" in cost:
        parts.append(f"{cost['macs'] / 1e9:9.2f} GMACs")
    if "latency_ms" in cost:
        parts.append(f"{cost['latency_ms']['median']:10.2f} ms  {cost['peak_memory_bytes'] / 2**20:9.1f} MiB")
    if "utilisation" in cost:
        use = cost["utilisation"]
        mfu = f", MFU {use['mfu']:.1%}" if use["mfu"] is not None else ""
        parts.append(f"{use['achieved_flops_per_s'] / 1e12:7.3f} TFLOP/s{mfu}")
    if "compile_seconds" in execution:
        parts.append(f"compile {execution['compile_seconds']:.1f} s, {execution['graph_breaks']} graph breaks")
    if record["error"]:
        parts.append(record["error"].splitlines()[0][:160])
    parts.append(f"({seconds:.1f} s{', ' + str(path) if path else ''})")
    return "  ".join(parts)
