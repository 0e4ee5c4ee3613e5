"""A finished run becomes a pretrained manifest entry; `publish` pushes the Hub entries not yet pushed.

`add_run` reads a run's checkpoint and its train and eval records and writes the weights as safetensors
(fp16 on request, when the test Dice, re-evaluated, moves by at most 0.002): beside the manifest for a packaged entry (shipped in the wheel, loaded offline), or as a
Hub weights folder (config.json, model.safetensors, model card) under a staging folder for an entry to be
published. The entry records what the weights expect and what they were shown to do (the train record's
sha256, the test Dice). `publish` uploads each Hub entry whose revision is still unset and pins the commit.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import torch
from safetensors.torch import save

from usemabench.core.io import atomic_write_bytes, atomic_write_json, file_sha256
from usemabench.core.names import plain_name
from usemabench.datasets import SegmentationDataset, eval_transform, get_dataset_spec
from usemabench.hub import WEIGHTS_NAME, half_state_dict, model_config, push_folder_commit, save_pretrained
from usemabench.hub_commands import find_run_records
from usemabench.model_card import build_model_card, dataset_terms
from usemabench.runners.errors import UsageError
from usemabench.runners.evaluate import evaluate_model
from usemabench.runners.weights import load_weights
from usemabench.zoo.loading import build_from_spec, load_state
from usemabench.zoo.pretrained import MANIFEST_PATH, PretrainedCfg, load_manifest, manifest_payload

DEFAULT_STAGING_DIR = Path("weights-staging")
FP16_DICE_TOLERANCE = 0.002  # fp16 weights ship only when the test Dice moves by no more than this


def record_hashes(train: dict) -> dict[str, str]:
    """The protocol, model config, split and data hashes of a training record (empty where it has none)."""
    dataset, protocol, model = (train.get(key) or {} for key in ("dataset", "protocol", "model"))
    return {
        "protocol_hash": protocol.get("hash", ""),
        "config_hash": model.get("config_hash", ""),
        "split_hash": dataset.get("split_hash", ""),
        "data_hash": dataset.get("data_hash", ""),
    }


def reevaluate_test_dice(model: torch.nn.Module, preprocessing: dict) -> float:
    """Mean Dice on the test split of the weights' dataset, prepared as training prepared it (CPU, fp32)."""
    spec = get_dataset_spec(preprocessing["dataset"])
    evaluation = evaluate_model(
        model, SegmentationDataset(spec, "test", eval_transform(spec)), class_names=spec.class_names,
        resolution=tuple(preprocessing["resolution"]), policy=preprocessing["eval_policy"], device=torch.device("cpu"),
        saved_cases=0, progress=False,
    )
    return float(evaluation.metrics["dice"]["mean"])


def check_fp16(model: torch.nn.Module, preprocessing: dict, recorded_dice: float, name: str) -> float:
    """The test Dice of the fp16-rounded weights, re-evaluated; refused when it differs from the eval record's
    (the fp32 weights') by more than FP16_DICE_TOLERANCE. A record evaluated at another precision than the CPU's
    fp32 adds its own difference, so the check errs towards refusing."""
    rounded = build_from_spec(model.usemabench_spec, name)
    load_state(rounded, half_state_dict(model), name)  # fp16 values, cast back into an fp32 model
    half = reevaluate_test_dice(rounded.eval(), preprocessing)
    if abs(half - recorded_dice) > FP16_DICE_TOLERANCE:
        raise UsageError(f"{name}: fp16 weights change the test Dice from {recorded_dice:.4f} to {half:.4f} (more than "
                         f"{FP16_DICE_TOLERANCE}); add it without --fp16")
    return half


def check_tag(tag: str) -> str:
    """A tag is one plain name part without dots (the dot separates it from the architecture)."""
    plain_name(tag, "tag")
    if "." in tag:
        raise UsageError(f"tag {tag!r} cannot contain '.': it would be read as part of arch.tag")
    return tag


def write_manifest(entries: dict[str, PretrainedCfg], manifest: Path) -> None:
    atomic_write_json(manifest, manifest_payload(entries))


def add_run(
    run_dir: Path,
    tag: str,
    records_dir: Path,
    manifest: Path = MANIFEST_PATH,
    fp16: bool = False,
    hub_id: str | None = None,
    staging_dir: Path = DEFAULT_STAGING_DIR,
    default: bool = False,
    force: bool = False,
) -> PretrainedCfg:
    """Export the run in `run_dir` as the manifest entry `arch.tag`; returns the entry written."""
    check_tag(tag)
    loaded = load_weights(str(run_dir))
    model, spec = loaded.model, loaded.model.usemabench_spec
    name = f"{spec['name']}.{tag}"
    entries = load_manifest(manifest)
    if name in entries and not force:
        raise UsageError(f"{manifest} already lists {name}; pass --force to replace it")
    train, evaluation = find_run_records(run_dir, records_dir)
    if train is None or evaluation is None:
        missing = "train record" if train is None else "eval record"
        raise UsageError(f"no {missing} of {run_dir} in {records_dir}: a pretrained entry carries the training record's "
                         "hash and the test Dice (give the run's --records-dir)")
    if train.get("status") != "ok" or evaluation.get("status") != "ok":
        raise UsageError(f"the records of {run_dir} are not both ok (train: {train.get('status')}, eval: {evaluation.get('status')})")
    preprocessing = loaded.preprocessing
    data_license, _ = dataset_terms(evaluation.get("dataset") or {})
    dtype = "float16" if fp16 else "float32"
    recorded_dice = float(evaluation["metrics"]["dice"]["mean"])
    if fp16:
        check_fp16(model, preprocessing, recorded_dice, name)
    if hub_id is None:
        file_name = f"{name}.safetensors"
        weights_path = manifest.parent / file_name
        state = half_state_dict(model) if fp16 else {key: value.detach().contiguous().clone() for key, value in model.state_dict().items()}
        atomic_write_bytes(weights_path, save(state, metadata={"format": "pt", "usemabench_name": name}))
    else:
        file_name = None
        card = build_model_card(model.usemabench_info, model_config(model), train, evaluation, Path(evaluation["_path"]).parent)
        folder = staging_dir / name
        save_pretrained(model, folder, card, preprocessing=preprocessing, fp16=fp16)
        weights_path = folder / WEIGHTS_NAME
    cfg = PretrainedCfg(
        architecture=spec["name"],
        tag=tag,
        sha256=file_sha256(weights_path),
        in_channels=spec["in_channels"],
        num_classes=spec["num_classes"],
        class_names=list(preprocessing.get("class_names", [])),
        preprocessing=preprocessing,
        file=file_name,
        hub_id=hub_id,
        overrides=dict(spec["overrides"]),
        dtype=dtype,
        license=data_license,
        dataset=(evaluation.get("dataset") or {}).get("name", ""),
        protocol=(train.get("protocol") or {}).get("name", ""),
        train_record=Path(train["_path"]).name,
        train_record_sha256=file_sha256(train["_path"]),
        **record_hashes(train),
        test_dice=recorded_dice,
        default=default,
    )
    if default:
        entries = {key: replace(entry, default=False) if entry.architecture == cfg.architecture else entry for key, entry in entries.items()}
    entries[name] = cfg
    write_manifest(entries, manifest)
    return cfg


def publish(manifest: Path = MANIFEST_PATH, staging_dir: Path = DEFAULT_STAGING_DIR, token: str | None = None) -> list[PretrainedCfg]:
    """Push every Hub entry whose revision is unset from `staging_dir/<arch.tag>/`; pin each commit in the manifest.

    The manifest is rewritten after each push, so an interrupted publish keeps what it pushed. Returns the
    entries pushed.
    """
    entries = load_manifest(manifest)
    pending = [cfg for cfg in entries.values() if cfg.hub_id is not None and cfg.revision is None]
    for cfg in pending:
        folder = staging_dir / cfg.name
        if not (folder / WEIGHTS_NAME).is_file():
            raise UsageError(f"{cfg.name}: no {folder / WEIGHTS_NAME} to publish (weights add writes it; give --staging-dir)")
        actual = file_sha256(folder / WEIGHTS_NAME)
        if actual != cfg.sha256:
            raise UsageError(f"{folder / WEIGHTS_NAME}: sha256 {actual}, but {manifest} records {cfg.sha256} for {cfg.name}")
        _, revision = push_folder_commit(folder, cfg.hub_id, token=token)  # uploads the Hub files only
        entries[cfg.name] = replace(cfg, revision=revision)
        write_manifest(entries, manifest)
    return [entries[cfg.name] for cfg in pending]


def entry_size(cfg: PretrainedCfg, manifest: Path) -> int | None:
    """Bytes of a packaged entry's file (None for Hub entries or a missing file)."""
    path = manifest.parent / cfg.file if cfg.file else None
    return os.path.getsize(path) if path is not None and path.is_file() else None
