"""Training protocols: named recipes stored as JSON data, so every model is trained by the same numbers.

A protocol is loaded from `usemabench/runners/protocols/<name>.json` or from any JSON file path. Its hash
covers the file's full contents (canonical JSON), so two records with the same protocol hash were trained
by exactly the same recipe. Unknown or missing keys are errors naming the file, never silently ignored.
The optional `execution` field (`runners.execution.EXEC_MODES`, default eager) says how the training steps
run (channels_last, torch.compile); left out, it adds nothing to the contents, so older hashes stay.
"""

from __future__ import annotations

import fnmatch
import json
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any

from usemabench.core.hashing import content_hash
from usemabench.core.schema import SchemaError, validate_protocol
from usemabench.runners.execution import DEFAULT_EXEC, EXEC_MODES

PROTOCOLS_DIR = Path(__file__).parent / "protocols"
PRECISIONS = ("fp32", "bf16", "fp16")
OPTIMIZERS = ("sgd", "adamw")
SCHEDULES = ("poly", "constant")
CHECKPOINT_CHOICES = ("best", "last")


class ProtocolError(ValueError):
    """A protocol file that is missing, not JSON, or has missing, unknown or invalid fields."""


@dataclass(frozen=True)
class OptimizerConfig:
    name: str
    lr: float
    weight_decay: float = 0.0
    momentum: float = 0.0
    nesterov: bool = False
    betas: tuple[float, float] = (0.9, 0.999)


@dataclass(frozen=True)
class ScheduleConfig:
    """`poly`: lr · (1 - t/T)^power after an optional linear warm-up (nnU-Net's schedule, per iteration)."""

    name: str
    power: float = 0.9
    warmup_iterations: int = 0


@dataclass(frozen=True)
class LossConfig:
    """Dice + cross-entropy; with deep supervision, nnU-Net's weights 1, 1/2, 1/4, ... (coarsest 0), normalised."""

    dice_weight: float = 1.0
    ce_weight: float = 1.0
    deep_supervision: bool = True


@dataclass(frozen=True)
class EvaluationConfig:
    checkpoint: str = "best"
    nsd_tolerance_px: float = 2.0
    saved_cases: int = 4


@dataclass(frozen=True)
class Protocol:
    name: str
    description: str
    budget: str
    resolution: tuple[int, int]
    batch_size: int
    epochs: int
    iterations_per_epoch: int
    optimizer: OptimizerConfig
    schedule: ScheduleConfig
    loss: LossConfig
    augmentation: str
    precision: str
    precision_overrides: dict[str, str]
    grad_clip_norm: float | None
    seeds: tuple[int, ...]
    num_workers: int
    checkpoint_every_iterations: int
    evaluation: EvaluationConfig
    contents: dict[str, Any] = field(compare=False, repr=False)
    source: str = field(default="", compare=False)
    execution: str = DEFAULT_EXEC

    @property
    def total_iterations(self) -> int:
        return self.epochs * self.iterations_per_epoch

    @property
    def hash(self) -> str:
        return content_hash(self.contents)

    def record_entry(self, precision_override: str | None = None) -> dict:
        """The `protocol` field of a record: name, hash of the full contents, and any per-model override."""
        entry = {"name": self.name, "hash": self.hash}
        if precision_override is not None:
            entry["precision_override"] = precision_override
        return entry

    def precision_for(self, model_name: str, family: str) -> tuple[str, str | None]:
        """(precision, matching override key or None): keys are name globs or `family:<family>`."""
        for key, precision in self.precision_overrides.items():
            if key == f"family:{family}" or (not key.startswith("family:") and fnmatch.fnmatch(model_name, key)):
                return precision, key
        return self.precision, None


def available_protocols() -> list[str]:
    return sorted(path.stem for path in PROTOCOLS_DIR.glob("*.json"))


def load_protocol(name_or_path: str | Path) -> Protocol:
    """A packaged protocol by name (`quick`, `standard`, `gpu-short`) or a JSON file of the same shape."""
    path = Path(name_or_path)
    if not path.suffix == ".json":
        path = PROTOCOLS_DIR / f"{name_or_path}.json"
        if not path.is_file():
            raise ProtocolError(f"unknown protocol {str(name_or_path)!r}; packaged: {', '.join(available_protocols())}, or pass a .json file")
    try:
        contents = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as error:
        raise ProtocolError(f"protocol file {path} does not exist") from error
    except (OSError, json.JSONDecodeError) as error:
        raise ProtocolError(f"protocol file {path} is not readable JSON: {error}") from error
    return protocol_from_dict(contents, source=str(path))


def protocol_from_dict(contents: dict[str, Any], source: str = "protocol") -> Protocol:
    if not isinstance(contents, dict):
        raise ProtocolError(f"{source}: a protocol must be a JSON object")
    top = _check_keys(contents, Protocol, source, exclude=("contents", "source"))
    sections = {
        "optimizer": _section(contents, "optimizer", OptimizerConfig, source),
        "schedule": _section(contents, "schedule", ScheduleConfig, source),
        "loss": _section(contents, "loss", LossConfig, source),
        "evaluation": _section(contents, "evaluation", EvaluationConfig, source),
    }
    try:
        validate_protocol(contents, source)  # the JSON types, before any value is used
    except SchemaError as error:
        raise ProtocolError(str(error)) from None
    grad_clip = top["grad_clip_norm"]
    protocol = Protocol(
        name=str(top["name"]),
        execution=str(top.get("execution", DEFAULT_EXEC)),
        description=str(top["description"]),
        budget=str(top["budget"]),
        resolution=_pair(top["resolution"], "resolution", source),
        batch_size=_positive_int(top["batch_size"], "batch_size", source),
        epochs=_positive_int(top["epochs"], "epochs", source),
        iterations_per_epoch=_positive_int(top["iterations_per_epoch"], "iterations_per_epoch", source),
        augmentation=str(top["augmentation"]),
        precision=str(top["precision"]),
        precision_overrides=dict(top["precision_overrides"]),
        grad_clip_norm=None if grad_clip is None else float(grad_clip),
        seeds=tuple(int(seed) for seed in top["seeds"]),
        num_workers=int(top["num_workers"]),
        checkpoint_every_iterations=int(top["checkpoint_every_iterations"]),
        contents=json.loads(json.dumps(contents)),
        source=source,
        **sections,
    )
    _validate(protocol, source)
    return protocol


def _check_keys(contents: dict, cls: type, source: str, exclude: tuple[str, ...] = ()) -> dict:
    known = {item.name for item in fields(cls)} - set(exclude)
    required = {
        item.name for item in fields(cls)
        if item.name in known and item.default is MISSING and item.default_factory is MISSING
    }
    unknown = sorted(set(contents) - known)
    missing = sorted(required - set(contents))
    where = f"{source}" if cls is Protocol else f"{source}: {cls.__name__}"
    if unknown:
        raise ProtocolError(f"{where}: unknown field(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    if missing:
        raise ProtocolError(f"{where}: missing field(s) {', '.join(missing)}")
    return contents


def _section(contents: dict, key: str, cls: type, source: str) -> Any:
    value = contents[key]
    if not isinstance(value, dict):
        raise ProtocolError(f"{source}: {key} must be an object")
    _check_keys(value, cls, source)
    if "betas" in value:
        value = {**value, "betas": tuple(value["betas"])}
    return cls(**value)


def _pair(value: Any, key: str, source: str) -> tuple[int, int]:
    if not (isinstance(value, list) and len(value) == 2 and all(isinstance(side, int) and side > 0 for side in value)):
        raise ProtocolError(f"{source}: {key} must be [height, width] of positive integers, got {value!r}")
    return int(value[0]), int(value[1])


def _positive_int(value: Any, key: str, source: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ProtocolError(f"{source}: {key} must be a positive integer, got {value!r}")
    return value


def _validate(protocol: Protocol, source: str) -> None:
    checks = [
        (protocol.optimizer.name in OPTIMIZERS, f"optimizer.name must be one of {OPTIMIZERS}"),
        (protocol.schedule.name in SCHEDULES, f"schedule.name must be one of {SCHEDULES}"),
        (protocol.precision in PRECISIONS, f"precision must be one of {PRECISIONS}"),
        (all(value in PRECISIONS for value in protocol.precision_overrides.values()),
         f"precision_overrides values must be one of {PRECISIONS}"),
        (protocol.evaluation.checkpoint in CHECKPOINT_CHOICES, f"evaluation.checkpoint must be one of {CHECKPOINT_CHOICES}"),
        (protocol.optimizer.lr > 0, "optimizer.lr must be positive"),
        (0 <= protocol.schedule.warmup_iterations < protocol.total_iterations,
         "schedule.warmup_iterations must be below epochs x iterations_per_epoch"),
        (protocol.num_workers >= 0 and protocol.checkpoint_every_iterations >= 0,
         "num_workers and checkpoint_every_iterations must be >= 0"),
        (protocol.grad_clip_norm is None or protocol.grad_clip_norm > 0, "grad_clip_norm must be positive or null"),
        (len(protocol.seeds) > 0, "seeds must list at least one seed"),
        (protocol.execution in EXEC_MODES, f"execution must be one of {EXEC_MODES}"),
    ]
    for ok, message in checks:
        if not ok:
            raise ProtocolError(f"{source}: {message}")
