"""`usemabench profile`: parameters, MACs/FLOPs, peak memory and latency over models x resolutions."""

from __future__ import annotations

import argparse
from pathlib import Path

from usemabench.runners import defaults
from usemabench.runners.errors import UsageError, registered_model
from usemabench.runners.execution import EXEC_MODES

# Kept here, not imported from usemabench.profiler.profile, so that `usemabench --help` does not import the
# model zoo's dependencies; tests check they match profile.py.
MODES = ("infer", "train")
SDPA_BACKENDS = ("auto", "math", "flash", "efficient", "cudnn")


def _names(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _sides(text: str) -> list[int]:
    try:
        sides = [int(part) for part in _names(text)]
    except ValueError:
        raise argparse.ArgumentTypeError(f"resolutions must be comma-separated integers, got {text!r}") from None
    if not sides or min(sides) < 1:
        raise argparse.ArgumentTypeError(f"resolutions must be positive integers, got {text!r}")
    return sides


def _exec_modes(text: str) -> list[str]:
    modes = _names(text)
    unknown = [mode for mode in modes if mode not in EXEC_MODES]
    if not modes or unknown:
        raise argparse.ArgumentTypeError(f"execution modes must be among {', '.join(EXEC_MODES)}; got {text!r}")
    return modes


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "profile",
        help="profile models over resolutions (params, MACs/FLOPs, peak memory, latency); one record each",
        description="One profile record per (model, resolution, device, precision, mode), written to --records-dir. "
        "Sizes a model refuses are recorded as 'unsupported', out-of-memory as 'oom'; the sweep goes on.",
    )
    parser.add_argument("--models", required=True, type=_names, help="comma-separated model names, e.g. usema_t,nnunet")
    parser.add_argument("--resolutions", required=True, type=_sides, help="comma-separated square sides, e.g. 128,256")
    parser.add_argument("--batch", type=int, default=None,
                        help="images per call (default: 1 on the CPU; on CUDA the --protocol's training batch)")
    parser.add_argument("--protocol", default="gpu-short",
                        help="whose batch_size a CUDA profile uses when --batch is not given (default %(default)s)")
    parser.add_argument("--exec", type=_exec_modes, default=["eager"], dest="exec_modes",
                        help="comma-separated execution modes, one record each: " + ", ".join(EXEC_MODES)
                        + " (default eager)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default cpu)")
    parser.add_argument("--precision", choices=("fp32", "bf16", "fp16"), default="fp32",
                        help="autocast precision on CUDA; the CPU always runs fp32 (default fp32)")
    parser.add_argument("--mode", choices=(*MODES, "both"), default="both",
                        help="infer: one forward; train: one optimizer step; both (default)")
    parser.add_argument("--repeats", type=int, default=10, help="timed calls per record (default 10)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed calls before measuring (default 3)")
    parser.add_argument("--in-channels", type=int, default=1, help="input channels (default 1)")
    parser.add_argument("--num-classes", type=int, default=2, help="output classes (default 2)")
    parser.add_argument("--sdpa", choices=SDPA_BACKENDS, default="auto",
                        help="restrict F.scaled_dot_product_attention to one kernel; 'math' is plain N x N "
                        "attention (recorded as variant sdpa-math); default auto")
    parser.add_argument("--records-dir", type=Path, default=defaults.PROFILE_RECORDS_DIR,
                        help="where the records go (default %(default)s)")
    parser.set_defaults(handler=run)


def default_batch(device: str, protocol: str) -> int:
    """1 on the CPU (latency of one image); on a GPU the protocol's training batch, as a model is trained."""
    if not device.startswith("cuda"):
        return 1
    from usemabench.runners.protocol import load_protocol

    return load_protocol(protocol).batch_size


def run(args: argparse.Namespace) -> int:
    from usemabench.profiler.profile import profile_sweep

    for name in args.models:
        registered_model(name)  # an unknown name stops here, before any work, with close matches
    batch = args.batch if args.batch is not None else default_batch(args.device, args.protocol)
    if batch < 1 or args.repeats < 1 or args.warmup < 0:
        raise UsageError(f"need --batch >= 1, --repeats >= 1, --warmup >= 0; got {batch}, {args.repeats}, {args.warmup}")
    records = profile_sweep(
        args.models,
        args.resolutions,
        modes=MODES if args.mode == "both" else (args.mode,),
        records_dir=args.records_dir,
        exec_modes=args.exec_modes,
        batch=batch,
        device=args.device,
        precision=args.precision,
        repeats=args.repeats,
        warmup=args.warmup,
        in_channels=args.in_channels,
        num_classes=args.num_classes,
        sdpa=args.sdpa,
    )
    failed = [record for record in records if record["status"] == "failed"]
    if failed:
        print(f"usemabench profile: {len(failed)} of {len(records)} profiles failed (see their records' error)")
    return 1 if failed else 0
