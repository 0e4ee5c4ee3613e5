"""Checkpoints: written atomically (a kill or a full disk never leaves a truncated file), read weights-only.

A training checkpoint (`last.pt`) holds everything resume needs: model, optimizer, scheduler, grad scaler,
the RNG states and the loop position. A weights checkpoint (`best.pt`) holds the model state and the
spec to rebuild it. Both are loaded with `torch.load(weights_only=True)`: no arbitrary unpickling.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import torch

from usemabench.core.io import atomic_write_bytes

LAST = "last.pt"
BEST = "best.pt"


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be read or does not belong to the run that tries to resume from it."""


def save_checkpoint(path: str | os.PathLike, payload: dict[str, Any]) -> Path:
    """Serialise to memory first, then write through a temporary file and a rename."""
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    return atomic_write_bytes(path, buffer.getvalue())


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    try:
        return torch.load(Path(path), map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as error:  # torch raises several types for corrupt or foreign files
        raise CheckpointError(f"checkpoint {path} cannot be read: {error}") from error
