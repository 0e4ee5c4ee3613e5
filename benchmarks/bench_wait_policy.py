"""OpenMP wait settings for a training step on the CPU, on an idle machine and beside busy processes, in one run.

Why: `usemabench.core.threads` picks the torch thread count from the load average when the run starts and
shortens libgomp's spin (GOMP_SPINCOUNT) before torch loads. This measures that choice against its
alternatives: one thread; all cores with the short spin (usemabench's default), with libgomp's own default
spin, and with OMP_WAIT_POLICY=PASSIVE (threads sleep at once: usemabench's earlier default). "busy" starts
one busy-looping process per core beside the step, as other jobs would on a shared machine (the case where a
run's thread count was chosen while the machine was idle and the load came later).

Each point is a fresh process timing `--steps` AdamW training steps (cross-entropy, batch 8 at 96², after 3
warm-up steps) with time.perf_counter; the record keeps each point's median and IQR in milliseconds.

Usage (one `bench` record under --records-dir):
    python benchmarks/bench_wait_policy.py [--models usema_tiny nnunet_small]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from usemabench.core.records import environment_info, make_record, record_filename, write_record
from usemabench.core.threads import SHORT_SPIN, physical_cores

CHOSEN = ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT")


def arms(cores: int) -> dict[str, dict[str, str]]:
    every = str(cores)
    return {
        "1 thread": {"OMP_NUM_THREADS": "1"},
        f"{every} threads, GOMP_SPINCOUNT={SHORT_SPIN} (usemabench default)": {"OMP_NUM_THREADS": every, "GOMP_SPINCOUNT": SHORT_SPIN},
        f"{every} threads, libgomp default spin": {"OMP_NUM_THREADS": every},
        f"{every} threads, OMP_WAIT_POLICY=PASSIVE": {"OMP_NUM_THREADS": every, "OMP_WAIT_POLICY": "PASSIVE"},
    }


def time_steps(model_name: str, steps: int) -> dict[str, float]:
    """Median and IQR (ms) of `steps` training steps of `model_name`, in this process (the child's job)."""
    import torch
    import torch.nn.functional as F

    from usemabench.zoo import create_model

    torch.manual_seed(0)
    model = create_model(model_name, in_channels=1, num_classes=3).train()
    optimizer = torch.optim.AdamW(model.parameters(), 1e-3)
    images, labels = torch.randn(8, 1, 96, 96), torch.randint(0, 3, (8, 96, 96))

    def step() -> None:
        output = model(images)
        loss = F.cross_entropy(output[0] if isinstance(output, (list, tuple)) else output, labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    for _ in range(3):
        step()
    times = []
    for _ in range(steps):
        started = time.perf_counter()
        step()
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    quartile = len(times) // 4
    return {"median_ms": round(times[len(times) // 2], 2), "iqr_ms": round(times[-1 - quartile] - times[quartile], 2)}


def run_point(model_name: str, settings: dict[str, str], steps: int) -> dict[str, float]:
    environment = {key: value for key, value in os.environ.items() if key not in CHOSEN}
    result = subprocess.run(
        [sys.executable, __file__, "--child", model_name, "--steps", str(steps)],
        env={**environment, **settings}, capture_output=True, text=True, check=True,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def busy_processes(count: int) -> list[subprocess.Popen]:
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["usema_tiny", "nnunet_small"])
    parser.add_argument("--steps", type=int, default=15)
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--records-dir", type=Path, default=Path("leaderboard/records/bench"))
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(time_steps(args.child, args.steps)))
        return 0
    cores = physical_cores()
    results: dict[str, dict] = {}
    for condition in ("idle", "busy"):
        others = busy_processes(cores) if condition == "busy" else []
        try:
            time.sleep(2 if others else 0)
            results[condition] = {"load_average_before": round(os.getloadavg()[0], 2), "models": {}}
            for model_name in args.models:
                points = {name: run_point(model_name, settings, args.steps) for name, settings in arms(cores).items()}
                results[condition]["models"][model_name] = points
                shown = ", ".join(f"{name}: {point['median_ms']:.0f} ms" for name, point in points.items())
                print(f"{condition:<5} {model_name}: {shown}", flush=True)
        finally:
            for process in others:
                process.kill()
                process.wait()
    metrics = {"variant": "openmp-wait-policy", "conditions": results, "physical_cores": cores}
    cost = {
        "mode": "train-step-batch8-96px",
        "timing_method": f"time.perf_counter around each of {args.steps} AdamW steps after 3 warm-up steps, "
        "each point in a fresh process; median and IQR",
        "note": f"busy: {cores} busy-looping processes beside the step; idle: whatever else the machine ran "
        "(load average before each condition in the record)",
    }
    record = make_record("bench", metrics=metrics, cost=cost, environment=environment_info("cpu"))
    path = write_record(record, args.records_dir, record_filename(record).replace("bench_", "bench_wait_policy_", 1))
    print(f"-> {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
