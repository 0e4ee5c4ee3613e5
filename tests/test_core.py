"""The core layer: file naming shared by the evaluator and the report, file hashes, plain path names."""

import hashlib
from pathlib import Path

import pytest

from usemabench.core.io import file_sha256, safe_file_stem
from usemabench.core.names import UnsafeNameError, plain_name


def test_safe_file_stem_keeps_safe_names_and_replaces_the_rest():
    assert safe_file_stem("case_01.v2-a") == "case_01.v2-a"
    assert safe_file_stem("patient 7/slice:3") == "patient_7_slice_3"
    assert safe_file_stem("ümlaut.tif") == "_mlaut.tif"


def test_file_sha256_reads_past_one_block(tmp_path: Path):
    data = bytes(range(256)) * 5000  # 1.2 MiB: more than one 1 MiB block
    (tmp_path / "blob").write_bytes(data)
    assert file_sha256(tmp_path / "blob") == hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("name", ["..", ".", "a/b", "a\\b", "", ".hidden", "x" * 129, "a b", "ü", None])
def test_plain_name_refuses_what_is_not_one_folder(name):
    with pytest.raises(UnsafeNameError, match="protocol"):
        plain_name(name, "protocol")


@pytest.mark.parametrize("name", ["usema_s", "dsb2018", "gpu-short", "v1.2", "_x"])
def test_plain_name_keeps_plain_names(name):
    assert plain_name(name, "model") == name
