"""`usemabench train | evaluate | run | predict | sweep`: the runners on the command line.

    usemabench run                                         the main job (default models, synthetic data)
    usemabench run --model usema_tiny --dataset synthetic --protocol quick --seed 0
    usemabench sweep --models usema_tiny,nnunet_small --datasets synthetic --seeds 0,1,2 [--slurm]
    usemabench predict --model usema_tiny --weights runs/usema_tiny/synthetic/quick/seed0 images/ masks/
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from usemabench.core.arguments import fold_value, seed_value
from usemabench.runners import defaults
from usemabench.runners.errors import UsageError
from usemabench.runners.protocol import available_protocols

DEFAULT_PROTOCOL = "quick"
DEFAULT_SEED = 0
STAGES = {"train": ("train",), "evaluate": ("evaluate",), "run": ("train", "evaluate")}


def _comma_list(text: str) -> list[str]:
    items = [item.strip() for item in text.split(",") if item.strip()]
    if not items:
        raise argparse.ArgumentTypeError("expected a comma-separated list")
    return items


def _seeds(text: str) -> list[int]:
    return [seed_value(item) for item in _comma_list(text)]


def _setting(text: str) -> tuple[str, object]:
    key, separator, value = text.partition("=")
    if not separator or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def _add_run_options(parser: argparse.ArgumentParser) -> None:
    protocols = ", ".join(available_protocols())
    # Default None (resolved in _request), like --seed's: run_command must tell whether the user gave it.
    parser.add_argument("--protocol", default=None, help=f"packaged ({protocols}) or a JSON file (default: {DEFAULT_PROTOCOL})")
    parser.add_argument("--runs-dir", type=Path, default=None,
                        help=f"checkpoints and logs (default: {defaults.RUNS_DIR}; main job: {defaults.MAIN_JOB_DIR / 'runs'})")
    parser.add_argument("--records-dir", type=Path, default=None,
                        help=f"records (default: {defaults.RECORDS_DIR}; main job: {defaults.MAIN_JOB_DIR / 'records'})")
    parser.add_argument("--device", default="auto", help="auto (GPU if present), cpu, cuda, cuda:1 ... (default: %(default)s)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def register(subparsers: argparse._SubParsersAction) -> None:
    helps = {
        "train": "train one model on one dataset under a protocol (resumes an interrupted run)",
        "evaluate": "evaluate a trained run on its dataset's test split and write the eval record",
        "run": "train + evaluate + records; with no --model/--dataset: the main job (default models on synthetic data)",
    }
    for name, text in helps.items():
        parser = subparsers.add_parser(name, help=text, description=text)
        parser.add_argument("--model", default=None, help="registered model name (see `usemabench models`)")
        parser.add_argument("--dataset", default=None, help="registered dataset or source URI / folder (default: synthetic)")
        parser.add_argument("--seed", type=seed_value, default=None, help=f"default: {DEFAULT_SEED}")
        parser.add_argument("--fold", type=fold_value, default=None,
                            help="train on fold K's train part, validate on its val part; test on the split's test part, "
                            "else on fold K's val (a split with folds: `datasets split --folds`, or a given one)")
        parser.add_argument("--model-config", type=_setting, action="append", default=[], metavar="KEY=VALUE",
                            help="override the model's config (JSON values), repeatable")
        _add_run_options(parser)
        if name == "run":
            parser.add_argument("--leaderboard-dir", type=Path, default=defaults.MAIN_JOB_DIR / "leaderboard",
                                help="main job only (default: %(default)s)")
            parser.add_argument("--reports-dir", type=Path, default=defaults.MAIN_JOB_DIR / "reports",
                                help="main job only (default: %(default)s)")
        parser.set_defaults(handler=run_command, stages=STAGES[name])

    predict = subparsers.add_parser("predict", help="segment a folder of images with trained weights (one mask PNG each)")
    predict.add_argument("input_dir", type=Path, help="folder of images")
    predict.add_argument("output_dir", type=Path, help="folder for the masks (label maps, pixel value = class)")
    predict.add_argument("--model", default=None, help="model name; checked against the weights")
    predict.add_argument("--weights", required=True, help="run folder, best.pt, weights folder / model.safetensors, or Hub id org/name[@rev]")
    predict.add_argument("--overlay", action="store_true", help="also write <name>_overlay.png (image with the mask tinted)")
    predict.add_argument("--resolution", type=_side, default=None, help="model input size (default: from the checkpoint)")
    predict.add_argument("--normalization", choices=("zscore", "minmax", "none"), default=None, help="default: from the checkpoint, else zscore")
    predict.add_argument("--eval-policy", choices=("resize", "letterbox", "sliding_window"), default=None, help="default: from the checkpoint, else resize")
    predict.add_argument("--device", default="auto")
    predict.add_argument("--no-progress", action="store_true")
    predict.add_argument("--force", action="store_true", help="redo every mask and replace any file of their names in OUTPUT_DIR (without it, a re-run keeps the masks it wrote and refuses other files in the way)")
    predict.set_defaults(handler=predict_command)

    sweep = subparsers.add_parser("sweep", help="models x datasets x seeds; skips finished combinations, records failures")
    sweep.add_argument("--models", type=_comma_list, required=True, help="comma-separated model names")
    sweep.add_argument("--datasets", type=_comma_list, default=["synthetic"], help="comma-separated datasets (default: synthetic)")
    sweep.add_argument("--seeds", type=_seeds, default=None, help="comma-separated seeds (default: the protocol's seeds)")
    _add_run_options(sweep)
    sweep.add_argument("--slurm", action="store_true", help="submit each combination as a SLURM job (needs submitit)")
    sweep.add_argument("--slurm-partition", default=None)
    sweep.add_argument("--slurm-time", type=int, default=240, help="minutes per job (default: %(default)s)")
    sweep.add_argument("--slurm-gpus", type=int, default=1, help="GPUs per job (default: %(default)s)")
    sweep.add_argument("--slurm-cpus", type=int, default=8, help="CPUs per job (default: %(default)s)")
    sweep.add_argument("--slurm-folder", type=Path, default=Path("runs/slurm"), help="submitit logs (default: %(default)s)")
    sweep.set_defaults(handler=sweep_command)


def _request(args: argparse.Namespace, model: str, dataset: str, seed: int):
    from usemabench.runners.experiment import ExperimentRequest

    return ExperimentRequest(
        model=model, dataset=dataset, protocol=args.protocol or DEFAULT_PROTOCOL, seed=seed, fold=getattr(args, "fold", None),
        runs_dir=args.runs_dir or defaults.RUNS_DIR,
        records_dir=args.records_dir or defaults.RECORDS_DIR, device=args.device, progress=not args.no_progress,
        model_overrides=dict(getattr(args, "model_config", [])), stages=getattr(args, "stages", ("train", "evaluate")),
    )


def run_command(args: argparse.Namespace) -> int:
    if args.model is None:
        if args.stages != ("train", "evaluate") or args.dataset is not None:
            raise UsageError("--model is required (only `usemabench run` with no --model/--dataset runs the main job)")
        ignored = _options_needing_a_model(args)
        if ignored:
            raise UsageError(
                f"{', '.join(ignored)} need --model: without it `usemabench run` runs the main job, which has its "
                "own models, protocol and seed"
            )
        from usemabench.runners.main_job import run_main_job

        return run_main_job(
            runs_dir=args.runs_dir or defaults.MAIN_JOB_DIR / "runs",
            records_dir=args.records_dir or defaults.MAIN_JOB_DIR / "records",
            leaderboard_dir=args.leaderboard_dir,
            reports_dir=args.reports_dir, device=args.device, progress=not args.no_progress,
        )
    from usemabench.runners.experiment import run_experiment

    seed = DEFAULT_SEED if args.seed is None else args.seed
    outcome = run_experiment(_request(args, args.model, args.dataset or "synthetic", seed))
    for path in (outcome.train_record, outcome.eval_record):
        if path is not None:
            print(f"wrote {path}")
    if outcome.status != "ok":
        print(f"usemabench {args.command}: {outcome.error}", file=sys.stderr)
        return 1
    if outcome.metrics:
        dice = outcome.metrics["dice"]
        per_class = ", ".join(f"{name} {value:.4f}" for name, value in dice["per_class"].items())
        print(f"{outcome.tested_on} dice {dice['mean']:.4f} ({per_class}); hd95 {outcome.metrics['hd95']['mean']:.2f} px")
    return 0


def _options_needing_a_model(args: argparse.Namespace) -> list[str]:
    """The options of one experiment that the user gave: the main job would silently ignore them."""
    given = {"--protocol": args.protocol is not None, "--seed": args.seed is not None, "--fold": args.fold is not None,
             "--model-config": bool(args.model_config)}
    return [option for option, present in given.items() if present]


def _side(text: str) -> int:
    """A square side in pixels, refused here when it is no positive integer (torch's own error names no option)."""
    try:
        side = int(text)
    except ValueError:
        side = 0
    if side < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer (pixels per side), got {text!r}")
    return side


def predict_command(args: argparse.Namespace) -> int:
    from usemabench.runners.predict import predict_folder

    report = predict_folder(
        args.model, args.weights, args.input_dir, args.output_dir, overlay=args.overlay, resolution=args.resolution,
        normalization=args.normalization, eval_policy=args.eval_policy, device=args.device, progress=not args.no_progress,
        overwrite=args.force,
    )
    for path, reason in report.failed:
        print(f"usemabench predict: {path}: {reason}", file=sys.stderr)
    print(report.summary(args.output_dir))
    return 1 if report.failed else 0


def sweep_command(args: argparse.Namespace) -> int:
    from usemabench.runners.protocol import load_protocol
    from usemabench.runners.sweep import combinations, run_sweep

    template = _request(args, "", "", 0)
    slurm = None
    if args.slurm:
        slurm = {"folder": args.slurm_folder, "timeout_min": args.slurm_time, "gpus_per_node": args.slurm_gpus,
                 "cpus_per_task": args.slurm_cpus, "model_modules": args.model_module}
        if args.slurm_partition:
            slurm["slurm_partition"] = args.slurm_partition
    seeds = args.seeds if args.seeds is not None else list(load_protocol(template.protocol).seeds)
    items = run_sweep(combinations(args.models, args.datasets, seeds, template), slurm=slurm)
    counts = {status: sum(item.status == status for item in items) for status in sorted({item.status for item in items})}
    print("sweep: " + ", ".join(f"{count} {status}" for status, count in counts.items()))
    return 1 if any(item.status in ("failed", "oom") for item in items) else 0
