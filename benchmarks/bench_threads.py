"""The main job's wall time with usemabench's thread default against its earlier default and one thread, in one run.

Runs `usemabench run` (the main job: 4 small models trained, evaluated and profiled on the synthetic set, then
the leaderboard) once per arm, each in a fresh folder so nothing is skipped: first with none of
OMP_NUM_THREADS, OMP_WAIT_POLICY and GOMP_SPINCOUNT set (the default of `usemabench.core.threads` decides),
then with OMP_WAIT_POLICY=PASSIVE (the thread count still by default: usemabench's earlier default), then with
OMP_NUM_THREADS=1. The arms share the synthetic data cache, generated before the first arm, and each waits
(up to 4 minutes) for the load average to fall back to where the default uses every core, so that no arm
inherits the previous one's load. The record names the thread count each arm ran with (from its train
records) and the load average around each arm: on a machine other jobs share, that load is part of the result.

Usage:
    python benchmarks/bench_threads.py [--records-dir leaderboard/records/bench]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from usemabench.core.threads import default_threads, physical_cores
from usemabench.core.records import environment_info, make_record, record_filename, write_record

ARMS = {
    "usemabench default": {},
    "OMP_WAIT_POLICY=PASSIVE": {"OMP_WAIT_POLICY": "PASSIVE"},
    "OMP_NUM_THREADS=1": {"OMP_NUM_THREADS": "1"},
}
QUIET_MARGIN = 0.3  # load the arm's own start-up adds before the command reads the load average
CHOSEN = ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT")  # what the user may have set; each arm sets its own


def usemabench_command() -> list[str]:
    script = Path(sys.executable).with_name("usemabench")
    return [str(script)] if script.exists() else [sys.executable, "-m", "usemabench"]


def wait_for_quiet(limit_s: float = 240) -> float:
    """Wait (at most `limit_s`) until the load average lets the default use every core again, so an arm does not
    inherit the previous arm's load; the seconds waited."""
    started = time.perf_counter()
    while default_threads(load=os.getloadavg()[0] + QUIET_MARGIN) < physical_cores() and time.perf_counter() - started < limit_s:
        time.sleep(5)
    return round(time.perf_counter() - started, 1)


def run_arm(settings: dict[str, str], folder: Path) -> dict:
    """Wall seconds of one main job in `folder`, its exit code, threads and the load average around it."""
    environment = {key: value for key, value in os.environ.items() if key not in CHOSEN}
    load_before = os.getloadavg()
    started = time.perf_counter()
    result = subprocess.run([*usemabench_command(), "run", "--no-progress"], cwd=folder, env={**environment, **settings},
                            capture_output=True, text=True)
    wall = time.perf_counter() - started
    threads = sorted({json.loads(path.read_text())["environment"].get("threads")
                      for path in (folder / "runs" / "main-job" / "records").glob("train_*.json")})
    return {"wall_s": round(wall, 1), "exit_code": result.returncode, "threads": threads,
            "load_average_before": [round(value, 2) for value in load_before],
            "load_average_after": [round(value, 2) for value in os.getloadavg()],
            "last_line": (result.stdout.strip().splitlines() or [""])[-1]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records-dir", type=Path, default=Path("leaderboard/records/bench"))
    args = parser.parse_args(argv)
    results = {}
    with tempfile.TemporaryDirectory(prefix="bench_threads_") as scratch:
        warm = Path(scratch) / "warm-up"  # the synthetic data is generated once, outside the timed arms
        warm.mkdir()
        subprocess.run([*usemabench_command(), "datasets", "verify", "synthetic"], cwd=warm, capture_output=True)
        for name, settings in ARMS.items():
            folder = Path(scratch) / name.replace(" ", "-").replace("=", "-")
            folder.mkdir()
            waited = wait_for_quiet()
            results[name] = {**run_arm(settings, folder), "waited_for_quiet_s": waited}
            print(f"{name}: {results[name]['wall_s']} s, threads {results[name]['threads']}, "
                  f"exit {results[name]['exit_code']}, load {results[name]['load_average_before'][0]} -> "
                  f"{results[name]['load_average_after'][0]}", flush=True)
    default, single = results["usemabench default"], results["OMP_NUM_THREADS=1"]
    metrics = {
        "variant": "main-job-threads",
        "arms": results,
        "default_over_single_wall": round(default["wall_s"] / single["wall_s"], 3),
        "default_over_passive_wall": round(default["wall_s"] / results["OMP_WAIT_POLICY=PASSIVE"]["wall_s"], 3),
        "physical_cores": physical_cores(),
        "default_threads_at_end": default_threads(),
    }
    cost = {
        "mode": "main-job",
        "timing_method": "time.perf_counter around each `usemabench run` process (fresh folder, synthetic data cached)",
        "note": "one run per arm, in the order listed, on a machine other jobs may share (see the load averages)",
    }
    record = make_record("bench", metrics=metrics, cost=cost, environment=environment_info("cpu"))
    path = write_record(record, args.records_dir, record_filename(record).replace("bench_", "bench_threads_", 1))
    print(f"default / OMP_NUM_THREADS=1 wall time: {metrics['default_over_single_wall']} -> {path}")
    return 0 if all(arm["exit_code"] == 0 for arm in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
