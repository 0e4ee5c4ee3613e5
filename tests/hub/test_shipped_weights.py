"""The weights the package ships reproduce the test Dice their manifest entry claims, re-evaluated here on the
shared real data (within 0.005); the re-evaluation itself is checked on a tiny synthetic run."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from usemabench import create_model
from usemabench.cli import main
from usemabench.datasets import SegmentationDataset, eval_transform, get_dataset_spec
from usemabench.runners.evaluate import evaluate_model
from usemabench.zoo.pretrained import MANIFEST_PATH, PretrainedCfg, get_pretrained_cfg, load_manifest

TOLERANCE = 0.005
SHIPPED = sorted(name for name, cfg in load_manifest(MANIFEST_PATH).items() if cfg.file is not None)


def reevaluated_dice(cfg: PretrainedCfg) -> float:
    """Mean test Dice of the entry's weights on its dataset's test split, prepared as training prepared it."""
    spec = get_dataset_spec(cfg.dataset)
    model = create_model(cfg.name, pretrained=True)
    evaluation = evaluate_model(
        model, SegmentationDataset(spec, "test", eval_transform(spec)), class_names=spec.class_names,
        resolution=tuple(cfg.resolution), policy=cfg.preprocessing["eval_policy"], device=torch.device("cpu"),
        saved_cases=0, progress=False,
    )
    return float(evaluation.metrics["dice"]["mean"])


@pytest.mark.slow
def test_reevaluation_reproduces_the_recorded_dice(tiny_run, manifest: Path) -> None:
    run_dir, records = tiny_run
    assert main(["weights", "add", str(run_dir), "--tag", "t", "--records-dir", str(records), "--manifest", str(manifest)]) == 0
    cfg = get_pretrained_cfg("usema_tiny.t")
    assert abs(reevaluated_dice(cfg) - cfg.test_dice) <= 1e-6


@pytest.mark.data
@pytest.mark.slow
@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_weights_reproduce_their_test_dice(name: str, shared_data: Path) -> None:
    cfg = get_pretrained_cfg(name)
    assert abs(reevaluated_dice(cfg) - cfg.test_dice) <= TOLERANCE, name
