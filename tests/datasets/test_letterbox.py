"""Letterbox geometry (aspect ratio kept, padding ignored) and the resize ceiling `datasets verify` reports."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch
from torchvision import tv_tensors
from torchvision.transforms import v2

from dataset_helpers import make_folder_dataset, save
from usemabench.cli import main
from usemabench.datasets.evaluation import letterbox_input, native_logits, restore_letterbox
from usemabench.datasets.regions import IGNORE_INDEX
from usemabench.datasets.spec import get_dataset_spec, list_datasets
from usemabench.datasets.transforms import Letterbox, training_transform
from usemabench.datasets.verify import CEILING_WARNING, VerifyReport, resize_ceiling_dice


def _spec(policy: str):
    return replace(get_dataset_spec("synthetic"), eval_policy=policy)


def test_letterbox_keeps_the_aspect_ratio_and_pads_ignored_pixels():
    image = torch.full((1, 30, 60), 5.0)
    mask = torch.ones(30, 60, dtype=torch.int64)
    boxed_image, boxed_mask = Letterbox((16, 16))(tv_tensors.Image(image), tv_tensors.Mask(mask))
    assert boxed_image.shape == (1, 16, 16) and boxed_mask.shape == (16, 16)
    rows = boxed_mask[:, 0].tolist()  # 30x60 -> 8x16, centred: 4 padded rows above and below
    assert rows == [IGNORE_INDEX] * 4 + [1] * 8 + [IGNORE_INDEX] * 4
    assert (boxed_image[0, :4] == 0).all() and torch.allclose(boxed_image[0, 4:12], torch.full((8, 16), 5.0))


def test_the_training_letterbox_is_where_evaluation_puts_the_frame():
    image = torch.rand(1, 45, 20)
    trained, mask = training_transform(_spec("letterbox"), 32, "none")(tv_tensors.Image(image), tv_tensors.Mask(torch.zeros(45, 20, dtype=torch.int64)))
    evaluated = letterbox_input(image, 32)[0]
    frame = mask != IGNORE_INDEX
    assert frame.sum() == 32 * 14 and (evaluated[:, ~frame] == 0).all()
    torch.testing.assert_close(trained[:, frame], evaluated[:, frame], atol=0.02, rtol=0)


def test_zoomed_letterbox_ignores_exactly_the_padding():
    image = torch.full((1, 40, 24), 5.0)
    mask = torch.ones(40, 24, dtype=torch.int64)
    torch.manual_seed(0)
    transform = training_transform(_spec("letterbox"), 32, {"preset": "none", "scale": (0.6, 1.5)})
    for _ in range(8):
        moved_image, moved_mask = transform(tv_tensors.Image(image), tv_tensors.Mask(mask))
        padded = moved_mask == IGNORE_INDEX
        assert set(moved_mask.unique().tolist()) <= {IGNORE_INDEX, 1}
        assert (moved_image[0, padded] == 0).all() and torch.allclose(moved_image[0, ~padded], torch.tensor(5.0))


def test_letterbox_evaluation_round_trips_a_pointwise_model():
    model = torch.nn.Conv2d(1, 2, kernel_size=1).eval()
    image = torch.randn(1, 1, 64, 32)
    with torch.no_grad():
        logits = native_logits(model, image, 32, "letterbox")
        expected = restore_letterbox(model(letterbox_input(image, 32)), (64, 32))
    assert logits.shape == (1, 2, 64, 32)
    torch.testing.assert_close(logits, expected)
    assert letterbox_input(image, 32).shape == (1, 1, 32, 32) and (letterbox_input(image, 32)[..., :8] == 0).all()


def test_registered_datasets_keep_their_geometry():
    for name in list_datasets():
        assert get_dataset_spec(name).eval_policy in ("resize", "sliding_window"), name
    image, mask = torch.rand(1, 30, 60), torch.randint(0, 2, (30, 60))
    ours = training_transform(get_dataset_spec("synthetic"), 16, "none")(tv_tensors.Image(image), tv_tensors.Mask(mask))
    stretched = v2.Resize((16, 16), antialias=True)(tv_tensors.Image(image), tv_tensors.Mask(mask))
    assert all(torch.equal(a, b) for a, b in zip(ours, stretched))


def test_ad_hoc_folders_letterbox_by_default(folder_dataset):
    assert get_dataset_spec(f"folder:{folder_dataset}").eval_policy == "letterbox"
    assert get_dataset_spec(f"folder:{folder_dataset}?eval_policy=resize").eval_policy == "resize"


def _thin_lines(height: int = 576, width: int = 767) -> np.ndarray:
    mask = np.zeros((height, width), np.int64)
    mask[::40, :] = 1  # 1-px lines: a 96-px frame cannot hold them
    return mask


def test_resize_ceiling_of_thin_structures_is_low_and_of_a_same_size_mask_is_one():
    for policy in ("resize", "letterbox"):
        assert resize_ceiling_dice(_spec(policy), _thin_lines(), (96, 96)) < CEILING_WARNING
        same = np.zeros((32, 32), np.int64)
        same[5:9, 3:30] = 1
        assert resize_ceiling_dice(_spec(policy), same, (32, 32)) == 1.0


def test_resize_ceiling_scores_a_disk_near_one():
    rows, columns = np.mgrid[:300, :200]
    disk = ((rows - 150) ** 2 + (columns - 100) ** 2 < 80**2).astype(np.int64)
    assert 0.97 < resize_ceiling_dice(_spec("letterbox"), disk, (96, 96)) < 1.0


def test_verify_reports_the_ceiling_and_warns_below_the_threshold(tmp_path, capsys):
    root = make_folder_dataset(tmp_path / "lines", cases=3, size=64)
    for mask_file in (root / "masks").iterdir():
        lines = np.zeros((64, 64), np.uint8)
        lines[::8, :] = 255
        save(mask_file, lines)
    assert main(["datasets", "verify", f"folder:{root}", "--resolution", "16"]) == 0
    out = capsys.readouterr().out
    assert "resize ceiling at 16x16 (letterbox): mean Dice" in out and "WARNING: below 0.9" in out
    assert main(["datasets", "verify", f"folder:{root}", "--resolution", "64"]) == 0
    out = capsys.readouterr().out
    assert "resize ceiling at 64x64 (letterbox): mean Dice 1.000" in out and "WARNING" not in out


def test_the_default_verify_resolution_is_the_quick_protocols():
    from usemabench.datasets.commands import VERIFY_RESOLUTION
    from usemabench.runners.protocol import load_protocol

    assert tuple(load_protocol("quick").resolution) == (VERIFY_RESOLUTION, VERIFY_RESOLUTION)


def test_sliding_window_datasets_have_no_resize_ceiling():
    report = VerifyReport(ceiling_resolution=(96, 96))
    assert "none (sliding_window" in report.ceiling_line(get_dataset_spec("isbi2012_em"))
