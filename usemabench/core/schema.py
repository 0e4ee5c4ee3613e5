"""The typed schemas of the project's JSON documents, defined once: records, protocols, weights configs.

Records are what leaderboards pool, so a record with the right keys but wrong types (`metrics: []`,
`dice: "high"`, `model: "usema_s"`) must never be read as a result: it is refused on write and skipped,
by name, on read. The schemas are JSON Schema (draft 2020-12) checked with `jsonschema`.

What a schema holds: the JSON types and shapes, the fields each record kind needs, and value rules that
need no context. Rules across fields that need the code's knowledge (a protocol's optimizer name, its
warm-up shorter than its iterations) stay with the code that knows them (`runners.protocol`, `zoo.loading`).
"""

from __future__ import annotations

from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

SCHEMA_VERSION = 1
KINDS = ("train", "eval", "profile", "bench")
STATUSES = ("ok", "failed", "oom", "unsupported")
METRIC_SUMMARIES = ("dice", "iou", "hd95", "hd95_pooled", "nsd")  # {"mean": number, "per_class": {class: number}}
MAX_PROBLEMS_SHOWN = 3
MAX_VALUE_CHARS = 60


class SchemaError(ValueError):
    """A JSON document that does not follow its schema; the message names the document and the fields."""


class RecordError(SchemaError):
    """A record file that cannot be used: unreadable, not JSON, wrong types, missing fields, unknown version."""


def _nullable(schema: dict) -> dict:
    return {**schema, "type": [schema["type"], "null"]}


NAME = {"type": "string", "minLength": 1}
HASH = {"type": "string", "pattern": "^[0-9a-f]+$"}
COUNT = {"type": "integer", "minimum": 0}
AMOUNT = {"type": "number", "minimum": 0}
SIZE_PAIR = {"type": "array", "items": {"type": "integer", "minimum": 1}, "minItems": 2, "maxItems": 2}
STRINGS = {"type": "object", "additionalProperties": {"type": "string"}}

METRIC_SUMMARY = {
    "type": "object",
    "required": ["mean"],
    "properties": {"mean": {"type": "number"}, "per_class": {"type": "object", "additionalProperties": {"type": "number"}}},
}

RECORD_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "usemabench record",
    "type": "object",
    "required": [
        "schema_version", "kind", "status", "model", "dataset", "protocol", "seed", "resolution",
        "metrics", "cost", "environment", "files", "error", "created",
    ],
    "additionalProperties": False,
    "properties": {
        "schema_version": {"const": SCHEMA_VERSION},
        "kind": {"enum": list(KINDS)},
        "status": {"enum": list(STATUSES)},
        "model": {
            "type": ["object", "null"],
            "required": ["name", "config_hash", "config"],
            "properties": {"name": NAME, "config_hash": HASH, "config": {"type": "object"}},
        },
        "dataset": {
            "type": ["object", "null"],
            "required": ["name", "source", "split", "split_hash"],
            "properties": {
                "name": NAME, "source": NAME, "split": NAME, "split_hash": HASH,
                "split_file": NAME, "data_hash": HASH, "fold": COUNT,
            },
        },
        "protocol": {
            "type": ["object", "null"],
            "required": ["name", "hash"],
            "properties": {"name": NAME, "hash": HASH, "precision_override": NAME},
        },
        "seed": _nullable(COUNT),
        "resolution": _nullable(SIZE_PAIR),
        "metrics": {
            "type": "object",
            "properties": {
                **{name: METRIC_SUMMARY for name in METRIC_SUMMARIES},
                "num_cases": COUNT,
                "settings": {"type": "object"},
                # train
                "best_val_dice": _nullable({"type": "number"}),
                "final_val_dice": _nullable({"type": "number"}),
                "best_epoch": _nullable(COUNT),
                "steps": COUNT,
                "epochs": COUNT,
                "resumed_from_step": _nullable(COUNT),
                # profile and bench
                "variant": NAME,
                "results": {"type": "object"},
                "unavailable": STRINGS,
            },
        },
        "cost": {
            "type": "object",
            "properties": {
                "params": {"type": "object", "properties": {"total": AMOUNT, "trainable": AMOUNT}},
                "macs": _nullable(AMOUNT),
                "flops": _nullable(AMOUNT),
                "peak_memory_bytes": _nullable(AMOUNT),
                "memory_method": _nullable(NAME),
                "latency_ms": {"type": "object", "properties": {"median": {"type": "number"}, "iqr": {"type": "number"}}},
                "throughput": _nullable(AMOUNT),
                "train_seconds": AMOUNT,
                "wall_seconds": AMOUNT,
                "batch": {"type": "integer", "minimum": 1},
                "mode": NAME,
            },
        },
        "environment": {
            "type": "object",
            "properties": {
                "device": {"type": "string"},
                "precision": {"type": "string"},
                "backends": {"type": "object"},
                "git_commit": {"type": ["string", "null"]},
            },
        },
        "files": STRINGS,
        "error": {"type": ["string", "null"]},
        "created": {"type": "string", "pattern": r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}"},
    },
    "allOf": [
        # A run on data names its model and data, whatever its status.
        {"if": {"properties": {"kind": {"enum": ["train", "eval"]}}},
         "then": {"properties": {"model": {"type": "object"}, "dataset": {"type": "object"}, "protocol": {"type": "object"}}}},
        {"if": {"properties": {"kind": {"const": "profile"}}}, "then": {"properties": {"model": {"type": "object"}}}},
        # An ok evaluation is its scores: no Dice, no result.
        {"if": {"properties": {"kind": {"const": "eval"}, "status": {"const": "ok"}}},
         "then": {"properties": {"metrics": {"required": ["dice"]}}}},
        # A run that did not succeed says why.
        {"if": {"properties": {"status": {"not": {"const": "ok"}}}},
         "then": {"properties": {"error": {"type": "string", "minLength": 1}}}},
    ],
}

PROTOCOL_SCHEMA: dict[str, Any] = {
    # Types and shapes only; names, ranges and cross-field rules are checked by runners.protocol.
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "usemabench training protocol",
    "type": "object",
    "properties": {
        "name": NAME, "description": {"type": "string"}, "budget": {"type": "string"},
        "resolution": {"type": "array", "items": {"type": "integer"}},
        "batch_size": {"type": "integer"}, "epochs": {"type": "integer"}, "iterations_per_epoch": {"type": "integer"},
        "optimizer": {
            "type": "object",
            "properties": {
                "name": NAME, "lr": {"type": "number"}, "weight_decay": {"type": "number"},
                "momentum": {"type": "number"}, "nesterov": {"type": "boolean"},
                "betas": {"type": "array", "items": {"type": "number"}, "minItems": 2, "maxItems": 2},
            },
        },
        "schedule": {
            "type": "object",
            "properties": {"name": NAME, "power": {"type": "number"}, "warmup_iterations": {"type": "integer"}},
        },
        "loss": {
            "type": "object",
            "properties": {"dice_weight": {"type": "number"}, "ce_weight": {"type": "number"}, "deep_supervision": {"type": "boolean"}},
        },
        "augmentation": NAME,
        "precision": NAME,
        "precision_overrides": STRINGS,
        "grad_clip_norm": {"type": ["number", "null"]},
        "seeds": {"type": "array", "items": COUNT},
        "num_workers": {"type": "integer"},
        "checkpoint_every_iterations": {"type": "integer"},
        "execution": NAME,
        "evaluation": {
            "type": "object",
            "properties": {"checkpoint": NAME, "nsd_tolerance_px": {"type": "number"}, "saved_cases": {"type": "integer"}},
        },
    },
}

WEIGHTS_CONFIG_SCHEMA: dict[str, Any] = {
    # config.json of a weights folder (usemabench.hub): what create_model needs to rebuild the network.
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "usemabench weights config",
    "type": "object",
    "required": ["usemabench_name", "in_channels", "num_classes"],
    "properties": {
        "usemabench_name": NAME,
        "in_channels": {"type": "integer", "minimum": 1},
        "num_classes": {"type": "integer", "minimum": 1},
        "overrides": {"type": "object"},
        "usemabench_version": {"type": "string"},
        "preprocessing": {
            "type": "object",
            "properties": {
                "resolution": SIZE_PAIR,
                "normalization": {"type": ["string", "object"]},
                "eval_policy": NAME,
            },
        },
    },
}


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= MAX_VALUE_CHARS else text[: MAX_VALUE_CHARS - 3] + "..."


def _describe(error: ValidationError) -> str:
    """One problem as `field.path: what is wrong`, the offending value shortened (a model config can be long)."""
    where = ".".join(str(part) for part in error.absolute_path) or "(top level)"
    if error.validator == "type":
        expected = error.validator_value if isinstance(error.validator_value, str) else " or ".join(error.validator_value)
        return f"{where}: expected {expected}, got {_short(error.instance)}"
    if error.validator in ("enum", "const"):
        allowed = error.validator_value if error.validator == "enum" else [error.validator_value]
        return f"{where}: {_short(error.instance)} is not one of {', '.join(map(repr, allowed))}"
    if error.validator == "additionalProperties":
        unknown = sorted(set(error.instance) - set(error.schema.get("properties", {})))
        return f"{where}: unknown field(s) {', '.join(unknown)}"
    rules = {
        "minimum": f"is below {error.validator_value}",
        "minItems": f"needs at least {error.validator_value} items",
        "maxItems": f"holds more than {error.validator_value} items",
        "minLength": "must not be empty",
        "pattern": f"does not match {error.validator_value}",
    }
    rule = rules.get(str(error.validator), f"breaks the rule {error.validator}: {_short(error.validator_value)}")
    return f"{where}: {_short(error.instance)} {rule}"


def schema_problems(document: Any, schema: dict) -> list[str]:
    """Every way `document` breaks `schema`, one line each, in field order; empty when it is valid."""
    # One problem per field (each missing field apart): the general rule first, a kind's rule ("allOf") only
    # when the general one found nothing there.
    ordered = sorted(
        Draft202012Validator(schema).iter_errors(document),
        key=lambda error: (tuple(map(str, error.absolute_path)), list(error.relative_schema_path)[:1] == ["allOf"]),
    )
    problems: dict[tuple[str, ...], str] = {}  # (path..., "missing" or "") -> the line
    for error in ordered:
        path = tuple(map(str, error.absolute_path))
        if error.validator == "required":  # all missing fields of one object in one line
            names = [name for name in error.validator_value if name not in error.instance]
            problems[(*path, "missing")] = f"{'.'.join(path) or '(top level)'}: missing {', '.join(names)}"
        else:
            problems.setdefault((*path, ""), _describe(error))
    return list(problems.values())


def require_valid(document: Any, schema: dict, source: str, error: type[SchemaError] = SchemaError) -> Any:
    """`document` unchanged when it follows `schema`; else `error` naming `source` and the first problems."""
    problems = schema_problems(document, schema)
    if problems:
        shown = "; ".join(problems[:MAX_PROBLEMS_SHOWN])
        more = f" (and {len(problems) - MAX_PROBLEMS_SHOWN} more)" if len(problems) > MAX_PROBLEMS_SHOWN else ""
        raise error(f"{source}: {shown}{more}")
    return document


def validate_record(record: Any, source: str = "record") -> dict:
    """`record` when it follows this schema version; RecordError naming `source` and what is wrong otherwise."""
    version = record.get("schema_version") if isinstance(record, dict) else None
    if isinstance(record, dict) and version != SCHEMA_VERSION:
        raise RecordError(f"{source}: schema_version {version!r} is not supported (this usemabench reads {SCHEMA_VERSION})")
    return require_valid(record, RECORD_SCHEMA, source, RecordError)


def validate_protocol(contents: Any, source: str) -> dict:
    return require_valid(contents, PROTOCOL_SCHEMA, source)


def validate_weights_config(config: Any, source: str) -> dict:
    return require_valid(config, WEIGHTS_CONFIG_SCHEMA, source)
