"""Dice+CE loss and nnU-Net's deep-supervision weighting."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from monai.losses import DiceCELoss

from usemabench.datasets.regions import IGNORE_INDEX
from usemabench.runners.losses import SegmentationLoss, deep_supervision_weights


def test_deep_supervision_weights_follow_nnunet():
    assert deep_supervision_weights(1) == [1.0]
    assert deep_supervision_weights(3) == pytest.approx([1 / 1.5, 0.5 / 1.5, 0.0])
    assert sum(deep_supervision_weights(5)) == pytest.approx(1.0)


def test_loss_is_the_weighted_sum_over_outputs_with_nearest_downsampled_targets():
    generator = torch.Generator().manual_seed(0)
    target = torch.randint(0, 3, (2, 16, 16), generator=generator)
    outputs = [torch.randn(2, 3, 16, 16, generator=generator), torch.randn(2, 3, 8, 8, generator=generator),
               torch.randn(2, 3, 4, 4, generator=generator)]
    reference = DiceCELoss(include_background=False, to_onehot_y=True, softmax=True, batch=True, smooth_nr=1e-5, smooth_dr=1e-5)
    half = F.interpolate(target.unsqueeze(1).float(), size=(8, 8), mode="nearest")
    expected = (reference(outputs[0], target.unsqueeze(1).float()) + 0.5 * reference(outputs[1], half)) / 1.5
    assert SegmentationLoss()(outputs, target) == pytest.approx(float(expected), rel=1e-6)
    assert SegmentationLoss(deep_supervision=False)(outputs, target) == pytest.approx(
        float(reference(outputs[0], target.unsqueeze(1).float())), rel=1e-6
    )


def test_perfect_prediction_has_near_zero_loss():
    target = torch.zeros(1, 8, 8, dtype=torch.long)
    target[0, 2:5, 2:5] = 1
    logits = F.one_hot(target, 2).permute(0, 3, 1, 2).float() * 50
    assert float(SegmentationLoss()(logits, target)) < 1e-3


def test_without_ignored_pixels_the_loss_is_bit_for_bit_monais_dice_ce():
    generator = torch.Generator().manual_seed(1)
    logits = torch.randn(3, 4, 12, 10, generator=generator)
    target = torch.randint(0, 4, (3, 12, 10), generator=generator)
    reference = DiceCELoss(include_background=False, to_onehot_y=True, softmax=True, batch=True, smooth_nr=1e-5, smooth_dr=1e-5)
    assert torch.equal(SegmentationLoss()(logits, target), reference(logits, target.unsqueeze(1).float()))


def test_ignored_pixels_add_nothing_the_loss_equals_that_of_the_scored_crop():
    generator = torch.Generator().manual_seed(2)
    logits = torch.randn(2, 3, 16, 16, generator=generator, requires_grad=True)
    target = torch.randint(0, 3, (2, 16, 16), generator=generator)
    ignored = target.clone()
    ignored[:, :, 10:] = IGNORE_INDEX  # columns 10.. lie outside the field of view
    loss = SegmentationLoss(deep_supervision=False)(logits, ignored)
    crop = SegmentationLoss(deep_supervision=False)(logits[..., :10], target[..., :10])
    assert float(loss.detach()) == pytest.approx(float(crop.detach()), rel=1e-6)
    loss.backward()
    assert logits.grad is not None and not logits.grad[..., 10:].any() and logits.grad[..., :10].abs().sum() > 0


def test_a_batch_with_every_pixel_ignored_gives_a_finite_zero_loss():
    logits = torch.randn(1, 2, 8, 8, requires_grad=True)
    loss = SegmentationLoss()(logits, torch.full((1, 8, 8), IGNORE_INDEX))
    assert float(loss.detach()) == 0.0
    loss.backward()
    assert not logits.grad.any()
