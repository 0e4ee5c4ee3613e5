"""All-or-nothing output folders: write a whole set of files elsewhere, then swap them in as one change.

A generator of many files (tables, charts, a page linking them) that fails halfway must not leave a new
table beside an old page. `staged_outputs` hands out stand-in folders inside a temporary folder beside the
real ones, laid out as the real ones are relative to each other (so relative links computed while writing
stay right). When the block ends without error each staged file replaces its counterpart by a rename;
should any rename fail, those done are undone, so the folders hold either all the new files or all the old.
An error inside the block leaves the real folders untouched.
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

    def __init__(self, root: Path, common: Path) -> None:
        self.root = root
        self.common = common
        self.removals: list[Path] = []

    def folder(self, real: str | os.PathLike) -> Path:
        """Where to write what belongs in the real folder `real` (one of those given to `staged_outputs`)."""
        staged = self.root / Path(real).resolve().relative_to(self.common)
        staged.mkdir(parents=True, exist_ok=True)
        return staged

    def real(self, staged: str | os.PathLike) -> Path:
        """Where the staged file `staged` goes."""
        return self.common / Path(staged).resolve().relative_to(self.root)

    def remove(self, real: str | os.PathLike) -> None:
        """Remove the real file `real` when the staged files go in (kept if anything fails)."""
        self.removals.append(Path(real).resolve())


def _describe(error: OSError, fallback: Path) -> str:
    path = error.filename or fallback
    return f"{path}: {error.strerror or error}"


@contextmanager
def staged_outputs(*folders: str | os.PathLike) -> Iterator[Staging]:
    """Stage writes to `folders` and swap them in on success (see the module docstring); OutputError on failure."""
    resolved = [Path(folder).resolve() for folder in folders]
    common = Path(os.path.commonpath(resolved))
    try:
        common.mkdir(parents=True, exist_ok=True)
        root = Path(tempfile.mkdtemp(prefix=".usemabench-staging-", dir=common))
    except OSError as error:
        raise OutputError(f"cannot write outputs: {_describe(error, common)}") from None
    try:
        staging = Staging(root / "new", common)
        staging.root.mkdir()
        try:
            yield staging
        except OSError as error:
            raise OutputError(f"cannot write outputs, nothing was changed: {_describe(error, root)}") from None
        _swap_in(staging, root / "old")
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _swap_in(staging: Staging, backup: Path) -> None:
    """Move every staged file to its real place, keeping the files it replaces (and the removals) in `backup`
    until all moves are done; on a failure, move everything back."""
    staged = sorted(path for path in staging.root.rglob("*") if path.is_file())
    replaced: list[tuple[Path, Path]] = []  # (real, its backup)
    placed: list[Path] = []
    current = staging.root
    try:
        for real in staging.removals:
            current = real
            if real.is_file():
                kept = backup / "removed" / real.relative_to(staging.common)
                kept.parent.mkdir(parents=True, exist_ok=True)
                os.replace(real, kept)
                replaced.append((real, kept))
        for path in staged:
            relative = path.relative_to(staging.root)
            real = staging.common / relative
            current = real
            real.parent.mkdir(parents=True, exist_ok=True)
            if real.is_file():
                kept = backup / "replaced" / relative
                kept.parent.mkdir(parents=True, exist_ok=True)
                os.replace(real, kept)
                replaced.append((real, kept))
            os.replace(path, real)
            placed.append(real)
    except OSError as error:
        for real in placed:
            real.unlink(missing_ok=True)
        for real, kept in reversed(replaced):
            os.replace(kept, real)
        raise OutputError(f"cannot write outputs, nothing was changed: {_describe(error, current)}") from None
