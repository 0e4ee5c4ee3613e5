"""One experiment = train + evaluate + two records (`usemabench run --model M --dataset D --protocol P --seed S`).

The run folder `runs/<model>/<dataset>/<protocol>/seed<S>[-fold<K>]` holds the checkpoints and the epoch log; the
same command resumes an interrupted run from it, but only when the run's identity matches: model config,
protocol, split, precision and the data's content hash (`datasets/fingerprint.py`; `data.json` in the run
folder says what changed when it does not). Names that become folders must be plain (`core/names.py`).
Records go to `records_dir`: a train record (its log CSV
beside it) and an eval record (per-case CSV and PNGs beside it). A failure during training or evaluation
writes the record of that stage with status `failed` (or `oom`) and the error, so a sweep shows it instead
of a gap; bad arguments (unknown model, dataset or protocol, a config the model does not take) fail before
anything is written.
"""

from __future__ import annotations

import json
import os
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from usemabench.datasets import SegmentationDataset, eval_transform, get_dataset_spec, training_transform
from usemabench.datasets.fingerprint import DataFingerprint, dataset_fingerprint
from usemabench.datasets.spec import DatasetSpec
from usemabench.datasets.splits import ensure_split_file, run_parts, split_entry
from usemabench.core.io import atomic_write_json, atomic_write_text
from usemabench.core.names import UnsafeNameError, plain_name
from usemabench.core.records import (
    environment_info, holds_ok_record, make_record, model_entry, record_filename, write_record,
)
from usemabench.runners import defaults
from usemabench.runners.backends import kernel_backends
from usemabench.runners.checkpoint import BEST, LAST, load_checkpoint
from usemabench.runners.distributed import DistributedContext, init_distributed
from usemabench.runners.errors import RunInterrupted, UsageError, registered_model
from usemabench.runners.evaluate import evaluate_model, write_eval_record
from usemabench.runners.precision import resolve_device, resolve_precision
from usemabench.runners.protocol import Protocol, load_protocol
from usemabench.runners.seeding import derive_seed, seed_everything
from usemabench.runners.train import TrainResult, train
from usemabench.zoo.registry import count_parameters, create_model

DATA_FINGERPRINT = "data.json"  # in the run folder: the data the run was trained on (`_claim_run_dir`)


@dataclass(frozen=True)
class ExperimentRequest:
    model: str
    dataset: str
    protocol: str = "quick"
    seed: int = 0
    fold: int | None = None  # train on fold K of a split with folds (`run_parts`)
    runs_dir: Path = defaults.RUNS_DIR
    records_dir: Path = defaults.RECORDS_DIR
    device: str = "auto"
    model_overrides: dict[str, Any] = field(default_factory=dict)
    progress: bool = True
    stages: tuple[str, ...] = ("train", "evaluate")


@dataclass(frozen=True)
class ExperimentOutcome:
    status: str
    train_record: Path | None = None
    eval_record: Path | None = None
    error: str | None = None
    metrics: dict = field(default_factory=dict)
    tested_on: str = "test"  # the split the metrics are of (a fold run without a test part: its fold's val)


@dataclass(frozen=True)
class Prepared:
    """Everything checked before any file is written: a bad name fails here, without a record."""

    request: ExperimentRequest
    protocol: Protocol
    spec: DatasetSpec
    model_config: dict
    context: DistributedContext
    device: torch.device
    precision: str
    precision_override: str | None
    data: DataFingerprint
    parts: dict[str, str]  # {"train" | "val" | "test": the split playing it}

    @property
    def run_dir(self) -> Path:
        """`runs_dir/<model>/<dataset>/<protocol>/seed<S>[-fold<K>]`; every part was checked by `plain_name` in `prepare`."""
        name = self.request.model
        if self.request.model_overrides:
            name += "-" + model_entry(name, self.model_config)["config_hash"]
        run = f"seed{self.request.seed}" + (f"-fold{self.request.fold}" if self.request.fold is not None else "")
        return Path(self.request.runs_dir) / name / self.spec.name / self.protocol.name / run

    @property
    def eval_checkpoint(self) -> str:
        """The checkpoint evaluated: the protocol's (`best.pt`, best validation Dice, or `last.pt`), but `last.pt`
        when the run is tested on its own validation part (a fold run on a split without a test part), so
        the score is never of the checkpoint that very part chose."""
        if self.protocol.evaluation.checkpoint == "best" and self.parts["test"] != self.parts["val"]:
            return BEST
        return LAST

    def dataset_entry(self, role: str) -> dict:
        """The `dataset` field of every record of this run (train, eval, failed) about the split playing `role`:
        one shape, so one file name; a fold run names its fold."""
        fold = {"fold": self.request.fold} if self.request.fold is not None else {}
        return {**split_entry(self.spec, self.parts[role]), "data_hash": self.data.data_hash, **fold}

    def record_fields(self, role: str, backends: dict | None = None) -> dict:
        return {
            "model": model_entry(self.request.model, self.model_config),
            "dataset": self.dataset_entry(role),
            "protocol": self.protocol.record_entry(self.precision_override),
            "seed": self.request.seed,
            "resolution": list(self.protocol.resolution),
            "environment": environment_info(str(self.device), self.precision, backends or {}),
        }


def prepare(request: ExperimentRequest) -> Prepared:
    protocol = load_protocol(request.protocol)
    spec = get_dataset_spec(request.dataset)
    info = registered_model(request.model)
    try:
        for name, what in ((request.model, "model name"), (spec.name, "dataset name"), (protocol.name, "protocol name")):
            plain_name(name, what)
    except UnsafeNameError as error:
        raise UsageError(str(error)) from None
    context = init_distributed()
    device = resolve_device(request.device, context.local_rank)
    requested, override_key = protocol.precision_for(request.model, info.family)
    precision = resolve_precision(requested, device)
    config = {"in_channels": spec.in_channels, "num_classes": spec.num_classes, **info.default_config, **request.model_overrides}
    override = f"{override_key}: {requested}" if override_key else None
    parts = run_parts(ensure_split_file(spec), request.fold)
    return Prepared(request, protocol, spec, config, context, device, precision, override, dataset_fingerprint(spec), parts)


def run_experiment(request: ExperimentRequest) -> ExperimentOutcome:
    """Train (resuming if possible) and/or evaluate the chosen checkpoint on the test split, writing records.

    `request.stages` picks `train`, `evaluate` or both (`usemabench train`, `evaluate`, `run`).
    """
    prepared = prepare(request)
    started = time.perf_counter()
    spec, protocol, parts = prepared.spec, prepared.protocol, prepared.parts
    train_set = SegmentationDataset(spec, parts["train"], training_transform(spec, protocol.resolution, protocol.augmentation))
    test_set = SegmentationDataset(spec, parts["test"], eval_transform(spec))
    if "train" not in request.stages and not (prepared.run_dir / prepared.eval_checkpoint).is_file():
        raise FileNotFoundError(f"no {prepared.eval_checkpoint} in {prepared.run_dir}: train this combination first")
    _claim_run_dir(prepared)
    seed_everything(derive_seed(request.seed, "model"))
    try:
        model = create_model(request.model, spec.in_channels, spec.num_classes, **request.model_overrides)
    except TypeError as error:
        if not _refuses_an_override(error, request.model_overrides):
            raise
        raise UsageError(f"model {request.model!r} does not accept the config {request.model_overrides}: {error}") from error
    stage, train_path, outcome = "training", None, ExperimentOutcome("ok")
    try:
        if "train" in request.stages:
            val_set = SegmentationDataset(spec, parts["val"], eval_transform(spec))
            result = train(
                model, train_set, val_set, protocol,
                seed=request.seed, run_dir=prepared.run_dir, num_classes=spec.num_classes, device=prepared.device,
                precision=prepared.precision, eval_policy=spec.eval_policy, identity=_identity(prepared),
                metadata={"preprocessing": preprocessing(spec, protocol)}, context=prepared.context,
                progress=request.progress,
            )
            if not prepared.context.is_main:
                return outcome
            backends = _backends(prepared, model)
            train_path = _write_train_record(prepared, model, result, backends, time.perf_counter() - started)
            outcome = ExperimentOutcome("ok", train_path)
        if "evaluate" in request.stages and prepared.context.is_main:
            stage = "evaluation"
            outcome = _evaluate(prepared, model, test_set, train_path)
    except KeyboardInterrupt:  # Ctrl-C: not a failure to record; the CLI says where the run picks up again
        raise RunInterrupted(stage, prepared.run_dir / LAST) from None
    except Exception as error:  # noqa: BLE001 - recorded, then reported by the caller
        if not prepared.context.is_main:
            raise
        return _record_failure(prepared, stage, error)
    return outcome


def _refuses_an_override(error: TypeError, overrides: dict[str, Any]) -> bool:
    """Whether `error` is Python refusing one of `overrides` as a keyword, at whatever depth the builder passes
    its config on (builders take **config, so their signatures cannot tell); any other TypeError raised while
    building is a bug of the model's and keeps its traceback."""
    return any(f"unexpected keyword argument {key!r}" in str(error) for key in overrides)


def _backends(prepared: Prepared, model: torch.nn.Module) -> dict:
    """Kernel backends, probed at the training resolution (a size every model accepts)."""
    probe = torch.zeros(1, prepared.spec.in_channels, *prepared.protocol.resolution)
    return kernel_backends(model, probe, prepared.device, prepared.precision)




def preprocessing(spec: DatasetSpec, protocol: Protocol) -> dict:
    """What `predict` needs to treat new images like the training data (stored in checkpoints)."""
    normalization = spec.normalization if isinstance(spec.normalization, str) else {k: list(v) for k, v in spec.normalization.items()}
    return {
        "dataset": spec.name,
        "class_names": list(spec.class_names),
        "in_channels": spec.in_channels,
        "normalization": normalization,
        "resolution": list(protocol.resolution),
        "eval_policy": spec.eval_policy,
    }


def _evaluate(prepared: Prepared, model: torch.nn.Module, test_set: SegmentationDataset, train_path: Path | None) -> ExperimentOutcome:
    spec, protocol = prepared.spec, prepared.protocol
    path = prepared.run_dir / prepared.eval_checkpoint
    payload = load_checkpoint(path, map_location=prepared.device)
    model.load_state_dict(payload["model"])
    backends = _backends(prepared, model)
    evaluation = evaluate_model(
        model, test_set, class_names=spec.class_names, resolution=protocol.resolution, policy=spec.eval_policy,
        device=prepared.device, precision=prepared.precision, nsd_tolerance=protocol.evaluation.nsd_tolerance_px,
        saved_cases=protocol.evaluation.saved_cases, progress=prepared.request.progress,
    )
    evaluation.metrics["settings"]["checkpoint"] = {
        "which": "best" if path.name == BEST else "last",
        "epoch": payload["epoch"] if path.name == BEST else payload["loop"]["epoch"],
    }
    files = {"train_record": train_path.name} if train_path is not None else {}
    eval_path = write_eval_record(evaluation, prepared.request.records_dir, **prepared.record_fields("test", backends), files=files)
    return ExperimentOutcome("ok", train_path, eval_path, metrics=evaluation.metrics, tested_on=prepared.parts["test"])


def _identity(prepared: Prepared) -> dict:
    """What a checkpoint must match to be resumed: the model config, the split, the data's content, the precision."""
    return {
        "model": prepared.request.model,
        "model_config_hash": model_entry(prepared.request.model, prepared.model_config)["config_hash"],
        "dataset": prepared.spec.name,
        "split_hash": prepared.dataset_entry("train")["split_hash"],
        "data_hash": prepared.data.data_hash,
        "precision": prepared.precision,
    }


def _claim_run_dir(prepared: Prepared) -> None:
    """Write the data fingerprint into a new run folder, or refuse to resume (or evaluate) one trained on other data.

    The checkpoint's identity holds only the data hash; the fingerprint beside it says what changed.
    """
    path = prepared.run_dir / DATA_FINGERPRINT
    checkpoints = [prepared.run_dir / name for name in (LAST, BEST) if (prepared.run_dir / name).is_file()]
    if checkpoints:
        if path.is_file():
            earlier = DataFingerprint.from_json(json.loads(path.read_text(encoding="utf-8")))
            changes = "; ".join(prepared.data.changes_from(earlier)) or "the data hash"
            trained_on = earlier.data_hash
        else:  # a run folder from before data hashes were kept beside the checkpoints
            trained_on = load_checkpoint(checkpoints[0]).get("identity", {}).get("data_hash")
            changes = f"{checkpoints[0].name} names no data hash" if trained_on is None else "the data hash"
        if trained_on != prepared.data.data_hash:
            raise UsageError(
                f"{prepared.run_dir} was trained on other data than dataset '{prepared.spec.name}' holds now "
                f"({changes}); it is not resumed or evaluated. Delete that folder to train afresh, or pass another --runs-dir"
            )
    if not path.is_file() and prepared.context.is_main and "train" in prepared.request.stages:
        atomic_write_json(path, prepared.data.to_json())


def _write_train_record(prepared: Prepared, model, result: TrainResult, backends: dict, wall_seconds: float) -> Path:
    records_dir = Path(prepared.request.records_dir)
    total, trainable = count_parameters(model)
    iterations = prepared.protocol.total_iterations
    record = make_record(
        "train",
        metrics={
            "best_val_dice": result.best_val_dice,
            "best_epoch": result.best_epoch,
            "final_val_dice": result.final_val_dice,
            "steps": result.steps,
            "epochs": result.epochs,
            "resumed_from_step": result.resumed_from_step,
        },
        cost={
            "params": {"total": total, "trainable": trainable},
            "train_seconds": round(result.train_seconds, 3),
            # this process's wall time plus the training time of those it resumed (their set-up time is unknown),
            # so a resumed run never shows less wall time than training time
            "wall_seconds": round(wall_seconds + result.resumed_train_seconds, 3),
            "iterations_per_second": round(iterations / result.train_seconds, 3) if result.train_seconds else None,
            **result.memory,
            "processes": prepared.context.world_size,
        },
        **prepared.record_fields("train", backends),
    )
    filename = record_filename(record)
    if result.steps == result.resumed_from_step and holds_ok_record(records_dir / filename):
        return records_dir / filename  # a re-run of a finished run: the record of the process that trained stands
    log_name = filename.removesuffix(".json") + ".log.csv"
    atomic_write_text(records_dir / log_name, result.log_path.read_text(encoding="utf-8"))
    record["files"] = {"log": log_name, "checkpoint": os.path.relpath(result.checkpoint_path("best"), records_dir)}
    return write_record(record, records_dir, filename)


def _record_failure(prepared: Prepared, stage: str, error: Exception) -> ExperimentOutcome:
    """The record of the stage that failed, only: a training that failed leaves no eval record (none ran)."""
    status = "oom" if isinstance(error, torch.cuda.OutOfMemoryError) else "failed"
    message = f"{stage} failed: {type(error).__name__}: {error}"
    detail = "".join(traceback.format_exception(error, limit=-3))
    kind, split = ("train", "train") if stage == "training" else ("eval", "test")
    record = make_record(kind, status=status, error=f"{message}\n{detail}", **prepared.record_fields(split))
    path = write_record(record, prepared.request.records_dir)
    return ExperimentOutcome(status, path if kind == "train" else None, path if kind == "eval" else None, message)
