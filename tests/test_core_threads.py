"""CPU thread defaults: idle physical cores, a short OpenMP spin, and the user's OMP_NUM_THREADS always wins."""

import os
import subprocess
import sys

import pytest
import torch

from usemabench.core import threads


def _fake_sysfs(root, cores_of_cpu):
    for cpu, (package, core) in cores_of_cpu.items():
        topology = root / f"cpu{cpu}" / "topology"
        topology.mkdir(parents=True)
        (topology / "physical_package_id").write_text(f"{package}\n")
        (topology / "core_id").write_text(f"{core}\n")
    return root


def test_hyperthread_siblings_count_once(tmp_path):
    sysfs = _fake_sysfs(tmp_path, {0: (0, 0), 1: (0, 1), 2: (0, 0), 3: (0, 1), 4: (1, 0)})
    assert threads.physical_cores({0, 1, 2, 3, 4}, sysfs) == 3  # two cores with two threads each, and a second package
    assert threads.physical_cores({0, 2}, sysfs) == 1  # this process may run on one core's two siblings only


def test_without_topology_the_logical_count_is_used(tmp_path):
    assert threads.physical_cores({0, 1, 5}, tmp_path / "no-sysfs") == 3


@pytest.mark.parametrize(("cores", "load", "logical", "expected"), [
    (2, 0.1, 2, 2),  # idle: every physical core
    (2, 1.2, 2, 1),  # one core busy with other work
    (2, 7.9, 2, 1),  # overloaded: still one thread
    (4, 4.0, 8, 2),  # hyperthreads: a load of 4 on 8 logical CPUs keeps 2 physical cores busy
])
def test_default_threads_leave_busy_cores_to_others(cores, load, logical, expected):
    assert threads.default_threads(cores, load, logical) == expected


@pytest.mark.parametrize(("environment", "expected"), [
    ({}, "10000"),
    ({"GOMP_SPINCOUNT": "300000"}, "300000"),
    ({"OMP_WAIT_POLICY": "PASSIVE"}, "unset"),
    ({"OMP_NUM_THREADS": "1"}, "unset"),
])
def test_importing_usemabench_first_shortens_the_openmp_spin_unless_the_user_chose(environment, expected):
    chosen = ("OMP_WAIT_POLICY", "OMP_NUM_THREADS", "GOMP_SPINCOUNT")
    clean = {key: value for key, value in os.environ.items() if key not in chosen}
    script = "import os, usemabench; print(os.environ.get('GOMP_SPINCOUNT', 'unset'))"
    result = subprocess.run([sys.executable, "-c", script], env={**clean, **environment}, capture_output=True, text=True,
                            timeout=120)
    assert result.stdout.strip() == expected, result.stderr


def test_configure_threads_respects_omp_num_threads(monkeypatch):
    before = torch.get_num_threads()
    try:
        monkeypatch.setenv("OMP_NUM_THREADS", "1")
        assert threads.configure_threads() is None
        monkeypatch.delenv("OMP_NUM_THREADS")
        monkeypatch.setattr(threads, "default_threads", lambda: 1)
        assert threads.configure_threads() == 1 == torch.get_num_threads()
    finally:
        torch.set_num_threads(before)


def test_the_console_command_sizes_its_process_and_an_in_process_caller_keeps_its_own():
    clean = {key: value for key, value in os.environ.items() if key not in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS", "GOMP_SPINCOUNT")}
    script = (
        "import sys, torch\n"
        "import usemabench.core.threads as threads\n"
        "threads.default_threads = lambda: 3\n"
        "from usemabench import cli\n"
        "torch.set_num_threads(1); cli.main(['datasets', 'list']); kept = torch.get_num_threads()\n"
        "sys.argv = ['usemabench', 'datasets', 'list']; cli.main()\n"
        "print(kept, torch.get_num_threads(), file=sys.stderr)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], env=clean, capture_output=True, text=True, timeout=120)
    assert result.stderr.strip().splitlines()[-1] == "1 3", result.stderr
