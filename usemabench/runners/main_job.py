"""The main job (`usemabench run` with no arguments): the whole pipeline in minutes on a CPU.

Trains and evaluates a small default set (tiny USEMA, a CNN U-Net, U-Mamba_Bot and a full-attention
Transformer, each the registered small variant of its family's model) on the embedded `synthetic`
dataset under the `quick` protocol, profiles them, then regenerates the leaderboard and reports.
Finished combinations (records present) are skipped, so a second run only rebuilds the outputs.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from usemabench.datasets import get_dataset_spec
from usemabench.core.records import device_name, model_entry, read_records
from usemabench.profiler.profile import profile_sweep
from usemabench.reports.build import build
from usemabench.runners import defaults
from usemabench.runners.experiment import ExperimentRequest
from usemabench.runners.precision import resolve_device
from usemabench.runners.protocol import load_protocol
from usemabench.runners.sweep import combinations, run_sweep
from usemabench.zoo.registry import get_model_info, list_models

# One model per family the benchmark is about; each runs as its registered small (CPU) variant.
DEFAULT_FAMILY_MODELS = ("usema_t", "nnunet", "umamba_bot", "transunet")
DATASET = "synthetic"
PROTOCOL = "quick"
SEED = 0
# Inference across sizes for the scaling charts. The leaderboard's MACs, latency and training-memory columns
# read the profiles at the training resolution, so profile_plan adds it to both modes.
PROFILE_PLAN = {"infer": (64, 128, 256), "train": ()}
PROFILE_SETTINGS = {"repeats": 5, "warmup": 2, "batch": 1}


def default_models(log: Callable[[str], None] = print) -> list[str]:
    """The small variants of DEFAULT_FAMILY_MODELS that are registered here (a missing one is reported)."""
    registered = set(list_models())
    models = []
    for name in DEFAULT_FAMILY_MODELS:
        if name not in registered:
            log(f"main job: model {name!r} is not registered; skipped")
            continue
        models.append(get_model_info(name).test_variant or name)
    return models


def profile_plan() -> dict[str, tuple[int, ...]]:
    """PROFILE_PLAN plus PROTOCOL's training resolution in each mode: without it the leaderboard's cost columns stay empty."""
    side = load_protocol(PROTOCOL).resolution[0]
    return {mode: tuple(sorted({*sides, side})) for mode, sides in PROFILE_PLAN.items()}


def run_main_job(
    runs_dir: Path = defaults.MAIN_JOB_DIR / "runs",
    records_dir: Path = defaults.MAIN_JOB_DIR / "records",
    leaderboard_dir: Path = defaults.MAIN_JOB_DIR / "leaderboard",
    reports_dir: Path = defaults.MAIN_JOB_DIR / "reports",
    device: str = "auto",
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> int:
    """Train + evaluate + profile the default models, rebuild the leaderboard; 1 if any step failed.

    A step fails when its record says `failed` or `oom`. An oom counts: the default plan is sized for a
    CPU, so running out of memory there is a defect to see, not a size limit to chart. A size a model
    refuses (`unsupported`) does not.
    """
    started = time.perf_counter()
    models = default_models(log)
    template = ExperimentRequest(model="", dataset=DATASET, protocol=PROTOCOL, runs_dir=Path(runs_dir),
                                 records_dir=Path(records_dir), device=device, progress=progress)
    items = run_sweep(combinations(models, [DATASET], [SEED], template), log=log)
    failed = [item for item in items if item.status not in ("ok", "skipped")]
    skipped = sum(item.status == "skipped" for item in items)
    log(f"main job: trained and evaluated {len(items) - skipped} models, skipped {skipped} whose records exist "
        f"({time.perf_counter() - started:.0f} s)")
    profiles = profile_models(models, Path(records_dir) / "profile", device, log)
    failed_profiles = [record for record in profiles if record["status"] in ("failed", "oom")]
    log(f"main job: profiled ({time.perf_counter() - started:.0f} s)")
    build_leaderboard(Path(records_dir), Path(leaderboard_dir), Path(reports_dir), log)
    log(f"main job: done in {time.perf_counter() - started:.0f} s")
    return 1 if failed or failed_profiles else 0


def profile_models(models: list[str], records_dir: Path, device: str, log: Callable[[str], None]) -> list[dict]:
    """The new profile records of profile_plan() for each model; those already recorded on this device are skipped."""
    spec = get_dataset_spec(DATASET)
    channels = {"in_channels": spec.in_channels, "num_classes": spec.num_classes}
    here = device_name(str(resolve_device(device)))
    existing = set()
    if records_dir.is_dir():
        records, _ = read_records(records_dir, kind="profile")
        existing = {
            (record["model"]["config_hash"], tuple(record["resolution"]), record["cost"].get("mode"))
            for record in records
            if record["status"] == "ok" and record.get("model") and record["environment"].get("device") == here
        }
    made = []
    for name in models:
        config_hash = model_entry(name, {**channels, **get_model_info(name).default_config})["config_hash"]
        for mode, sides in profile_plan().items():
            missing = [side for side in sides if (config_hash, (side, side), mode) not in existing]
            if missing:
                made += profile_sweep([name], missing, modes=(mode,), records_dir=records_dir, log=log, device=device,
                                      **channels, **PROFILE_SETTINGS)
    return made


def build_leaderboard(records_dir: Path, leaderboard_dir: Path, reports_dir: Path, log: Callable[[str], None]) -> None:
    result = build(records_dir, leaderboard_dir, reports_dir)
    for problem in result.problems:
        log(f"main job: skipped record {problem.path}: {problem.reason}")
    log(f"main job: wrote {leaderboard_dir / 'LEADERBOARD.md'} and {reports_dir / 'index.html'}")
