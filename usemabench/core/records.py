"""Records: the one output format of every run (train, eval, profile, bench), one JSON file each.

A record is written once, atomically, and never edited; leaderboards, charts and model cards are pure
functions of the records. Its typed schema is `usemabench.core.schema.RECORD_SCHEMA`; records are validated
against it when made, when written and when read, and readers skip (and name) a file that does not follow
it, never crash on it or pool it.

Fields (schema version 1):
    schema_version  int
    kind            "train" | "eval" | "profile" | "bench"
    status          "ok" | "failed" | "oom" | "unsupported"
    model           {"name", "config_hash", "config"} or None (an op benchmark)
    dataset         {"name", "source", "split", "split_hash", optional "split_file", "data_hash", "fold"} or None
    protocol        {"name", "hash", optional "precision_override"} or None
    seed            int or None
    resolution      [height, width] or None
    metrics         per kind (e.g. {"dice": {"mean": .., "per_class": {...}}, "hd95": ...}); the schema types the
                    fields the readers use and leaves the rest free
    cost            params, macs and flops as separate fields, memory with its method, latency, ...
    environment     versions, git commit, device name, precision, kernel backends
    files           relative paths of artifacts beside the record (per-case CSV, checkpoint, log)
    error           why, when status is not "ok"
    created         ISO-8601 UTC timestamp (informational; never used in generated outputs)
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import subprocess
from dataclasses import dataclass
from pathlib import Path

from usemabench.core import __version__
from usemabench.core.hashing import content_hash
from usemabench.core.io import atomic_write_json
from usemabench.core.schema import SCHEMA_VERSION, RecordError, validate_record


def make_record(
    kind: str,
    *,
    status: str = "ok",
    model: dict | None = None,
    dataset: dict | None = None,
    protocol: dict | None = None,
    seed: int | None = None,
    resolution: list[int] | tuple[int, int] | None = None,
    metrics: dict | None = None,
    cost: dict | None = None,
    environment: dict | None = None,
    files: dict | None = None,
    error: str | None = None,
) -> dict:
    """A validated record dict; `environment` defaults to `environment_info()`."""
    record = {
        "schema_version": SCHEMA_VERSION,
        "kind": kind,
        "status": status,
        "model": model,
        "dataset": dataset,
        "protocol": protocol,
        "seed": seed,
        "resolution": list(resolution) if resolution is not None else None,
        "metrics": metrics or {},
        "cost": cost or {},
        "environment": environment if environment is not None else environment_info(),
        "files": files or {},
        "error": error,
        "created": _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat(),
    }
    validate_record(record)
    return record


def model_entry(name: str, config: dict) -> dict:
    """The `model` field: name plus the full constructor config and its hash."""
    return {"name": name, "config": config, "config_hash": content_hash(config)}


def record_filename(record: dict) -> str:
    """A readable, collision-free file name derived from the record's identity fields."""
    parts = [record["kind"]]
    if record.get("model"):
        parts.append(record["model"]["name"])
    if record.get("dataset"):
        parts.append(record["dataset"]["name"])
    if record.get("protocol"):
        parts.append(record["protocol"]["name"])
    if record.get("resolution"):
        parts.append("x".join(str(side) for side in record["resolution"]))
    if record.get("seed") is not None:
        parts.append(f"seed{record['seed']}")
    if (record.get("dataset") or {}).get("fold") is not None:
        parts.append(f"fold{record['dataset']['fold']}")
    identity = {key: record.get(key) for key in ("kind", "model", "dataset", "protocol", "seed", "resolution")}
    identity["device"] = record["environment"].get("device")
    identity["precision"] = record["environment"].get("precision")
    identity["mode"] = record["cost"].get("mode")
    identity["variant"] = record["metrics"].get("variant")
    batch = record["cost"].get("batch")
    if batch not in (None, 1):  # batch 1, the profiler's default, stays out so existing names do not change
        parts.append(f"batch{batch}")
        identity["batch"] = batch
    safe = "_".join(str(part).replace("/", "-").replace(" ", "-") for part in parts)
    return f"{safe}_{content_hash(identity, 8)}.json"


def write_record(record: dict, records_dir: str | os.PathLike, filename: str | None = None) -> Path:
    """Validate and write `record` atomically under `records_dir`; returns its path.

    A record that is not ok never replaces an ok record of the same run (a failed re-run would erase the
    result): it is written beside it, its status added to the name (`..._failed.json`).
    """
    validate_record(record, f"record to write in {records_dir}")
    path = Path(records_dir) / (filename or record_filename(record))
    if record["status"] != "ok" and holds_ok_record(path):
        path = path.with_name(f"{path.stem}_{record['status']}{path.suffix}")
    return atomic_write_json(path, record)


def holds_ok_record(path: Path) -> bool:
    """Whether `path` is a valid record with status ok (a missing or unreadable file is not)."""
    try:
        return read_record(path)["status"] == "ok"
    except RecordError:
        return False


@dataclass(frozen=True)
class SkippedRecord:
    path: Path
    reason: str


def read_record(path: str | os.PathLike) -> dict:
    path = Path(path)
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise RecordError(f"{path}: not a readable JSON record ({error})") from error
    return validate_record(payload, str(path))


def read_records(records_dir: str | os.PathLike, kind: str | None = None) -> tuple[list[dict], list[SkippedRecord]]:
    """All valid records under `records_dir` (recursively, sorted by path) and the files skipped, with why."""
    records: list[dict] = []
    skipped: list[SkippedRecord] = []
    for path in sorted(Path(records_dir).rglob("*.json")):
        try:
            record = read_record(path)
        except RecordError as error:
            skipped.append(SkippedRecord(path, str(error)))
            continue
        if kind is None or record["kind"] == kind:
            record["_path"] = str(path)
            records.append(record)
    return records, skipped


def git_commit() -> str | None:
    """The commit of the usemabench checkout, when it is one (None for an installed wheel)."""
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() or None if result.returncode == 0 else None


def device_name(device: str = "cpu") -> str:
    """A human name for the device: the GPU's name on CUDA, the processor on the CPU."""
    import torch

    if str(device).startswith("cuda") and torch.cuda.is_available():
        return torch.cuda.get_device_name(torch.device(device))
    return f"cpu: {platform.processor() or platform.machine()} ({os.cpu_count()} cores)"


def environment_info(device: str = "cpu", precision: str = "fp32", backends: dict | None = None) -> dict:
    """Versions, commit, device, precision and the kernel backends that ran."""
    import torch

    return {
        "usemabench": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "git_commit": git_commit(),
        "device": device_name(device),
        "device_type": str(device).split(":")[0],
        "precision": precision,
        "backends": backends or {},
        "threads": torch.get_num_threads(),
    }
