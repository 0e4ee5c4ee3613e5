"""Metrics against hand-computed values, including every empty-mask case of the documented rule."""

from __future__ import annotations

import math

import pytest
import torch

from usemabench.runners.metrics import case_metrics, foreground_dice, image_diagonal, summarize


def masks(size=8):
    return torch.zeros(size, size, dtype=torch.long), torch.zeros(size, size, dtype=torch.long)


def test_both_empty_is_perfect():
    prediction, target = masks()
    assert case_metrics(prediction, target, 2)[1] == {"dice": 1.0, "iou": 1.0, "hd95": 0.0, "nsd": 1.0}


@pytest.mark.parametrize("empty", ["prediction", "target"])
def test_one_empty_scores_zero_and_the_image_diagonal(empty):
    prediction, target = masks()
    (target if empty == "prediction" else prediction)[3, 4] = 1
    scores = case_metrics(prediction, target, 2)[1]
    assert scores == {"dice": 0.0, "iou": 0.0, "hd95": pytest.approx(math.hypot(8, 8)), "nsd": 0.0}


def test_one_pixel_structure_found_exactly_and_one_pixel_off():
    prediction, target = masks()
    target[2, 2] = prediction[2, 2] = 1
    assert case_metrics(prediction, target, 2)[1] == {"dice": 1.0, "iou": 1.0, "hd95": 0.0, "nsd": 1.0}
    prediction[2, 2], prediction[2, 3] = 0, 1
    assert case_metrics(prediction, target, 2, nsd_tolerance=2.0)[1] == {"dice": 0.0, "iou": 0.0, "hd95": 1.0, "nsd": 1.0}
    assert case_metrics(prediction, target, 2, nsd_tolerance=0.5)[1]["nsd"] == 0.0


def test_square_shifted_by_one_column():
    # 4x4 squares, columns 2-5 vs 3-6: overlap 12 px. Each 12-px boundary has 6 px on the other boundary
    # (distance 0) and 6 px at distance 1, so HD95 = 1, and NSD = 12/24 with a tolerance below 1 px.
    prediction, target = masks()
    target[2:6, 2:6] = 1
    prediction[2:6, 3:7] = 1
    scores = case_metrics(prediction, target, 2, nsd_tolerance=2.0)[1]
    assert scores["dice"] == pytest.approx(2 * 12 / 32)
    assert scores["iou"] == pytest.approx(12 / 20)
    assert scores["hd95"] == pytest.approx(1.0)
    assert scores["nsd"] == pytest.approx(1.0)
    assert case_metrics(prediction, target, 2, nsd_tolerance=0.5)[1]["nsd"] == pytest.approx(0.5)


def test_spacing_scales_distances_and_the_diagonal():
    prediction, target = masks()
    target[2, 2], prediction[2, 3] = 1, 1
    assert case_metrics(prediction, target, 2, spacing=(2.0, 3.0))[1]["hd95"] == pytest.approx(3.0)
    prediction.zero_()
    assert case_metrics(prediction, target, 2, spacing=(2.0, 3.0))[1]["hd95"] == pytest.approx(image_diagonal(8, 8, (2.0, 3.0)))
    assert image_diagonal(8, 8, (2.0, 3.0)) == pytest.approx(math.hypot(16, 24))


def test_classes_are_scored_separately_and_background_is_not():
    prediction, target = masks()
    target[0:2, 0:2] = 1
    prediction[0:2, 0:2] = 1
    prediction[6, 6] = 2  # class 2 hallucinated; absent from the target
    scores = case_metrics(prediction, target, 3)
    assert sorted(scores) == [1, 2]
    assert scores[1]["dice"] == 1.0
    assert scores[2]["dice"] == 0.0 and scores[2]["hd95"] == pytest.approx(math.hypot(8, 8))


def test_fast_validation_dice_agrees_with_monai():
    generator = torch.Generator().manual_seed(0)
    prediction = torch.randint(0, 3, (16, 16), generator=generator)
    target = torch.randint(0, 3, (16, 16), generator=generator)
    scores = case_metrics(prediction, target, 3)
    assert foreground_dice(prediction, target, 3) == pytest.approx((scores[1]["dice"] + scores[2]["dice"]) / 2)


def test_summary_means_over_cases_then_classes():
    rows = [
        {"case_id": "a", "class": "x", "dice": 1.0, "iou": 1.0, "hd95": 0.0, "nsd": 1.0},
        {"case_id": "b", "class": "x", "dice": 0.5, "iou": 0.25, "hd95": 2.0, "nsd": 0.5},
        {"case_id": "a", "class": "y", "dice": 0.0, "iou": 0.0, "hd95": 4.0, "nsd": 0.0},
        {"case_id": "b", "class": "y", "dice": 0.0, "iou": 0.0, "hd95": 4.0, "nsd": 0.0},
    ]
    summary = summarize(rows, ["x", "y"])
    assert summary["dice"] == {"mean": pytest.approx(0.375), "per_class": {"x": 0.75, "y": 0.0}}
    assert summary["hd95"]["mean"] == pytest.approx(2.5)
    assert summary["num_cases"] == 2


def test_bad_input_is_named():
    prediction, target = masks()
    with pytest.raises(ValueError, match="outside 0..1"):
        case_metrics(prediction + 2, target, 2)
    with pytest.raises(ValueError, match="must be equal"):
        case_metrics(prediction[:4], target, 2)
