"""Where datasets live: the data root of the registered datasets and the cache of generated files.

Registered datasets name their folder as `{data}/<folder>`. `{data}` is `$USEMABENCH_DATA` when set;
otherwise the first of `./../shared/data`, `<repository>/../shared/data` and `<cache>/data` (where
`usemabench datasets download` puts files) that holds the folder.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from usemabench.datasets.errors import DatasetError

DATA_PLACEHOLDER = "{data}"
_REPOSITORY = Path(__file__).resolve().parents[2]


def cache_dir() -> Path:
    """`$USEMABENCH_CACHE`, or `~/.cache/usemabench`: generated data, verification splits of ad-hoc sources."""
    return Path(os.environ.get("USEMABENCH_CACHE") or Path.home() / ".cache" / "usemabench").expanduser()


def data_roots() -> list[Path]:
    """Folders searched, in order, for a registered dataset's folder."""
    configured = os.environ.get("USEMABENCH_DATA")
    if configured:
        return [Path(configured).expanduser()]
    roots = [Path.cwd() / ".." / "shared" / "data", _REPOSITORY / ".." / "shared" / "data", cache_dir() / "data"]
    unique: list[Path] = []
    for root in roots:
        resolved = root.resolve()
        if resolved not in unique:
            unique.append(resolved)
    return unique


def default_download_root() -> Path:
    configured = os.environ.get("USEMABENCH_DATA")
    return Path(configured).expanduser() if configured else cache_dir() / "data"


def expand_data_placeholder(target: str) -> str:
    """Replace a leading `{data}/<folder>` by the first data root that holds `<folder>`."""
    if not target.startswith(DATA_PLACEHOLDER):
        return target
    folder = target[len(DATA_PLACEHOLDER) :].lstrip("/")
    roots = data_roots()
    for root in roots:
        if (root / folder).is_dir():
            return str(root / folder)
    looked = ", ".join(str(root) for root in roots)
    name = folder.split("/")[0]
    raise DatasetError(
        f"dataset folder '{folder}' not found; looked in: {looked}. Set USEMABENCH_DATA to the folder that "
        f"holds '{name}', or fetch it with `usemabench datasets download` where a download is registered"
    )


def slug(text: str) -> str:
    """A file-name-safe short name."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-.") or "dataset"
