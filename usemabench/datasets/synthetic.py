"""The embedded default dataset: procedurally generated nuclei and vessels -- synthetic, not medical data.

Each 96 x 96 grayscale image holds textured, bright, roughly elliptic blobs ("nucleus", class 1) and dark
curved tubes ("vessel", class 2) on an unevenly lit, textured background, then blur, noise and a gain
change. Every case is drawn from its own RNG stream (seed, index), so the data is the same whatever
order or subset is generated. It is written once into the cache (`synthetic-v<version>/`, atomically,
with a manifest of file hashes) the first time a `synthetic:` source is opened; its split is committed
(`splits/synthetic.json`). Big enough for a tiny model to learn both classes in minutes on a CPU.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage

from usemabench.datasets.locations import cache_dir
from usemabench.core.io import atomic_write_json, atomic_write_text, file_sha256

GENERATOR_VERSION = 1
SEED = 0
IMAGE_SIZE = 96
NUM_CASES = 144  # 96 train / 16 val / 32 test (splits/synthetic.json)
CLASS_NAMES = ("background", "nucleus", "vessel")


def case_id(index: int) -> str:
    return f"synthetic_{index:03d}"


def _smooth_noise(rng: np.random.Generator, size: int, sigma: float) -> np.ndarray:
    """Gaussian-filtered white noise rescaled to unit standard deviation."""
    field = ndimage.gaussian_filter(rng.standard_normal((size, size)), sigma, mode="wrap")
    return field / max(field.std(), 1e-8)


def _vessel(rng: np.random.Generator, size: int) -> np.ndarray:
    """A tube of constant radius along a smooth random curve that enters at a random border point."""
    steps = int(rng.uniform(1.0, 1.8) * size)
    side, position = rng.integers(4), rng.uniform(0, size - 1)
    start = [(0.0, position), (size - 1.0, position), (position, 0.0), (position, size - 1.0)][side]
    heading = np.arctan2(size / 2 - start[0], size / 2 - start[1]) + rng.normal(0, 0.5)
    turning = ndimage.gaussian_filter1d(rng.normal(0, 0.08, steps), 4)
    angles = heading + np.cumsum(turning)
    rows = start[0] + np.cumsum(np.sin(angles))
    cols = start[1] + np.cumsum(np.cos(angles))
    inside = (rows >= 0) & (rows <= size - 1) & (cols >= 0) & (cols <= size - 1)
    centre_line = np.zeros((size, size), dtype=bool)
    centre_line[np.round(rows[inside]).astype(int), np.round(cols[inside]).astype(int)] = True
    if not centre_line.any():
        return centre_line
    return ndimage.distance_transform_edt(~centre_line) <= rng.uniform(1.0, 2.5)


def _nucleus(rng: np.random.Generator, size: int, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """A rotated ellipse whose boundary wobbles with a few low angular harmonics."""
    centre = rng.uniform(6, size - 6, 2)
    radius = rng.uniform(4.0, 9.0)
    elongation = rng.uniform(1.0, 1.6)
    angle = rng.uniform(0, np.pi)
    dy, dx = rows - centre[0], cols - centre[1]
    u = dx * np.cos(angle) + dy * np.sin(angle)
    v = -dx * np.sin(angle) + dy * np.cos(angle)
    theta = np.arctan2(v, u)
    wobble = 1.0 + sum(rng.uniform(0, 0.08) * np.cos(k * theta + rng.uniform(0, 2 * np.pi)) for k in (2, 3, 4))
    return np.hypot(u / (radius * elongation), v / radius) <= wobble


def generate_case(index: int, size: int = IMAGE_SIZE, seed: int = SEED) -> tuple[np.ndarray, np.ndarray]:
    """(image uint8 (H, W), mask uint8 (H, W) with 0 background, 1 nucleus, 2 vessel) of case `index`."""
    rng = np.random.default_rng([seed, index])
    rows, cols = np.mgrid[0:size, 0:size].astype(np.float64)
    ramp = rng.normal(0, 0.1, 2)
    image = 0.35 + 0.06 * _smooth_noise(rng, size, size / 6) + ramp[0] * (rows / size - 0.5) + ramp[1] * (cols / size - 0.5)
    image += 0.03 * _smooth_noise(rng, size, 1.5)
    mask = np.zeros((size, size), dtype=np.uint8)
    for _ in range(rng.integers(1, 4)):
        vessel = _vessel(rng, size)
        image[vessel] -= rng.uniform(0.12, 0.22)
        mask[vessel] = 2
    chromatin = _smooth_noise(rng, size, 1.0)
    for _ in range(rng.integers(3, 10)):
        nucleus = _nucleus(rng, size, rows, cols)
        image[nucleus] += rng.uniform(0.18, 0.35) * (1.0 + 0.25 * chromatin[nucleus])
        mask[nucleus] = 1
    image = 0.35 + (image - 0.35) * rng.uniform(0.8, 1.2)
    image = ndimage.gaussian_filter(image, rng.uniform(0.5, 1.2))
    image += rng.normal(0, rng.uniform(0.015, 0.05), image.shape)
    return np.round(np.clip(image, 0, 1) * 255).astype(np.uint8), mask


def write_synthetic(root: Path, num_cases: int = NUM_CASES, size: int = IMAGE_SIZE, seed: int = SEED) -> Path:
    """Write the dataset as a folder source (`images/`, `masks/`, `manifest.json`, `SOURCE.md`) into `root`."""
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    hashes = {}
    for index in range(num_cases):
        image, mask = generate_case(index, size, seed)
        for folder, array in (("images", image), ("masks", mask)):
            path = root / folder / f"{case_id(index)}.png"
            Image.fromarray(array).save(path)
            hashes[f"{folder}/{path.name}"] = file_sha256(path)
    atomic_write_text(
        root / "SOURCE.md",
        "# usemabench synthetic dataset -- SYNTHETIC, NOT MEDICAL DATA\n\n"
        f"Generated by usemabench.datasets.synthetic (version {GENERATOR_VERSION}, seed {seed}): {num_cases} "
        f"grayscale {size}x{size} images; masks 0 background, 1 nucleus (bright textured blobs), 2 vessel (dark curves).\n",
    )
    atomic_write_json(
        root / "manifest.json",
        {
            "generator_version": GENERATOR_VERSION,
            "seed": seed,
            "size": size,
            "num_cases": num_cases,
            "classes": list(CLASS_NAMES),
            "sha256": hashes,
        },
    )
    return root


def ensure_synthetic(root: Path | None = None) -> Path:
    """The cached dataset folder, generated on first use (into a temporary folder, then renamed into place)."""
    root = root or cache_dir() / f"synthetic-v{GENERATOR_VERSION}"
    if (root / "manifest.json").is_file():
        return root
    root.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{root.name}.", dir=root.parent))
    try:
        write_synthetic(staging / "data")
        if root.exists():  # a partial folder left by an older, interrupted writer
            shutil.rmtree(root)
        os.replace(staging / "data", root)
    except OSError:
        if not (root / "manifest.json").is_file():  # another process may have won the race; else fail loudly
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return root
