"""The data hash: content and decoding options in, paths and descriptive names out; file hashes cached."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from PIL import Image

import usemabench.datasets.fingerprint as fingerprint
from usemabench.datasets import get_dataset_spec


@pytest.fixture
def folder(tmp_path, monkeypatch):
    monkeypatch.setenv("USEMABENCH_CACHE", str(tmp_path / "cache"))
    root = tmp_path / "data" / "discs"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    rng = np.random.default_rng(0)
    for index in range(10):
        mask = np.zeros((24, 24), np.uint8)
        mask[4 + index : 12 + index, 6:14] = 255
        Image.fromarray(rng.integers(0, 255, (24, 24), dtype=np.uint8)).save(root / "images" / f"c{index}.png")
        Image.fromarray(mask).save(root / "masks" / f"c{index}.png")
    return root


def data_hash(uri: str) -> str:
    return fingerprint.dataset_fingerprint(get_dataset_spec(uri)).data_hash


def test_the_same_content_elsewhere_hashes_the_same_and_names_do_not_count(folder, tmp_path):
    copy = shutil.copytree(folder, tmp_path / "elsewhere" / "discs")
    reference = data_hash(f"folder:{folder}")
    assert data_hash(f"folder:{copy}") == reference
    assert data_hash(f"folder:{folder}?modality=ultrasound&license=CC0") == reference
    assert data_hash(f"folder:{folder}?name=renamed") == reference


def test_a_decoding_option_changes_the_hash_and_is_named(folder):
    default = fingerprint.dataset_fingerprint(get_dataset_spec(f"folder:{folder}?encoding=threshold"))
    other = fingerprint.dataset_fingerprint(get_dataset_spec(f"folder:{folder}?encoding=threshold&threshold=200"))
    assert other.data_hash != default.data_hash
    assert any(change.startswith("option mask_threshold") for change in other.changes_from(default))


def test_an_edited_mask_changes_the_hash_and_is_named_by_case_and_role(folder):
    before = fingerprint.dataset_fingerprint(get_dataset_spec(f"folder:{folder}"))
    mask = np.array(Image.open(folder / "masks" / "c3.png"))
    mask[0, 0] = 255
    Image.fromarray(mask).save(folder / "masks" / "c3.png")
    after = fingerprint.dataset_fingerprint(get_dataset_spec(f"folder:{folder}"))
    assert after.data_hash != before.data_hash
    assert after.changes_from(before) == ["1 case(s) changed content: c3 (mask)"]


def test_a_second_run_hashes_no_unchanged_file(folder, monkeypatch):
    data_hash(f"folder:{folder}")
    hashed = []
    monkeypatch.setattr(fingerprint, "file_sha256", lambda path: hashed.append(path) or "0" * 64)
    data_hash(f"folder:{folder}")
    assert hashed == []
    (folder / "masks" / "c3.png").touch()
    data_hash(f"folder:{folder}")
    assert [path.name for path in hashed] == ["c3.png"]
