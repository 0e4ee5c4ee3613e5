"""Fabricated records for leaderboard and report tests (tmp folders only; never committed as results).

Also defines the session fixtures `fabricated_records` and `built_outputs`, re-exported by the
conftest.py of tests/leaderboard and tests/reports.

Scores are drawn from a seeded generator with a fixed offset per model, so the expected ordering is
known: usema_s > unet > umamba_bot > transunet. The set also holds the awkward cases the leaderboard
must show rather than drop: an out-of-memory training run, a trained but never evaluated seed, a model
missing from a second dataset, an out-of-memory profile point, and (optionally) bad record files.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from usemabench.reports.build import build
from usemabench.core.records import make_record, model_entry, write_record

GPU = "NVIDIA H100 80GB HBM3"
CLASSES = ("background", "left", "right")
MODEL_OFFSETS = {"usema_s": 0.08, "unet": 0.05, "umamba_bot": 0.03, "transunet": 0.0}
MODEL_COSTS = {  # params, MACs per pixel, bytes per pixel, ms per pixel, exponent of pixels
    "usema_s": (29.8e6, 400.0, 3000.0, 1e-4, 1.0),
    "unet": (31.0e6, 700.0, 2500.0, 0.8e-4, 1.0),
    "umamba_bot": (28.0e6, 600.0, 2800.0, 1.2e-4, 1.0),
    "transunet": (105.0e6, 500.0, 20.0, 1e-6, 1.5),
}
RESOLUTION = 64
CASES = [f"case_{index:02d}" for index in range(10)]


def _environment(device: str = GPU, precision: str = "bf16") -> dict:
    return {"device": device, "precision": precision, "torch": "2.11.0", "backends": {}, "git_commit": None}


def _entities(model: str, dataset: str) -> dict:
    return {
        "model": model_entry(model, {"in_channels": 1, "num_classes": len(CLASSES)}),
        "dataset": {"name": dataset, "source": "folder", "split": "test", "split_hash": "abc"},
        "protocol": {"name": "quick", "hash": "def"},
    }


def _write_eval(root: Path, model: str, dataset: str, seed: int, rng: np.random.Generator, predictions: bool) -> None:
    folder = root / dataset / model / f"seed{seed}"
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["case_id,class,dice,iou,hd95,nsd"]
    per_class: dict[str, list[float]] = {name: [] for name in CLASSES[1:]}
    hd95_values = []
    for case_index, case in enumerate(CASES):
        for name in CLASSES[1:]:
            dice = float(np.clip(0.7 + MODEL_OFFSETS[model] + 0.02 * (case_index % 3) + rng.normal(0, 0.02), 0, 1))
            hd95 = float(10 * (1 - dice) + rng.uniform(0, 1))
            per_class[name].append(dice)
            hd95_values.append(hd95)
            lines.append(f"{case},{name},{dice:.6f},{dice / (2 - dice):.6f},{hd95:.4f},{min(1.0, dice + 0.05):.6f}")
    (folder / "per_case.csv").write_text("\n".join(lines) + "\n")
    files = {"per_case": "per_case.csv"}
    if predictions:
        files.update({"predictions": "predictions", "images": "images", "labels": "labels"})
        _write_masks(folder, model, seed)
    means = {name: float(np.mean(values)) for name, values in per_class.items()}
    metrics = {
        "dice": {"mean": float(np.mean(list(means.values()))), "per_class": means},
        "iou": {"mean": 0.7},
        "hd95": {"mean": float(np.mean(hd95_values))},
        "nsd": {"mean": 0.9},
    }
    record = make_record(
        "eval", seed=seed, resolution=[RESOLUTION, RESOLUTION], metrics=metrics, files=files,
        environment=_environment(), **_entities(model, dataset),
    )
    write_record(record, folder)


def _write_masks(folder: Path, model: str, seed: int) -> None:
    """A disc image with a two-class label; each model's prediction is the label shifted by its index."""
    shift = list(MODEL_OFFSETS).index(model) + seed
    yy, xx = np.mgrid[:32, :32]
    for index, case in enumerate(CASES[:4]):
        label = np.zeros((32, 32), np.uint8)
        label[(yy - 16) ** 2 + (xx - 10 - index) ** 2 < 36] = 1
        label[(yy - 16) ** 2 + (xx - 22) ** 2 < 25] = 2
        image = (label * 80 + 30 + (xx * 2)).astype(np.uint8)
        for subfolder, array in (("images", image), ("labels", label), ("predictions", np.roll(label, shift, axis=1))):
            (folder / subfolder).mkdir(exist_ok=True)
            Image.fromarray(array).save(folder / subfolder / f"{case}.png")


def _write_train(root: Path, model: str, dataset: str, seed: int, status: str = "ok") -> None:
    cost = {"params": {"total": MODEL_COSTS[model][0]}} if status == "ok" else {}
    if status == "ok":
        cost["peak_memory_bytes"] = 2.0e9 + 1e8 * list(MODEL_OFFSETS).index(model)
    record = make_record(
        "train", status=status, seed=seed, resolution=[RESOLUTION, RESOLUTION], cost=cost,
        environment=_environment(), error="CUDA out of memory. Tried to allocate 2.00 GiB" if status == "oom" else None,
        **_entities(model, dataset),
    )
    write_record(record, root / dataset / model / f"seed{seed}")


def _write_profiles(root: Path) -> None:
    for model, (params, macs_per_pixel, bytes_per_pixel, ms_per_pixel, exponent) in MODEL_COSTS.items():
        for mode in ("infer", "train"):
            for side in (64, 128, 256, 512):
                pixels = side * side
                oom = model == "transunet" and mode == "train" and side == 512
                cost = {"mode": mode, "batch": 1}
                if not oom:
                    factor = 3.0 if mode == "train" else 1.0
                    cost.update({
                        "params": {"total": params, "trainable": params},
                        "macs": macs_per_pixel * pixels ** exponent,
                        "flops": 2 * macs_per_pixel * pixels ** exponent,
                        "peak_memory_bytes": factor * bytes_per_pixel * pixels ** exponent,
                        "memory_method": "torch.cuda.max_memory_allocated",
                        "latency_ms": {"median": factor * ms_per_pixel * pixels ** exponent, "iqr": 0.01},
                        "throughput": 1000.0 / (factor * ms_per_pixel * pixels ** exponent),
                    })
                record = make_record(
                    "profile", status="oom" if oom else "ok", model=model_entry(model, {}), resolution=[side, side],
                    cost=cost, environment=_environment(), error="CUDA out of memory" if oom else None,
                )
                write_record(record, root / "profiles")


def _write_bench(root: Path) -> None:
    """An op benchmark in the nested layout: full attention quadratic (out of memory at the top), SEMA linear."""
    results = {"op": {"full": [], "sema": []}}
    for tokens in (1024, 4096, 16384):
        oom = tokens == 16384
        results["op"]["full"].append(
            {"tokens": tokens, "status": "oom"} if oom else
            {"tokens": tokens, "status": "ok", "time_ms": {"median": 1e-6 * tokens**2}, "peak_memory_mb": 1e-5 * tokens**2}
        )
        results["op"]["sema"].append(
            {"grid": [int(tokens**0.5)] * 2, "status": "ok", "time_ms": {"median": 1e-3 * tokens}, "peak_memory_mb": 1e-3 * tokens}
        )
    record = make_record(
        "bench", metrics={"variant": "sema_attention", "results": results},
        cost={"mode": "forward+backward", "timing_method": "CUDA events"}, environment=_environment(),
    )
    write_record(record, root / "bench")


def fabricate_records(root: Path, bad_files: bool = True, predictions: bool = True) -> Path:
    """Write a small but complete records tree under `root` and return it."""
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1234)
    for model in MODEL_OFFSETS:
        for seed in (0, 1, 2):
            if model == "transunet" and seed == 2:
                _write_train(root, model, "toy", seed, status="oom")
                continue
            _write_train(root, model, "toy", seed)
            if model == "umamba_bot" and seed == 1:
                continue  # trained, never evaluated
            _write_eval(root, model, "toy", seed, rng, predictions=predictions and seed == 0)
    for model in ("usema_s", "unet"):
        _write_train(root, model, "other", 0)
        _write_eval(root, model, "other", 0, rng, predictions=False)
    _write_profiles(root)
    _write_bench(root)
    if bad_files:
        (root / "broken.json").write_text('{"schema_version": 1, "kind": ')
        future = make_record("eval", metrics={"dice": {"mean": 0.99}}, environment=_environment(), **_entities("usema_s", "toy"))
        future["schema_version"] = 99
        (root / "future.json").write_text(json.dumps(future))
    return root


# Both conftests import these fixtures, so pytest would build them once per folder; this module is
# imported once, so it keeps the session's copies and the (slow, figure-drawing) build runs once.
_SESSION: dict[str, Path] = {}


@pytest.fixture(scope="session")
def fabricated_records(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fabricated records tree shared by the session's tests: read it, never change it (copy first)."""
    if "records" not in _SESSION:
        _SESSION["records"] = fabricate_records(tmp_path_factory.mktemp("fabricated") / "records")
    return _SESSION["records"]


@pytest.fixture(scope="session")
def built_outputs(fabricated_records: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`leaderboard/` and `reports/` built from `fabricated_records`, under one folder (read only)."""
    if "built" not in _SESSION:
        root = tmp_path_factory.mktemp("built")
        build(fabricated_records, root / "leaderboard", root / "reports")
        _SESSION["built"] = root
    return _SESSION["built"]
