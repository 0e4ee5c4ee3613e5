"""The weights the package ships reproduce the test Dice their manifest entry claims, re-evaluated here on the
shared real data (within 0.005); the re-evaluation itself is checked on a tiny synthetic run."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import usemabench.zoo.pretrained as pretrained
from usemabench import create_model
from usemabench.hub import PretrainedError
from usemabench.cli import main
from usemabench.pretrained_export import reevaluate_test_dice
from usemabench.zoo.pretrained import MANIFEST_PATH, PretrainedCfg, get_pretrained_cfg, load_manifest

TOLERANCE = 0.005
SHIPPED = sorted(name for name, cfg in load_manifest(MANIFEST_PATH).items() if cfg.file is not None)
# Re-evaluated here: the USEMA entries, one per dataset (a DSB2018 sliding-window pass is a minute or two of CPU);
# every entry's Dice was re-evaluated by `weights add` when it was exported, and every file's hash is checked below.
REEVALUATED = [name for name in SHIPPED if name.startswith("usema_tiny.")]


def reevaluated_dice(cfg: PretrainedCfg) -> float:
    return reevaluate_test_dice(create_model(cfg.name, pretrained=True), cfg.preprocessing)


@pytest.mark.slow
def test_reevaluation_reproduces_the_recorded_dice(tiny_run, manifest: Path) -> None:
    run_dir, records = tiny_run
    assert main(["weights", "add", str(run_dir), "--tag", "t", "--records-dir", str(records), "--manifest", str(manifest)]) == 0
    cfg = get_pretrained_cfg("usema_tiny.t")
    assert abs(reevaluated_dice(cfg) - cfg.test_dice) <= 1e-6


@pytest.mark.data
@pytest.mark.slow
@pytest.mark.parametrize("name", REEVALUATED)
def test_shipped_weights_reproduce_their_test_dice(name: str, shared_data: Path) -> None:
    cfg = get_pretrained_cfg(name)
    assert abs(reevaluated_dice(cfg) - cfg.test_dice) <= TOLERANCE, name


@pytest.mark.parametrize("name", SHIPPED)
def test_a_corrupted_copy_of_a_shipped_file_is_refused(name: str, tmp_path: Path, monkeypatch) -> None:
    cfg = get_pretrained_cfg(name)
    copy = tmp_path / "manifest.json"
    shutil.copyfile(MANIFEST_PATH, copy)
    data = bytearray((MANIFEST_PATH.parent / cfg.file).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (tmp_path / cfg.file).write_bytes(bytes(data))
    monkeypatch.setattr(pretrained, "MANIFEST_PATH", copy)
    with pytest.raises(PretrainedError, match=rf"{cfg.file}: sha256 \w+, but the pretrained manifest records {cfg.sha256}"):
        create_model(name, pretrained=True)
