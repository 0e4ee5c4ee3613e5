"""Image and mask are transformed together: same geometry, nearest-neighbour masks, intensity on images only."""

from __future__ import annotations

import pytest
import torch
from torchvision import tv_tensors

from usemabench.datasets import DatasetError, get_dataset_spec, normalize_image, training_transform
from usemabench.datasets.transforms import resolve_augmentation

RESIZE_SPEC = get_dataset_spec("synthetic")  # eval_policy "resize"
WINDOW_SPEC = get_dataset_spec("isbi2012_em")  # eval_policy "sliding_window"
GEOMETRY_ONLY = {"preset": "default", "contrast": 0, "brightness": 0, "noise_prob": 0, "blur_prob": 0}


def blocky_pair(height: int = 72, width: int = 88) -> tuple[torch.Tensor, torch.Tensor]:
    """An image of large constant blocks (values 0.1 / 0.9) and the mask equal to `image > 0.5`."""
    torch.manual_seed(1)
    coarse = (torch.rand(1, 1, height // 8, width // 8) > 0.5).float()
    image = torch.nn.functional.interpolate(coarse, size=(height, width), mode="nearest")[0] * 0.8 + 0.1
    return image, (image[0] > 0.5).long()


def apply(transform, image: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    out_image, out_mask = transform(tv_tensors.Image(image), tv_tensors.Mask(mask))
    return out_image.as_subclass(torch.Tensor), out_mask.as_subclass(torch.Tensor)


@pytest.mark.parametrize("spec", [RESIZE_SPEC, WINDOW_SPEC], ids=["resize", "sliding_window"])
def test_flips_and_crops_keep_mask_equal_to_thresholded_image(spec):
    transform = training_transform(spec, 48, {"preset": "light"})
    image, mask = blocky_pair()
    for seed in range(8):
        torch.manual_seed(seed)
        out_image, out_mask = apply(transform, image, mask)
        assert out_image.shape == (1, 48, 48) and out_mask.shape == (48, 48)
        if spec.eval_policy == "sliding_window":  # a crop moves pixels without resampling: exactly equal
            assert torch.equal(out_mask, (out_image[0] > 0.5).long())


@pytest.mark.parametrize("spec", [RESIZE_SPEC, WINDOW_SPEC], ids=["resize", "sliding_window"])
def test_rotation_and_zoom_move_image_and_mask_together(spec):
    transform = training_transform(spec, 64, GEOMETRY_ONLY)
    image, mask = blocky_pair()
    for seed in range(8):
        torch.manual_seed(seed)
        out_image, out_mask = apply(transform, image, mask)
        torch.manual_seed(seed)  # the same draw on a blank frame shows where the image ends (rotation fill, padding)
        frame, _ = apply(transform, torch.ones_like(image), mask)
        assert set(out_mask.unique().tolist()) <= {0, 1}, "nearest-neighbour masks gain no new values"
        disagree = (out_image[0] > 0.5) != out_mask.bool()
        # bilinear images and nearest masks may differ only along the mask's edges and the frame's edges
        tolerated = near_edge(out_mask, radius=2) | near_edge((frame[0] > 0.999).long(), radius=2)
        assert not (disagree & ~tolerated)[2:-2, 2:-2].any(), f"seed {seed}: image and mask geometry differ"
        assert disagree.float().mean() < 0.1


def near_edge(mask: torch.Tensor, radius: int) -> torch.Tensor:
    """Pixels within `radius` of a change of mask value."""
    as_float = mask[None, None].float()
    pool = torch.nn.functional.max_pool2d
    size = 2 * radius + 1
    return (pool(as_float, size, 1, radius) != -pool(-as_float, size, 1, radius))[0, 0]


def test_mask_moved_alone_would_be_caught():
    """The edge-tolerant check above can fail: a mask flipped without its image disagrees far from edges."""
    image, mask = blocky_pair()
    disagree = (image[0] > 0.5) != mask.flip(-1).bool()
    assert (disagree & ~near_edge(mask.flip(-1), radius=2))[2:-2, 2:-2].any()


def test_intensity_augmentation_leaves_the_mask_untouched():
    transform = training_transform(RESIZE_SPEC, 72, {"preset": "none", "contrast": 0.5, "brightness": 0.5, "noise_std": 0.3, "noise_prob": 1.0, "blur_sigma": (1.0, 2.0), "blur_prob": 1.0})
    image, mask = blocky_pair(72, 72)
    out_image, out_mask = apply(transform, image, mask)
    assert torch.equal(out_mask, mask)
    assert not torch.allclose(out_image, image)


def test_window_policy_pads_small_images_to_the_resolution():
    transform = training_transform(WINDOW_SPEC, 64, "none")
    out_image, out_mask = apply(transform, torch.ones(1, 40, 30), torch.ones(40, 30, dtype=torch.long))
    assert out_image.shape == (1, 64, 64) and out_mask.shape == (64, 64)
    assert out_mask.sum() == 40 * 30, "padding adds background only"


def test_normalizations():
    image = torch.rand(3, 16, 16) * 0.5 + 0.2
    zscored = normalize_image(image, "zscore")
    torch.testing.assert_close(zscored.mean(dim=(1, 2)), torch.zeros(3), atol=1e-5, rtol=0)
    torch.testing.assert_close(zscored.std(dim=(1, 2), correction=0), torch.ones(3), atol=1e-4, rtol=0)
    scaled = normalize_image(image, "minmax")
    assert scaled.amin(dim=(1, 2)).tolist() == [0, 0, 0] and torch.allclose(scaled.amax(dim=(1, 2)), torch.ones(3))
    fixed = normalize_image(image, {"mean": (0.5, 0.5, 0.5), "std": (0.25, 0.25, 0.25)})
    torch.testing.assert_close(fixed, (image - 0.5) / 0.25)
    assert torch.isfinite(normalize_image(torch.zeros(1, 4, 4), "zscore")).all(), "a constant image stays finite"


def test_augmentation_configuration_errors():
    assert resolve_augmentation({"rotate_degrees": 5})["hflip"] == 0.5  # overrides on the default preset
    assert resolve_augmentation({"preset": "none", "hflip": 1.0}) == {"hflip": 1.0}
    with pytest.raises(DatasetError, match="unknown augmentation preset 'heavy'"):
        resolve_augmentation("heavy")
    with pytest.raises(DatasetError, match="unknown augmentation key"):
        resolve_augmentation({"rotation": 10})
