"""The evaluation policy maps native images to model input and logits back to the native size."""

from __future__ import annotations

import pytest
import torch

from usemabench.datasets import get_dataset_spec, predict_native, prepare_eval_input, restore_prediction, sliding_window_logits
from usemabench.datasets.evaluation import native_logits


def test_resize_and_back_shapes_and_constants():
    image = torch.rand(3, 70, 50)
    model_input = prepare_eval_input(image, 32)
    assert model_input.shape == (1, 3, 32, 32)
    logits = torch.full((1, 2, 32, 32), 0.25)
    restored = restore_prediction(logits, (70, 50))
    assert restored.shape == (1, 2, 70, 50) and torch.allclose(restored, torch.full_like(restored, 0.25))
    assert prepare_eval_input(torch.rand(2, 1, 32, 32), 32).shape == (2, 1, 32, 32)


def test_sliding_window_of_a_pointwise_model_equals_the_whole_image():
    """A 1x1 convolution sees each pixel alone, so blending overlapping windows must reproduce it exactly."""
    model = torch.nn.Conv2d(1, 3, kernel_size=1).eval()
    image = torch.randn(1, 1, 70, 45)
    with torch.no_grad():
        expected = model(image)
        windowed = sliding_window_logits(model, image, 32, overlap=0.5)
    assert windowed.shape == (1, 3, 70, 45)
    torch.testing.assert_close(windowed, expected, atol=1e-5, rtol=1e-5)


def test_predict_native_follows_the_spec_policy():
    model = torch.nn.Conv2d(1, 3, kernel_size=1).eval()
    image = torch.randn(1, 1, 40, 60)
    with torch.no_grad():
        whole = model(image)
        resized = restore_prediction(model(prepare_eval_input(image, 32)), (40, 60))
    # A pointwise model: sliding windows reproduce the whole image exactly, resizing down and back does not.
    assert not torch.allclose(resized, whole, atol=1e-3)
    for name, expected in (("synthetic", resized), ("isbi2012_em", whole)):  # resize, sliding_window
        logits = predict_native(model, image, get_dataset_spec(name), 32)
        torch.testing.assert_close(logits, expected, atol=1e-5, rtol=1e-5)
    deep_supervision = lambda x: [model(x), model(x)[:, :, ::2, ::2]]  # noqa: E731 - a list output, full resolution first
    assert predict_native(deep_supervision, image, get_dataset_spec("synthetic"), 32).shape == (1, 3, 40, 60)


def test_unknown_policy_is_named():
    with pytest.raises(ValueError, match="evaluation policy 'tiles'"):
        native_logits(torch.nn.Identity(), torch.rand(1, 8, 8), 8, "tiles")
