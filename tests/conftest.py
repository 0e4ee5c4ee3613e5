"""Shared test settings: one CPU thread, seeded RNGs, and the path to ../shared/data."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch

import usemabench.zoo.registry as registry

SHARED_DATA = Path(os.environ.get("USEMABENCH_SHARED_DATA", Path(__file__).resolve().parents[1] / ".." / "shared" / "data")).resolve()


# Tests use small tensors: one thread avoids thread-pool stalls on a shared or 2-core CI machine.
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed_everything() -> None:
    torch.manual_seed(0)


@pytest.fixture
def shared_data() -> Path:
    """../shared/data, or a clean skip when this checkout has none beside it."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real datasets not found at {SHARED_DATA}")
    return SHARED_DATA


USER_MODULE = '''
from torch import nn
from usemabench import register_model

@register_model(family="cnn", paper="My paper, 2026", config=dict(width=4), name="{name}")
def builder(in_channels, num_classes, width):
    """A user's model, registered from the module given to --model-module."""
    return nn.Sequential(nn.Conv2d(in_channels, width, 3, padding=1), nn.Conv2d(width, num_classes, 1))
'''


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    """Write `<tmp_path>/<name>.py`; sys.path, sys.modules and the registry are restored afterwards."""
    monkeypatch.setattr(sys, "path", [entry for entry in sys.path if entry not in ("", str(tmp_path))])
    monkeypatch.setattr(sys, "modules", dict(sys.modules))
    registry.list_models()  # load the built-in models before copying the registry
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))

    def write(name: str) -> Path:
        path = tmp_path / f"{name}.py"
        path.write_text(USER_MODULE.format(name=name))
        return path

    return write
