"""All-or-nothing output folders: write a whole set of files elsewhere, then swap them in as one change.

A generator of many files (tables, charts, a page linking them) that fails halfway must not leave a new
table beside an old page. `staged_outputs` hands out a stand-in for each real folder, a temporary folder
beside it (same parent, so the same file system: each move is a rename; inside it when the parent is another
file system or read-only). Links between the outputs are
computed between real paths (`Staging.real`), never between stand-ins. When the block ends without error
each staged file replaces its counterpart; should any move fail, those done are undone, so the folders
hold either all the new files or all the old. An error inside the block leaves the real folders untouched.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class OutputError(OSError):
    """An output that could not be written (disk full, no permission, a file where a folder must be),
    said in one line naming the path; the outputs are left as they were."""


class Staging:
    """Stand-in folders for the real ones, and the real files to remove when the new files go in."""

    def __init__(self, stand_ins: dict[Path, Path]) -> None:
        self.stand_ins = stand_ins  # {real folder: its stand-in}
        self.removals: list[Path] = []

    def folder(self, real: str | os.PathLike) -> Path:
        """Where to write what belongs in the real folder `real` (one of those given to `staged_outputs`)."""
        return self.stand_ins[Path(real).resolve()]

    def real(self, staged: str | os.PathLike) -> Path:
        """Where the staged file `staged` goes."""
        staged = Path(staged).resolve()
        for real, stand_in in self.stand_ins.items():
            if staged.is_relative_to(stand_in):
                return real / staged.relative_to(stand_in)
        raise ValueError(f"{staged} is in no stand-in folder")

    def remove(self, real: str | os.PathLike) -> None:
        """Remove the real file `real`, inside one of the real folders, when the staged files go in (kept if
        anything fails)."""
        real = Path(real).resolve()
        if not any(real.is_relative_to(folder) for folder in self.stand_ins):
            raise ValueError(f"{real} is in no output folder")
        self.removals.append(real)

    def backup(self, real: Path, kind: str) -> Path:
        """Where the real file `real` is kept until the swap is done: beside the stand-in of its folder."""
        folder = max((folder for folder in self.stand_ins if real.is_relative_to(folder)), key=lambda f: len(f.parts))
        return self.stand_ins[folder].parent / kind / real.relative_to(folder)


def _describe(error: OSError, fallback: Path) -> str:
    path = error.filename or fallback
    return f"{path}: {error.strerror or error}"


def _stand_in_home(real: Path) -> Path:
    """Where the stand-in of `real` goes: its parent, when writable and on the same file system (so every move
    is a rename); else inside `real` itself (an output folder that is a mount point, under a read-only parent)."""
    parent = real.parent
    if os.access(parent, os.W_OK) and parent.stat().st_dev == real.stat().st_dev:
        return parent
    return real


@contextmanager
def staged_outputs(*folders: str | os.PathLike) -> Iterator[Staging]:
    """Stage writes to `folders` and swap them in on success (see the module docstring); OutputError on failure."""
    temporary: list[Path] = []  # one per real folder, beside it: the stand-in "new", and the files kept until the swap
    stand_ins: dict[Path, Path] = {}
    try:
        for real in dict.fromkeys(Path(folder).resolve() for folder in folders):
            try:
                real.mkdir(parents=True, exist_ok=True)
                temporary.append(Path(tempfile.mkdtemp(prefix=f".usemabench-staging-{real.name}-", dir=_stand_in_home(real))))
            except OSError as error:
                raise OutputError(f"cannot write outputs: {_describe(error, real)}") from None
            stand_ins[real] = temporary[-1] / "new"
            stand_ins[real].mkdir()
        staging = Staging(stand_ins)
        try:
            yield staging
        except OSError as error:
            raise OutputError(f"cannot write outputs, nothing was changed: {_describe(error, temporary[0])}") from None
        _swap_in(staging)
    finally:
        for folder in temporary:
            shutil.rmtree(folder, ignore_errors=True)


def _swap_in(staging: Staging) -> None:
    """Move every staged file to its real place, keeping the files it replaces (and the removals) beside their
    stand-in until all moves are done; on a failure, move everything back."""
    replaced: list[tuple[Path, Path]] = []  # (real, its backup)
    placed: list[Path] = []
    current = next(iter(staging.stand_ins.values()))

    def keep(real: Path, kind: str) -> None:
        backup = staging.backup(real, kind)
        backup.parent.mkdir(parents=True, exist_ok=True)
        os.replace(real, backup)
        replaced.append((real, backup))

    try:
        for real in staging.removals:
            current = real
            if real.is_file():
                keep(real, "removed")
        for folder, stand_in in staging.stand_ins.items():
            for path in sorted(p for p in stand_in.rglob("*") if p.is_file()):
                real = current = folder / path.relative_to(stand_in)
                real.parent.mkdir(parents=True, exist_ok=True)
                if real.is_file():
                    keep(real, "replaced")
                os.replace(path, real)
                placed.append(real)
    except OSError as error:
        for real in placed:
            real.unlink(missing_ok=True)
        for real, backup in reversed(replaced):
            os.replace(backup, real)
        raise OutputError(f"cannot write outputs, nothing was changed: {_describe(error, current)}") from None
