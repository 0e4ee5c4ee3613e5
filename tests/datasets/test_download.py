"""`datasets download` fetches, checks the SHA-256, extracts and imports -- tested offline with file:// URLs."""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import pytest

from dataset_helpers import disk_pair, save
from usemabench.cli import main
from usemabench.datasets import DatasetError
from usemabench.datasets.download import Download, download_one


def isbi_like_zip(tmp_path: Path) -> Path:
    """A zip laid out like the zhixuhao/unet archive: <repo>-<commit>/data/membrane/train/{image,label}."""
    raw = tmp_path / "raw" / "unet-abc" / "data" / "membrane" / "train"
    for index in range(3):
        image, mask = disk_pair(seed=index)
        save(raw / "image" / f"{index}.png", image)
        save(raw / "label" / f"{index}.png", mask)
    archive = tmp_path / "archive.zip"
    with zipfile.ZipFile(archive, "w") as bundle:
        for path in sorted((tmp_path / "raw").rglob("*.png")):
            bundle.write(path, path.relative_to(tmp_path / "raw"))
    return archive


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_download_command_checks_and_imports(tmp_path: Path, capsys):
    archive = isbi_like_zip(tmp_path)
    args = ["datasets", "download", "isbi2012_em", "--dest", str(tmp_path / "data"), "--url", archive.as_uri()]
    assert main([*args, "--sha256", sha256(archive)]) == 0
    assert sorted(p.name for p in (tmp_path / "data" / "isbi2012_em" / "masks").iterdir()) == ["0.png", "1.png", "2.png"]
    assert "3 cases" in capsys.readouterr().out
    assert main([*args, "--sha256", sha256(archive)]) == 0
    assert "already present, skipped" in capsys.readouterr().out


def test_checksum_mismatch_leaves_nothing_behind(tmp_path: Path):
    archive = isbi_like_zip(tmp_path)
    entry = Download(folder="em", url=archive.as_uri(), layout="isbi2012", archive_path="*/data/membrane/train", sha256="0" * 64)
    with pytest.raises(DatasetError, match="SHA-256 mismatch"):
        download_one(entry, tmp_path / "data", log=lambda _: None)
    assert not (tmp_path / "data" / "em").exists() and list((tmp_path / "data").iterdir()) == []


def test_unknown_checksum_needs_an_explicit_choice(tmp_path: Path):
    archive = isbi_like_zip(tmp_path)
    entry = Download(folder="em", url=archive.as_uri(), layout="isbi2012", archive_path="*/data/membrane/train")
    with pytest.raises(DatasetError, match="no SHA-256 is known.*--no-verify"):
        download_one(entry, tmp_path / "data", log=lambda _: None)
    messages: list[str] = []
    download_one(entry, tmp_path / "data", verify=False, log=messages.append)
    assert f"sha256 {sha256(archive)}" in messages


def test_imported_file_checksums_are_checked(tmp_path: Path):
    archive = isbi_like_zip(tmp_path)
    entry = Download(
        folder="em", url=archive.as_uri(), layout="isbi2012", archive_path="*/data/membrane/train",
        sha256=sha256(archive), files_sha256={"masks/0.png": "f" * 64},
    )
    with pytest.raises(DatasetError, match=r"imported file masks/0\.png .* SHA-256 differs"):
        download_one(entry, tmp_path / "data", log=lambda _: None)


def test_unreachable_url_is_one_clear_error(tmp_path: Path):
    entry = Download(folder="em", url=(tmp_path / "missing.zip").as_uri(), layout="isbi2012", sha256="0" * 64)
    with pytest.raises(DatasetError, match=r"missing\.zip: download failed"):
        download_one(entry, tmp_path / "data", log=lambda _: None)
