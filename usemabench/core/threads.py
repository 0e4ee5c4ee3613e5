"""CPU thread defaults: as many torch threads as idle physical cores, and OpenMP threads that spin only briefly.

Why: PyTorch's default is one OpenMP thread per physical core. On a machine other processes also use (a
shared 2-core box, a laptop with a browser) those threads get descheduled and their partners wait for them,
so, unless the user set OMP_NUM_THREADS:
- torch threads = physical cores available to this process, minus those the load average says other work
  keeps busy, at least 1 (`default_threads`); the CLI applies it (`configure_threads`), records name it;
- GOMP_SPINCOUNT=10000 (`prefer_short_spin`, called first thing by `usemabench/__init__.py`, before torch
  loads libgomp, the OpenMP runtime of PyTorch's Linux wheels; never overriding a value the user set): a
  waiting thread spins about ten thousand iterations, then sleeps.
Measured (benchmarks/bench_wait_policy.py, record leaderboard/records/bench/bench_wait_policy_9a9b6776.json:
usema_tiny training step, batch 8 at 96², 2-core machine): idle, 2 threads took 244 ms with the short spin,
240 ms with libgomp's own spin and 526 ms with OMP_WAIT_POLICY=PASSIVE, 1 thread 291 ms. With two busy
processes started beside the step (load that arrives after the thread count was chosen): 782, 1045 and
382 ms, 1 thread 348 ms. So the short spin serves the idle machine (PASSIVE, this module's earlier choice,
made 2 threads 1.8x slower than one there) and is less bad than libgomp's spin when load arrives later;
load present at the start is met by fewer threads, where the wait policy no longer matters.
"""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path

CPU_SYSFS = Path("/sys/devices/system/cpu")
SHORT_SPIN = "10000"  # libgomp spin iterations before a waiting thread sleeps (module docstring)


def physical_cores(cpus: set[int] | None = None, sysfs: Path = CPU_SYSFS) -> int:
    """Distinct physical cores among `cpus` (default: those this process may run on); hyperthread siblings count once.

    Read from Linux sysfs topology; where it is absent (macOS, Windows), the logical CPU count.
    """
    if cpus is None:
        cpus = set(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else set(range(os.cpu_count() or 1))
    cores = set()
    for cpu in cpus:
        topology = sysfs / f"cpu{cpu}" / "topology"
        try:
            cores.add((topology / "physical_package_id").read_text().strip() + ":" + (topology / "core_id").read_text().strip())
        except OSError:
            return len(cpus)
    return max(1, len(cores))


def default_threads(cores: int | None = None, load: float | None = None, logical: int | None = None) -> int:
    """Physical cores not kept busy by other work: `cores` minus the 1-minute load average in whole cores
    (scaled to physical cores when hyperthreads double the logical count), at least 1."""
    cores = physical_cores() if cores is None else cores
    if load is None:
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    logical = logical or os.cpu_count() or cores
    busy = load * cores / logical
    return max(1, min(cores, math.floor(cores - busy + 0.5)))


def user_chose_threads() -> bool:
    return "OMP_NUM_THREADS" in os.environ


def prefer_short_spin() -> None:
    """GOMP_SPINCOUNT=10000 unless the user set it, OMP_WAIT_POLICY or OMP_NUM_THREADS; only before torch is
    loaded (after, libgomp has read its settings and the variable would only mislead)."""
    chose = user_chose_threads() or "OMP_WAIT_POLICY" in os.environ or "GOMP_SPINCOUNT" in os.environ
    if "torch" not in sys.modules and not chose:
        os.environ["GOMP_SPINCOUNT"] = SHORT_SPIN


def configure_threads() -> int | None:
    """Set torch's thread count to `default_threads()` unless the user set OMP_NUM_THREADS; the count set, or None."""
    if user_chose_threads():
        return None
    import torch

    threads = default_threads()
    torch.set_num_threads(threads)
    return threads
