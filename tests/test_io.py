"""File naming shared by the evaluator's per-case PNGs and the report that reads them."""

from usemabench.io import safe_file_stem


def test_safe_file_stem_keeps_safe_names_and_replaces_the_rest():
    assert safe_file_stem("case_01.v2-a") == "case_01.v2-a"
    assert safe_file_stem("patient 7/slice:3") == "patient_7_slice_3"
    assert safe_file_stem("ümlaut.tif") == "_mlaut.tif"
