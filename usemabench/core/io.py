"""File helpers: atomic writes (a crash, a full disk or a kill never leaves a truncated file behind),
content hashes and safe file stems."""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write to a temporary file in the same folder, fsync it, then rename over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(handle, 0o666 & ~_current_umask())  # mkstemp makes 0600; give the file normal permissions
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, payload: Any) -> Path:
    """Deterministic JSON (sorted keys, fixed indent, trailing newline), written atomically."""
    return atomic_write_text(path, canonical_json(payload) + "\n")


def canonical_json(payload: Any) -> str:
    return json.dumps(payload, indent=2, sort_keys=True, ensure_ascii=False, allow_nan=True)


def file_sha256(path: str | os.PathLike) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks (weights and archives can be gigabytes)."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def safe_file_stem(name: str) -> str:
    """`name` with every character outside [A-Za-z0-9._-] replaced by "_".

    The one rule shared by the per-case files the evaluator writes and the readers that look them up. Other
    names (dataset slugs, run folders) keep their own rules, since existing files are named by them.
    """
    return re.sub(r"[^A-Za-z0-9._-]", "_", name)
