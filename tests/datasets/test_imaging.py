"""File reading: TIFF through tifffile (what Pillow cannot decode), every reader's reason for a bad file,
and mask values of colour-coded (RGB/RGBA) masks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image, UnidentifiedImageError

from dataset_helpers import disk_pair, save
from usemabench.cli import main
from usemabench.datasets import DatasetError
from usemabench.datasets.imaging import COLOUR_CODE_BASE, describe_colour, read_image, read_mask


def pillow_cannot_read(path: Path) -> bool:
    try:
        with Image.open(path) as image:
            image.load()
    except (UnidentifiedImageError, OSError, ValueError):
        return True
    return False


@pytest.mark.parametrize(
    ("name", "array", "options"),
    [
        ("rgb-float32", np.random.default_rng(0).random((12, 10, 3), dtype=np.float32), {"photometric": "rgb"}),
        ("five-channels", np.random.default_rng(1).integers(0, 255, (12, 10, 5), dtype=np.uint8), {"photometric": "minisblack", "planarconfig": "contig"}),
    ],
)  # fmt: skip
def test_tiff_that_pillow_cannot_decode_is_read_with_tifffile(tmp_path: Path, name: str, array: np.ndarray, options: dict):
    path = tmp_path / f"{name}.tif"
    tifffile.imwrite(path, array, **options)
    assert pillow_cannot_read(path), "the test needs a TIFF that Pillow refuses"
    image = read_image(path)
    assert image.dtype == array.dtype and np.array_equal(image, array)


def test_planar_and_16_bit_rgb_tiff_keep_layout_and_depth(tmp_path: Path):
    rgb16 = np.random.default_rng(2).integers(0, 65535, (8, 6, 3), dtype=np.uint16)
    tifffile.imwrite(tmp_path / "planar.tif", np.moveaxis(rgb16, -1, 0), photometric="rgb", planarconfig="separate")
    image = read_image(tmp_path / "planar.tif")
    assert image.shape == (8, 6, 3) and image.dtype == np.uint16 and np.array_equal(image, rgb16), "Pillow squashes this to 8 bits"


def test_tiff_instance_mask_and_bilevel_mask(tmp_path: Path):
    instances = np.zeros((16, 16), dtype=np.uint16)
    instances[2:6, 2:6], instances[8:12, 8:14] = 1000, 40000
    tifffile.imwrite(tmp_path / "instances.tif", instances)
    assert np.array_equal(read_mask(tmp_path / "instances.tif"), instances)
    bilevel = np.zeros((8, 8), dtype=bool)
    bilevel[2:4] = True
    tifffile.imwrite(tmp_path / "bilevel.tif", bilevel)  # stored min-is-white: the True rows show black
    with Image.open(tmp_path / "bilevel.tif") as image:
        as_pillow_reads = np.asarray(image.convert("L"))
    assert np.array_equal(read_mask(tmp_path / "bilevel.tif"), as_pillow_reads), "same values as Pillow gave before"


def test_multi_frame_tiff_is_refused(tmp_path: Path):
    tifffile.imwrite(tmp_path / "stack.tif", np.zeros((3, 8, 8), dtype=np.uint8), photometric="minisblack", metadata=None)
    with pytest.raises(DatasetError, match=r"stack\.tif: image has 3 frames; only single-frame 2D files"):
        read_image(tmp_path / "stack.tif")


def test_unreadable_tiff_names_every_reader_and_its_reason(tmp_path: Path):
    path = tmp_path / "broken.tif"
    path.write_bytes(b"II*\x00" + b"\xff" * 40)
    with pytest.raises(DatasetError, match=r"broken\.tif: unreadable or corrupt image \(tifffile: .+; Pillow: .+\)") as error:
        read_image(path)
    assert error.value.__cause__ is None and error.value.__suppress_context__


def test_colour_masks_keep_every_colour_and_gray_stays_gray(tmp_path: Path):
    rgb = np.zeros((8, 8, 3), dtype=np.uint8)
    rgb[0:2] = (255, 0, 0)
    rgb[2:4] = (0, 0, 255)
    rgb[4:6] = (255, 255, 255)
    save(tmp_path / "colour.png", rgb)
    values = read_mask(tmp_path / "colour.png")
    red, blue = COLOUR_CODE_BASE + 0xFF0000FF, COLOUR_CODE_BASE + 0x0000FFFF
    assert values[0, 0] == red and values[2, 0] == blue and values[4, 0] == 255 and values[6, 0] == 0
    assert describe_colour(int(red)) == "#ff0000" and describe_colour(255) == "255"
    rgba = np.zeros((8, 8, 4), dtype=np.uint8)
    rgba[:4, :, :] = (10, 200, 30, 255)
    rgba[4:, :, :3] = 90  # a colour under zero alpha: nothing drawn
    save(tmp_path / "rgba.png", rgba)
    values = read_mask(tmp_path / "rgba.png")
    assert set(np.unique(values).tolist()) == {0, COLOUR_CODE_BASE + 0x0AC81EFF}


def test_verify_lists_every_bad_file(tmp_path: Path, capsys):
    for index in range(8):
        image, mask = disk_pair(seed=index)
        save(tmp_path / "images" / f"case_{index}.png", image)
        save(tmp_path / "masks" / f"case_{index}.png", mask)
    for index in (1, 4, 6):
        (tmp_path / "images" / f"case_{index}.png").write_bytes(b"not an image")
    (tmp_path / "images" / "case_7.tif").write_bytes(b"II*\x00 broken")
    (tmp_path / "images" / "case_7.png").unlink()
    assert main(["datasets", "verify", f"folder:{tmp_path}"]) == 1
    output = capsys.readouterr().out
    for index in (1, 4, 6, 7):
        assert f"case_{index}." in output
    assert "FAILED: 4 problem(s)" in output


def test_all_unreadable_names_every_file(tmp_path: Path):
    for index in range(3):
        save(tmp_path / "masks" / f"c{index}.png", np.zeros((4, 4), dtype=np.uint8))
        (tmp_path / "images").mkdir(exist_ok=True)
        (tmp_path / "images" / f"c{index}.png").write_bytes(b"garbage")
    with pytest.raises(DatasetError, match=r"no pair is readable") as error:
        from usemabench.datasets import get_dataset_spec

        get_dataset_spec(f"folder:{tmp_path}")
    assert all(f"c{index}.png" in str(error.value) for index in range(3))


def test_loading_names_every_bad_file_and_a_verify_command_that_works(tmp_path: Path, capsys):
    import shlex

    from usemabench.datasets import SegmentationDataset, get_dataset_spec

    for index in range(6):
        image, mask = disk_pair(seed=index)
        save(tmp_path / "data" / "images" / f"case_{index}.png", image)
        save(tmp_path / "data" / "masks" / f"case_{index}.png", mask)
    uri = f"folder:{tmp_path / 'data'}?name=disks"
    spec = get_dataset_spec(uri)
    SegmentationDataset(spec, "train")  # the split is written while the data is intact
    train = SegmentationDataset(spec, "train", verify=False).case_ids
    for case in train[:3]:
        (tmp_path / "data" / "images" / f"{case}.png").write_bytes(b"broken")
    with pytest.raises(DatasetError) as error:
        SegmentationDataset(spec, "train")
    message = str(error.value)
    assert message.startswith("3 problems in split 'train'") and all(f"{case}.png: unreadable" in message for case in train[:3])
    command = message.split("(usemabench ", 1)[1].split(" checks every split)", 1)[0]
    assert main(shlex.split(command)) == 1, "the command the message names runs (an ad-hoc name would be unknown)"
    output = capsys.readouterr().out
    assert all(f"{case}.png" in output for case in train[:3])
