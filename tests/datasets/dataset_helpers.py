"""File builders shared by the dataset tests (tiny PNG datasets written into tmp folders)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def save(path: Path, array: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path


def disk_pair(size: int = 32, radius: int = 8, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A gray image with a bright disk and its {0, 255} mask."""
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[0:size, 0:size]
    centre = rng.integers(radius, size - radius, 2)
    disk = (rows - centre[0]) ** 2 + (cols - centre[1]) ** 2 <= radius**2
    image = np.where(disk, 200, 40).astype(np.uint8) + rng.integers(0, 10, (size, size), dtype=np.uint8)
    return image, np.where(disk, 255, 0).astype(np.uint8)


def make_folder_dataset(root: Path, cases: int = 6, size: int = 32, image_ext: str = ".png", mask_ext: str = ".png") -> Path:
    """`root/images` + `root/masks` with `cases` disk pairs named case_0..."""
    for index in range(cases):
        image, mask = disk_pair(size, seed=index)
        save(root / "images" / f"case_{index}{image_ext}", image)
        save(root / "masks" / f"case_{index}{mask_ext}", mask)
    return root
