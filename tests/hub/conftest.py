"""Fixtures shared by the hub tests: a tiny finished run with its records, and a manifest of one's own."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import usemabench.zoo.pretrained as pretrained
from usemabench.cli import main
from usemabench.runners.protocol import load_protocol


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """usema_tiny trained for 2 iterations on the synthetic set; returns (run_dir, records_dir). Built once."""
    root = tmp_path_factory.mktemp("tiny-run")
    contents = dict(load_protocol("quick").contents)
    contents.update(name="tiny-publish", resolution=[32, 32], batch_size=2, epochs=1, iterations_per_epoch=2,
                    schedule={"name": "poly", "power": 0.9, "warmup_iterations": 0})
    contents["evaluation"] = {**contents["evaluation"], "saved_cases": 1}
    protocol = root / "tiny.json"
    protocol.write_text(json.dumps(contents))
    runs, records = root / "runs", root / "records"
    code = main(["run", "--model", "usema_tiny", "--dataset", "synthetic", "--protocol", str(protocol),
                 "--runs-dir", str(runs), "--records-dir", str(records), "--device", "cpu", "--no-progress"])
    assert code == 0
    (best,) = runs.rglob("best.pt")
    return best.parent, records


@pytest.fixture
def manifest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty manifest in tmp_path, made the package's for the test (create_model(..., pretrained=True) reads it)."""
    path = tmp_path / "pretrained" / "manifest.json"
    path.parent.mkdir()
    path.write_text(json.dumps({"schema_version": 1, "weights": {}}))
    monkeypatch.setattr(pretrained, "MANIFEST_PATH", path)
    return path
