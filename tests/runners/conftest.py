"""Runner fixtures: single-threaded torch, a tiny protocol file and a tiny folder dataset.

Single-threaded: tiny tensors gain nothing from threads, and on a shared machine two threads per op
cost ~10x in synchronisation waits.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from usemabench.runners.protocol import load_protocol


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def tiny_protocol_file(tmp_path):
    """The quick protocol cut to 2 epochs of 2 iterations of batch 2 at 32x32."""
    contents = dict(load_protocol("quick").contents)
    contents.update(
        name="tiny", resolution=[32, 32], batch_size=2, epochs=2, iterations_per_epoch=2,
        schedule={"name": "poly", "power": 0.9, "warmup_iterations": 1},
        evaluation={"checkpoint": "best", "nsd_tolerance_px": 2.0, "saved_cases": 2},
    )
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps(contents))
    return path


@pytest.fixture
def blob_folder(tmp_path, monkeypatch):
    """A folder dataset (images/, masks/ with {0, 255} masks) of 12 grayscale 40x36 images with a bright disc.

    USEMABENCH_CACHE points into tmp_path, where the ad-hoc split file is written.
    """
    monkeypatch.setenv("USEMABENCH_CACHE", str(tmp_path / "cache"))
    root = tmp_path / "blobs"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    rng = np.random.default_rng(0)
    rows, cols = np.mgrid[0:40, 0:36]
    for index in range(12):
        cy, cx = rng.integers(10, 26, 2)
        mask = ((rows - cy) ** 2 + (cols - cx) ** 2 <= 36).astype(np.uint8) * 255
        image = np.clip(60 + 0.6 * mask + rng.normal(0, 20, mask.shape), 0, 255).astype(np.uint8)
        Image.fromarray(image).save(root / "images" / f"case{index:02d}.png")
        Image.fromarray(mask).save(root / "masks" / f"case{index:02d}.png")
    return root
