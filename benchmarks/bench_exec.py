"""Execution modes on the CPU: eager vs channels_last vs torch.compile, per model, as ratios from one run.

Each (model, step, mode) is one `usemabench.profiler.profile.profile_model` call (the profiler's own timing:
warm-up, then `--repeats` calls each timed by time.perf_counter; under compile the first call, with the
compilation, is timed apart), run in a fresh child process so that a crash inside a kernel (seen: heap
corruption in a channels_last convolution backward on the CPU, torch 2.14.1) is recorded as a failure of
that point instead of ending the benchmark. Ratios are eager median / mode median (> 1: the mode is faster).

The machine may be shared: the 1-minute load average before each point is kept in the record, and times on
a loaded machine are inflated, so the ratios (measured back to back) are the figure to read, not the times.

Usage (one `bench` record under --records-dir):
    OMP_NUM_THREADS=2 python benchmarks/bench_exec.py
    python benchmarks/bench_exec.py --models usema_tiny --steps infer --resolution 64 --repeats 3
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

import torch

from usemabench.core.records import (
    environment_info,
    make_record,
    record_filename,
    write_record,
)
from usemabench.runners.execution import EXEC_MODES

MODELS = ("usema_tiny", "nnunet_small", "umamba_bot_small")
MODES = ("eager", "channels_last", "compile")
STEPS = ("infer", "train")


def _profile_in_child(name: str, side: int, step: str, exec_mode: str, settings: dict[str, Any]) -> dict:
    from usemabench.profiler.profile import profile_model

    torch.set_num_threads(settings.pop("threads"))
    return profile_model(name, side, mode=step, exec_mode=exec_mode, **settings)


def profile_point(name: str, side: int, step: str, exec_mode: str, settings: dict[str, Any]) -> dict[str, Any]:
    """One point: status, latency and compile figures of `profile_model` run in a fresh process."""
    context = multiprocessing.get_context("spawn")
    try:
        with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
            record = pool.submit(_profile_in_child, name, side, step, exec_mode, dict(settings)).result()
    except BrokenProcessPool:
        return {"status": "failed", "error": "the process died (a crash inside a kernel)"}
    cost = record["cost"]
    point: dict[str, Any] = {"status": record["status"]}
    if record["error"]:
        point["error"] = record["error"].splitlines()[0][:300]
    if "latency_ms" in cost:
        point.update(
            median_ms=cost["latency_ms"]["median"], iqr_ms=cost["latency_ms"]["iqr"],
            cpu_load_average_1min=cost.get("cpu_load_average_1min"),
        )
    execution = cost.get("exec", {})
    for key in ("compile_seconds", "first_call_seconds", "graphs", "graph_breaks", "fell_back"):
        if key in execution:
            point[key] = execution[key]
    return point


def ratios(points: dict[str, dict[str, Any]]) -> dict[str, float | None]:
    """eager median / mode median for each mode with an ok point (None where either is missing)."""
    eager = points.get("eager", {}).get("median_ms")
    return {
        mode: (eager / point["median_ms"]) if eager and point.get("median_ms") else None
        for mode, point in points.items() if mode != "eager"
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=EXEC_MODES)
    parser.add_argument("--steps", nargs="+", default=list(STEPS), choices=STEPS)
    parser.add_argument("--resolution", type=int, default=128)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", "2")))
    parser.add_argument("--records-dir", type=Path, default=Path("leaderboard/records/bench"))
    args = parser.parse_args(argv)
    if "eager" not in args.modes:
        parser.error("--modes must include eager: the ratios are against it")
    settings = {"batch": args.batch, "repeats": args.repeats, "warmup": args.warmup, "threads": args.threads}
    results: dict[str, dict[str, Any]] = {}
    for name in args.models:
        results[name] = {}
        for step in args.steps:
            points = {}
            for mode in args.modes:
                points[mode] = profile_point(name, args.resolution, step, mode, settings)
                shown = f"{points[mode]['median_ms']:.2f} ms" if "median_ms" in points[mode] else points[mode].get("error", "")
                print(f"{name:<18} {step:<5} {mode:<22} {points[mode]['status']:<7} {shown}", flush=True)
            results[name][step] = {"points": points, "speedup_vs_eager": ratios(points)}
    cost = {
        "mode": "exec-modes",
        "batch": args.batch,
        "repeats": args.repeats,
        "warmup": args.warmup,
        "threads": args.threads,
        "timing_method": "usemabench.profiler.profile.profile_model (time.perf_counter around each call), "
        "each point in a fresh process; compile: first call timed apart",
        "note": "shared machine: other processes may inflate times; ratios are measured back to back",
    }
    record = make_record(
        "bench", resolution=[args.resolution, args.resolution],
        metrics={"exec_modes": results}, cost=cost, environment=environment_info("cpu"),
    )
    path = write_record(record, args.records_dir, record_filename(record).replace("bench_", "bench_exec_", 1))
    for name, steps in results.items():
        for step, entry in steps.items():
            shown = ", ".join(
                f"{mode} {ratio:.2f}x" if ratio is not None else f"{mode} -" for mode, ratio in entry["speedup_vs_eager"].items()
            )
            print(f"{name} {step}: speed-up vs eager: {shown}")
    print(f"-> {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
