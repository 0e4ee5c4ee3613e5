"""File helpers: naming shared by the evaluator's per-case PNGs and the report, and file hashes."""

import hashlib
from pathlib import Path

from usemabench.io import file_sha256, safe_file_stem


def test_safe_file_stem_keeps_safe_names_and_replaces_the_rest():
    assert safe_file_stem("case_01.v2-a") == "case_01.v2-a"
    assert safe_file_stem("patient 7/slice:3") == "patient_7_slice_3"
    assert safe_file_stem("ümlaut.tif") == "_mlaut.tif"


def test_file_sha256_reads_past_one_block(tmp_path: Path):
    data = bytes(range(256)) * 5000  # 1.2 MiB: more than one 1 MiB block
    (tmp_path / "blob").write_bytes(data)
    assert file_sha256(tmp_path / "blob") == hashlib.sha256(data).hexdigest()
