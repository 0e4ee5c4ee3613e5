"""Dataset tests: a private cache (the synthetic data is generated once per session) and small file builders."""

from __future__ import annotations

from pathlib import Path

import pytest

from dataset_helpers import make_folder_dataset


@pytest.fixture(scope="session")
def session_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("usemabench-cache")


@pytest.fixture(autouse=True)
def _private_cache(session_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("USEMABENCH_CACHE", str(session_cache))


@pytest.fixture
def folder_dataset(tmp_path: Path) -> Path:
    return make_folder_dataset(tmp_path / "disks")
