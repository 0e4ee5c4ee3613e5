"""Metrics against hand-computed values, including every empty-mask case of the documented rule."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from monai.metrics import compute_hausdorff_distance
from scipy.ndimage import binary_erosion
from scipy.spatial.distance import cdist

from usemabench.datasets.regions import IGNORE_INDEX
from usemabench.runners.metrics import case_metrics, foreground_dice, image_diagonal, summarize


def masks(size=8):
    return torch.zeros(size, size, dtype=torch.long), torch.zeros(size, size, dtype=torch.long)


def test_both_empty_is_perfect():
    prediction, target = masks()
    assert case_metrics(prediction, target, 2)[1] == {"dice": 1.0, "iou": 1.0, "hd95": 0.0, "nsd": 1.0, "hd95_pooled": 0.0}


@pytest.mark.parametrize("empty", ["prediction", "target"])
def test_one_empty_scores_zero_and_the_image_diagonal(empty):
    prediction, target = masks()
    (target if empty == "prediction" else prediction)[3, 4] = 1
    scores = case_metrics(prediction, target, 2)[1]
    diagonal = pytest.approx(math.hypot(8, 8))
    assert scores == {"dice": 0.0, "iou": 0.0, "hd95": diagonal, "nsd": 0.0, "hd95_pooled": diagonal}


def test_one_pixel_structure_found_exactly_and_one_pixel_off():
    prediction, target = masks()
    target[2, 2] = prediction[2, 2] = 1
    assert case_metrics(prediction, target, 2)[1] == {"dice": 1.0, "iou": 1.0, "hd95": 0.0, "nsd": 1.0, "hd95_pooled": 0.0}
    prediction[2, 2], prediction[2, 3] = 0, 1
    assert case_metrics(prediction, target, 2, nsd_tolerance=2.0)[1] == {
        "dice": 0.0, "iou": 0.0, "hd95": 1.0, "nsd": 1.0, "hd95_pooled": 1.0
    }
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
    assert case_metrics(prediction, target, 2, spacing=(2.0, 3.0))[1]["hd95_pooled"] == pytest.approx(3.0)
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
        {"case_id": "a", "class": "x", "dice": 1.0, "iou": 1.0, "hd95": 0.0, "nsd": 1.0, "hd95_pooled": 0.0},
        {"case_id": "b", "class": "x", "dice": 0.5, "iou": 0.25, "hd95": 2.0, "nsd": 0.5, "hd95_pooled": 1.0},
        {"case_id": "a", "class": "y", "dice": 0.0, "iou": 0.0, "hd95": 4.0, "nsd": 0.0, "hd95_pooled": 4.0},
        {"case_id": "b", "class": "y", "dice": 0.0, "iou": 0.0, "hd95": 4.0, "nsd": 0.0, "hd95_pooled": 4.0},
    ]
    summary = summarize(rows, ["x", "y"])
    assert summary["dice"] == {"mean": pytest.approx(0.375), "per_class": {"x": 0.75, "y": 0.0}}
    assert summary["hd95"]["mean"] == pytest.approx(2.5)
    assert summary["hd95_pooled"] == {"mean": pytest.approx(2.25), "per_class": {"x": 0.5, "y": 4.0}}
    assert summary["num_cases"] == 2


def test_bad_input_is_named():
    prediction, target = masks()
    with pytest.raises(ValueError, match="outside 0..1"):
        case_metrics(prediction + 2, target, 2)
    with pytest.raises(ValueError, match="must be equal"):
        case_metrics(prediction[:4], target, 2)


def _reference_hd95s(predicted: np.ndarray, reference: np.ndarray, spacing=(1.0, 1.0)) -> tuple[float, float]:
    """Slow, independent HD95s: boundary = mask XOR its erosion (scipy's default cross, pixels outside the image
    count as background, as in medpy), every boundary-to-boundary distance by brute force."""
    def boundary(mask):
        return np.argwhere(mask ^ binary_erosion(mask)) * np.asarray(spacing)

    distances = cdist(boundary(predicted), boundary(reference))
    to_reference, to_prediction = distances.min(axis=1), distances.min(axis=0)
    directed = max(np.percentile(to_reference, 95), np.percentile(to_prediction, 95))
    return float(directed), float(np.percentile(np.concatenate([to_reference, to_prediction]), 95))


def _blobs(seed: int, size=(40, 56)) -> tuple[torch.Tensor, torch.Tensor]:
    """Two overlapping irregular masks, one touching the image border (borders are edges in both conventions)."""
    generator = np.random.default_rng(seed)
    rows, columns = np.mgrid[: size[0], : size[1]]
    def blob():
        centre, radii = generator.uniform(5, 35, 2), generator.uniform(4, 15, 2)
        wobble = 1 + 0.3 * np.sin(generator.uniform(2, 6) * np.arctan2(rows - centre[0], columns - centre[1]))
        return ((rows - centre[0]) / radii[0]) ** 2 + ((columns - centre[1]) / radii[1]) ** 2 < wobble
    target = blob() | blob()
    prediction = target ^ (generator.random(size) < 0.08) | blob()
    prediction[:, :3] = True
    return torch.from_numpy(prediction.astype(np.int64)), torch.from_numpy(target.astype(np.int64))


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("spacing", [None, (2.0, 0.5)])
def test_both_hd95_conventions_match_an_independent_implementation(seed, spacing):
    prediction, target = _blobs(seed)
    scores = case_metrics(prediction, target, 2, spacing=spacing)[1]
    directed, pooled = _reference_hd95s(prediction.numpy() == 1, target.numpy() == 1, spacing or (1.0, 1.0))
    assert scores["hd95"] == pytest.approx(directed, rel=1e-5)
    assert scores["hd95_pooled"] == pytest.approx(pooled, rel=1e-5)


def test_hd95_is_still_exactly_monais_compute_hausdorff_distance():
    prediction, target = _blobs(7)
    one_hot = [torch.nn.functional.one_hot(labels, 2).permute(2, 0, 1)[None].float() for labels in (prediction, target)]
    monai_value = compute_hausdorff_distance(*one_hot, include_background=False, percentile=95)[0, 0]
    assert case_metrics(prediction, target, 2)[1]["hd95"] == float(monai_value)


def test_the_conventions_differ_where_one_direction_has_a_long_tail():
    # Target: a 10x10 square (36 boundary px). Prediction: the same square plus a 1-px spur of 12 px to the
    # right of row 10, which makes the square's pixel (10, 14) interior: 35 + 12 boundary px.
    # prediction -> target: 35 zeros and the spur at 1..12; sorted, the 95th percentile (linear, rank
    # 0.95 * 46 = 43.7) lies between 9 and 10: 9.7. target -> prediction: 35 zeros and one 1.
    # Pooled, 83 values (70 zeros, 1, 1, 2..12), rank 0.95 * 82 = 77.9, between 7 and 8: 7.9.
    prediction, target = masks(32)
    target[5:15, 5:15] = 1
    prediction[5:15, 5:15] = 1
    prediction[10, 15:27] = 1
    scores = case_metrics(prediction, target, 2)[1]
    assert scores["hd95"] == pytest.approx(9.7) and scores["hd95_pooled"] == pytest.approx(7.9)
    assert (scores["hd95"], scores["hd95_pooled"]) == pytest.approx(_reference_hd95s(prediction.numpy() == 1, target.numpy() == 1))


def test_ignored_pixels_are_neither_hits_nor_misses():
    # Target square at columns 2-5; the prediction adds a false blob at columns 10-12, which lies outside
    # the field of view (target == IGNORE_INDEX from column 9): scores equal those of a perfect prediction.
    prediction, target = masks(16)
    target[2:6, 2:6] = 1
    prediction[2:6, 2:6] = 1
    prediction[3:5, 10:13] = 1
    target[:, 9:] = IGNORE_INDEX
    assert case_metrics(prediction, target, 2)[1] == {"dice": 1.0, "iou": 1.0, "hd95": 0.0, "nsd": 1.0, "hd95_pooled": 0.0}
    assert foreground_dice(prediction, target, 2) == 1.0


def test_scores_with_an_ignore_region_equal_those_of_the_masked_maps():
    prediction, target = _blobs(3)
    ignored = target.clone()
    ignored[:, 30:] = IGNORE_INDEX
    expected = case_metrics(prediction.masked_fill(ignored == IGNORE_INDEX, 0), target.masked_fill(ignored == IGNORE_INDEX, 0), 2)
    assert case_metrics(prediction, ignored, 2) == expected
    assert case_metrics(prediction, ignored, 2) != case_metrics(prediction, target, 2)


def test_a_structure_only_inside_the_ignored_area_counts_as_absent():
    prediction, target = masks(8)
    target[1, 1] = IGNORE_INDEX
    prediction[1, 1] = 1
    assert case_metrics(prediction, target, 2)[1]["dice"] == 1.0  # both empty where scored
