"""Registers and spills of the Triton scan kernels for each swept tile config, from ptxas, with no GPU.

Each kernel is compiled ahead of time for one NVIDIA architecture by Triton's compiler and the ptxas that ships
with Triton, for bf16 inputs with every optional path on (D, z, delta bias, softplus, atomic dB/dC), at the
launch parameters `selective_scan_triton` would pick for the benchmark's shape (D = 256, N = 16, L = 65,536).
`ptxas -v` then gives the registers per thread and the bytes spilled to local memory.

These are static facts about the code, not timings: a kernel at the 255-register cap or spilling is a lead to
check against the GPU times of `bench_scan.py --sweep` and its per-kernel breakdown.

Usage (a few seconds per config on a CPU; one `bench` record under --records-dir):
    python benchmarks/scan_registers.py --arch 90
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import torch
import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource

from bench_scan import D_STATE, DIM, SWEEP_LENGTH, sweep_configs
from usemabench.core.records import environment_info, make_record, record_filename, write_record
from usemabench.zoo.layers import scan_triton

KERNELS = (
    "_forward_summary_kernel",
    "_carry_kernel",
    "_forward_output_kernel",
    "_backward_summary_kernel",
    "_backward_gradients_kernel",
)
# Pointers to tensors in the inputs' dtype; every other pointer is a float32 buffer (A, D, bias, chunk states,
# gradient partials, dB and dC).
INPUT_DTYPE_POINTERS = {"u", "delta", "B", "C", "z", "dout", "out", "du", "ddelta", "dz"}
FLAGS = dict(HAS_D=True, HAS_Z=True, HAS_BIAS=True, SOFTPLUS=True, ATOMIC_BC=True, REVERSE=True)
CARRY_NUM_WARPS = 4  # as `_run_carry` launches it


def launch_parameters(config: scan_triton.ScanTritonConfig, length: int = SWEEP_LENGTH) -> dict[str, int]:
    """Tile sizes and warps `selective_scan_triton` picks for (1, DIM, length) inputs with N = D_STATE."""
    plan = scan_triton._plan(
        torch.empty(1, DIM, length, device="meta"), torch.empty(DIM, D_STATE, device="meta"), 1, config
    )
    return dict(
        CHUNK=plan.chunk, BLOCK_D=plan.block_d, N_PAD=plan.n_pad, BLOCK_R=plan.carry_rows,
        BLOCK_K=plan.carry_chunks, num_warps=plan.num_warps,
    )  # fmt: skip


def compile_kernel(name: str, arch: int, launch: dict[str, int]):
    """The compiled kernel (its `.asm` holds "ptx" and "cubin") for sm_<arch> and bfloat16 inputs."""
    kernel = getattr(scan_triton, name)
    constexprs = {key: value for key, value in (FLAGS | launch).items() if key in kernel.arg_names}

    def argument_type(argument: str) -> str:
        if argument in constexprs:
            return "constexpr"
        if not argument.endswith("_ptr"):
            return "i32"
        return "*bf16" if argument.removesuffix("_ptr") in INPUT_DTYPE_POINTERS else "*fp32"

    source = ASTSource(
        fn=kernel,
        signature={argument: argument_type(argument) for argument in kernel.arg_names},
        constexprs={(kernel.arg_names.index(key),): value for key, value in constexprs.items()},
    )
    num_warps = CARRY_NUM_WARPS if name == "_carry_kernel" else launch["num_warps"]
    return triton.compile(source, target=GPUTarget("cuda", arch, 32), options=dict(num_warps=num_warps))


def ptxas_usage(ptx: str, arch: int) -> dict[str, int]:
    """Registers per thread and spill stores (bytes) that `ptxas -v` reports for one kernel's PTX."""
    ptxas = Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / "ptxas"
    suffix = "a" if arch >= 90 else ""  # Triton targets sm_90a on Hopper
    with tempfile.NamedTemporaryFile("w", suffix=".ptx") as file:
        file.write(ptx)
        file.flush()
        report = subprocess.run(
            [str(ptxas), f"-arch=sm_{arch}{suffix}", "-v", file.name, "-o", "/dev/null"],
            capture_output=True, text=True, check=True,
        ).stderr  # fmt: skip
    registers = re.search(r"Used (\d+) registers", report)
    spills = re.search(r"(\d+) bytes spill stores", report)
    if registers is None or spills is None:
        raise RuntimeError(f"unexpected ptxas report: {report[:500]}")
    return {"registers": int(registers.group(1)), "spill_store_bytes": int(spills.group(1))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", type=int, choices=(80, 90), default=90, help="compute capability, no dot")
    parser.add_argument("--records-dir", type=Path, default=Path("leaderboard/records/bench"))
    args = parser.parse_args(argv)
    started = time.perf_counter()
    rows = []
    for config in sweep_configs():
        launch = launch_parameters(config)
        usage = {name: ptxas_usage(compile_kernel(name, args.arch, launch).asm["ptx"], args.arch) for name in KERNELS}
        rows.append({"config": asdict(config), "launch": launch, "kernels": usage})
        cells = "  ".join(f"{name.strip('_').removesuffix('_kernel')} {u['registers']}/{u['spill_store_bytes']}"
                          for name, u in usage.items())  # fmt: skip
        tiles = f"chunk {launch['CHUNK']:3d} block_d {launch['BLOCK_D']} warps {launch['num_warps']:2d}"
        print(f"{tiles}  registers/spill bytes: {cells}", flush=True)
    metrics = {
        "variant": f"selective_scan_registers_sm{args.arch}",
        "target": f"sm_{args.arch}, compiled ahead of time (no GPU); triton {triton.__version__}",
        "shape": {"batch": 1, "dim": DIM, "d_state": D_STATE, "length": SWEEP_LENGTH},
        "call": "bf16 u, delta, B, C, z; fp32 A, D, delta_bias; every optional path on",
        "configs": rows,
    }
    cost = {
        "mode": "compile",
        "timing_method": "none: static ptxas -v report",
        "wall_seconds": time.perf_counter() - started,
    }
    record = make_record("bench", metrics=metrics, cost=cost, environment=environment_info("cpu", "bf16"))
    filename = record_filename(record).replace("bench_", f"bench_selective-scan_registers_sm{args.arch}_", 1)
    print(f"wrote {write_record(record, args.records_dir, filename)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
