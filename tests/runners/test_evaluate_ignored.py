"""Evaluation of a folder with a field of view: pixels outside it are not scored, and the record says so."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from usemabench.datasets.loader import SegmentationDataset
from usemabench.datasets.spec import get_dataset_spec
from usemabench.runners.evaluate import evaluate_model


class AllForeground(nn.Module):
    """Predicts the foreground class on every pixel."""

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        background = torch.zeros_like(image[:, :1])
        return torch.cat([background, background + 1.0], dim=1)


def _dice_inside(mask_file, fov_columns: int) -> float:
    target = np.asarray(Image.open(mask_file))[:, :fov_columns] > 0
    return 2 * target.sum() / (target.sum() + target.size)


@pytest.mark.parametrize("with_fov", [True, False])
def test_an_fov_folder_limits_every_metric_and_is_named_in_the_settings(blob_folder, with_fov):
    if with_fov:
        for image in sorted((blob_folder / "images").iterdir()):
            fov = np.zeros((40, 36), np.uint8)
            fov[:, :18] = 1
            (blob_folder / "fov").mkdir(exist_ok=True)
            Image.fromarray(fov).save(blob_folder / "fov" / image.name)
    spec = get_dataset_spec(f"folder:{blob_folder}")
    dataset = SegmentationDataset(spec, "test")
    evaluation = evaluate_model(
        AllForeground(), dataset, class_names=spec.class_names, resolution=(32, 32), policy="resize",
        device=torch.device("cpu"), progress=False,
    )
    columns = 18 if with_fov else 36
    expected = [_dice_inside(blob_folder / "masks" / f"{row['case_id']}.png", columns) for row in evaluation.rows]
    assert [row["dice"] for row in evaluation.rows] == pytest.approx(expected)
    settings = evaluation.metrics["settings"]
    assert settings["ignored_pixels"] == ("pixels outside the fov/ mask" if with_fov else "none")
    assert all(labels.min() >= 0 for _, labels in evaluation.saved["labels"])  # saved label PNGs stay uint8 classes


def test_a_run_on_a_folder_with_an_ignore_mask_trains_and_records_it(blob_folder, tiny_protocol_file, tmp_path):
    from usemabench.cli import main
    from usemabench.core.records import read_records

    for image in sorted((blob_folder / "images").iterdir()):
        band = np.zeros((40, 36), np.uint8)
        band[:, 30:] = 255
        (blob_folder / "ignore").mkdir(exist_ok=True)
        Image.fromarray(band).save(blob_folder / "ignore" / image.name)
    assert main([
        "run", "--model", "nnunet_small", "--dataset", f"folder:{blob_folder}", "--protocol", str(tiny_protocol_file),
        "--runs-dir", str(tmp_path / "runs"), "--records-dir", str(tmp_path / "records"), "--device", "cpu", "--no-progress",
    ]) == 0
    (train,), _ = read_records(tmp_path / "records", kind="train")
    (evaluation,), _ = read_records(tmp_path / "records", kind="eval")
    assert train["status"] == "ok" and 0.0 <= train["metrics"]["final_val_dice"] <= 1.0
    assert evaluation["metrics"]["settings"]["ignored_pixels"] == "pixels inside the ignore/ mask"
