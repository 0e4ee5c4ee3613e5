"""CPU thread defaults: as many torch threads as idle physical cores, and OpenMP threads that sleep when they wait.

Why: PyTorch's default is one OpenMP thread per physical core, and libgomp's threads spin while they wait at
each parallel region's barrier. On a machine other processes also use (a shared 2-core box, a laptop with a
browser), a thread is often descheduled, its partner spins for it, and training ran 4-10x slower than with
one thread (0.35-0.8 against 4.5-5 training steps/s for usema_tiny at 96 px, 2 cores, load average 3.5;
benchmarks/bench_threads.py measures the main job). So, unless the user set OMP_NUM_THREADS:
- OMP_WAIT_POLICY=PASSIVE (waiting threads sleep), set before torch loads libgomp: `prefer_passive_wait`,
  called first thing by `usemabench/__init__.py`; it never overrides a value the user set;
- torch threads = physical cores available to this process, minus those the load average says other work
  keeps busy, at least 1 (`default_threads`); the CLI applies it (`configure_threads`), records name it.
"""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path

CPU_SYSFS = Path("/sys/devices/system/cpu")


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


def prefer_passive_wait() -> None:
    """OMP_WAIT_POLICY=PASSIVE unless the user set it or OMP_NUM_THREADS; only before torch is loaded (after, libgomp
    has read its settings and the variable would only mislead)."""
    if "torch" not in sys.modules and not user_chose_threads() and "OMP_WAIT_POLICY" not in os.environ:
        os.environ["OMP_WAIT_POLICY"] = "PASSIVE"


def configure_threads() -> int | None:
    """Set torch's thread count to `default_threads()` unless the user set OMP_NUM_THREADS; the count set, or None."""
    if user_chose_threads():
        return None
    import torch

    threads = default_threads()
    torch.set_num_threads(threads)
    return threads
