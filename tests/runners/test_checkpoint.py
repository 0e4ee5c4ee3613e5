"""Checkpoints: an interrupted or failed write leaves the previous file intact and no partial file behind."""

from __future__ import annotations

import os

import pytest
import torch

from usemabench.runners.checkpoint import CheckpointError, load_checkpoint, save_checkpoint


def test_round_trip_is_weights_only_safe(tmp_path):
    payload = {"model": {"weight": torch.arange(4.0)}, "loop": {"step": 3, "best": -float("inf")}, "rng": (3, (1, 2), None)}
    save_checkpoint(tmp_path / "last.pt", payload)
    loaded = load_checkpoint(tmp_path / "last.pt")
    assert torch.equal(loaded["model"]["weight"], payload["model"]["weight"]) and loaded["loop"] == payload["loop"]


def test_failed_write_keeps_the_previous_checkpoint_and_leaves_no_partial_file(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    save_checkpoint(path, {"step": 1, "weights": torch.ones(1000)})

    def disk_full(descriptor):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(OSError, match="No space left"):
        save_checkpoint(path, {"step": 2, "weights": torch.zeros(1000)})
    monkeypatch.undo()
    assert load_checkpoint(path)["step"] == 1
    assert sorted(item.name for item in tmp_path.iterdir()) == ["last.pt"]


def test_truncated_file_is_reported_by_name(tmp_path):
    path = tmp_path / "best.pt"
    save_checkpoint(path, {"weights": torch.ones(1000)})
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="best.pt cannot be read"):
        load_checkpoint(path)
