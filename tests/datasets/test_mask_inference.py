"""Mask encodings inferred from the values (binary, anti-aliased, instance ids, classes, RGB(A) colours), the
reason said, and every hint offered tried: the option it names must load the data."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dataset_helpers import save
from usemabench.cli import main
from usemabench.datasets import DatasetError, SegmentationDataset, get_dataset_spec
from usemabench.datasets.imaging import COLOUR_CODE_BASE


def loads(uri: str) -> SegmentationDataset:
    """Every split of the dataset behind `uri` builds (every pair decoded and checked)."""
    spec = get_dataset_spec(uri)
    return [SegmentationDataset(spec, split) for split in ("train", "val", "test")][0]


def antialiased_disk(size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 mask whose edge pixels hold their coverage of a disk, as anti-aliased drawing leaves them; coverage > 0.5)."""
    rng = np.random.default_rng(seed)
    centre, radius = rng.uniform(size * 0.35, size * 0.65, 2), rng.uniform(size * 0.15, size * 0.3)
    rows, cols = np.mgrid[0:size, 0:size]
    coverage = np.clip(radius - np.hypot(rows - centre[0], cols - centre[1]) + 0.5, 0, 1)
    mask = np.round(coverage * 255).astype(np.uint8)
    return mask, mask > 127


def write(root: Path, masks: list[np.ndarray], image_size: int = 48) -> Path:
    for index, mask in enumerate(masks):
        save(root / "images" / f"case_{index}.png", np.full((image_size, image_size), 100 + index, dtype=np.uint8))
        save(root / "masks" / f"case_{index}.png", mask)
    return root


def test_antialiased_masks_are_thresholded_not_instances(tmp_path: Path, caplog):
    pairs = [antialiased_disk(48, seed) for seed in range(6)]
    assert len(np.unique(np.concatenate([m.ravel() for m, _ in pairs]))) > 32, "hundreds of grey values, as in the report"
    root = write(tmp_path / "aa", [mask for mask, _ in pairs])
    with caplog.at_level(logging.WARNING):
        spec = get_dataset_spec(f"folder:{root}")
    assert spec.mask_encoding == "threshold" and spec.mask_threshold == 127 and spec.class_names == ("background", "foreground")
    assert "anti-aliased" in caplog.text and "on region edges" in caplog.text
    assert "?encoding=index" not in caplog.text, "not offered: with this many values it would not load"
    with pytest.raises(DatasetError, match="too many to be classes"):
        get_dataset_spec(f"folder:{root}?encoding=index")
    for item in loads(f"folder:{root}"):
        expected = pairs[int(item["case_id"].split("_")[1])][1]
        assert np.array_equal(item["mask"].numpy(), expected)


def test_few_edge_levels_are_thresholded_and_the_classes_hint_loads(tmp_path: Path):
    masks = []
    for index in range(4):
        mask = np.zeros((24, 24), dtype=np.uint8)
        mask[6 : 16 + index, 6:18] = 255
        mask[5, 6:18], mask[16 + index, 6:18], mask[6 : 16 + index, 5], mask[6 : 16 + index, 18] = 64, 128, 191, 128
        masks.append(mask)
    root = write(tmp_path / "edges", masks, image_size=24)
    spec = get_dataset_spec(f"folder:{root}")
    assert spec.mask_encoding == "threshold" and "(if the values are classes: ?encoding=index)" in spec.description
    assert loads(f"folder:{root}?encoding=index") is not None, "the hint offered loads"


def test_jpeg_masks_are_read_by_their_first_channel_and_thresholded(tmp_path: Path):
    for index in range(4):
        mask = np.zeros((40, 40, 3), dtype=np.uint8)
        mask[8 + index : 24 + index, 10:30] = 255
        save(tmp_path / "images" / f"c{index}.png", np.zeros((40, 40), dtype=np.uint8))
        (tmp_path / "masks").mkdir(exist_ok=True)
        Image.fromarray(mask).save(tmp_path / "masks" / f"c{index}.jpg", quality=60)
    spec = get_dataset_spec(f"folder:{tmp_path}")
    assert spec.mask_encoding == "threshold"
    item = SegmentationDataset(spec, "train")[0]
    assert 0.15 < item["mask"].float().mean() < 0.3


def instance_masks(count: int, colours: bool, seed: int = 0) -> list[np.ndarray]:
    """Masks of solid square instances, 8 per mask: 16-bit ids, or RGBA colours on a transparent background."""
    rng = np.random.default_rng(seed)
    masks, instance = [], 0
    for _ in range(count):
        mask = np.zeros((48, 48, 4) if colours else (48, 48), dtype=np.uint8 if colours else np.uint16)
        for slot in range(8):
            instance += 1
            row, col = divmod(slot, 4)
            region = (slice(4 + row * 22, 18 + row * 22), slice(2 + col * 12, 11 + col * 12))
            mask[region] = (*rng.integers(30, 255, 3), 255) if colours else instance * 7
        masks.append(mask)
    return masks


@pytest.mark.parametrize("colours", [False, True], ids=["16-bit-ids", "rgba-colours"])
def test_instance_masks_are_inferred_as_instances(tmp_path: Path, colours: bool, caplog):
    masks = instance_masks(6, colours)
    root = write(tmp_path / "inst", masks)
    with caplog.at_level(logging.WARNING):
        spec = get_dataset_spec(f"folder:{root}")
    assert spec.mask_encoding == "instances" and spec.task == "binary"
    assert "instance ids" in caplog.text and "every mask is empty" not in caplog.text
    item = loads(f"folder:{root}")[0]
    raw = masks[int(item["case_id"].split("_")[1])]
    foreground = raw[..., 3] > 0 if colours else raw > 0
    assert np.array_equal(item["mask"].numpy(), foreground.astype(np.int64))


def test_rgb_colour_classes_are_named_by_colour(tmp_path: Path, capsys):
    masks = []
    for index in range(4):
        mask = np.zeros((24, 24, 3), dtype=np.uint8)
        mask[2:10, 2:20] = (255, 0, 0)
        mask[12:22, 4 + index : 14 + index] = (0, 128, 0)
        masks.append(mask)
    root = write(tmp_path / "colours", masks, image_size=24)
    spec = get_dataset_spec(f"folder:{root}")
    assert spec.class_names == ("background", "colour_008000", "colour_ff0000")
    assert dict(spec.label_map) == {0: 0, COLOUR_CODE_BASE + 0x008000FF: 1, COLOUR_CODE_BASE + 0xFF0000FF: 2}
    mask = loads(f"folder:{root}")[0]["mask"].numpy()
    assert mask[5, 5] == 2 and mask[15, 10] == 1 and mask[0, 0] == 0
    assert main(["datasets", "verify", f"folder:{root}"]) == 0
    assert "masks: index encoding (values 0, #008000, #ff0000: 2 classes in increasing order" in capsys.readouterr().out


def test_class_indices_are_said_with_a_hint_that_loads(tmp_path: Path, capsys):
    masks = []
    for index in range(4):
        mask = np.zeros((16, 16), dtype=np.uint8)
        mask[:5], mask[6:11], mask[12:] = 1, 2, 3 - index % 2
        masks.append(mask)
    root = write(tmp_path / "idx", masks, image_size=16)
    assert main(["datasets", "verify", f"folder:{root}"]) == 0
    output = capsys.readouterr().out
    assert "values 0..3: class indices" in output and "?encoding=instances" in output
    assert loads(f"folder:{root}?encoding=instances") is not None, "the hinted option loads the data"


def test_values_no_rule_fits_name_options_that_load(tmp_path: Path):
    rng = np.random.default_rng(0)
    root = write(tmp_path / "noise", [rng.integers(0, 200, (48, 48), dtype=np.uint8) for _ in range(3)])
    with pytest.raises(DatasetError, match=r"too many to be classes; use \?encoding=instances .* or \?encoding=threshold&threshold=T"):
        get_dataset_spec(f"folder:{root}")
    for hint in ("?encoding=instances", "?encoding=threshold&threshold=100"):
        assert loads(f"folder:{root}{hint}") is not None, hint


def test_empty_masks_hint_loads(tmp_path: Path):
    root = write(tmp_path / "empty", [np.zeros((8, 8), dtype=np.uint8)] * 3, image_size=8)
    with pytest.raises(DatasetError, match=r"every mask is empty .* \?classes=background,NAME"):
        get_dataset_spec(f"folder:{root}")
    assert loads(f"folder:{root}?encoding=index&classes=background,lesion") is not None


def test_typo_in_an_option_is_refused_with_the_nearest_name(tmp_path: Path):
    root = write(tmp_path / "t", [np.zeros((8, 8), dtype=np.uint8)], image_size=8)
    with pytest.raises(DatasetError, match=r"unknown option 'encodng' for folder: sources; did you mean encoding\?"):
        get_dataset_spec(f"folder:{root}?encodng=instances")
    with pytest.raises(DatasetError, match=r"option threshold='half' must be a whole number"):
        get_dataset_spec(f"folder:{root}?encoding=threshold&threshold=half")


def test_every_source_option_is_in_help_and_readme_with_its_example(capsys):
    from usemabench.datasets.source_options import SOURCE_OPTIONS

    with pytest.raises(SystemExit):
        main(["datasets", "--help"])
    help_text = capsys.readouterr().out
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Datasets", 1)[1].split("\n## ", 1)[0]
    for option in SOURCE_OPTIONS:
        assert re.search(rf"^  {option.name}\s", help_text, re.MULTILINE) and f"e.g. {option.example}" in help_text, option.name
        assert f"`{option.name}`" in section and f"`{option.example}`" in section, option.name
