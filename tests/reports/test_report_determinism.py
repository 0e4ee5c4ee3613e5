"""Same records -> byte-identical Markdown, CSV, HTML and PNG, wherever the records folder lives."""

import json
import shutil
from pathlib import Path

from PIL import Image

from usemabench.reports.build import FIGURES_MANIFEST, build
from usemabench.reports.figures import SOFTWARE_KEY, software_tag


def files_under(root: Path) -> dict[str, bytes]:
    return {path.relative_to(root).as_posix(): path.read_bytes() for path in sorted(root.rglob("*")) if path.is_file()}


def test_rebuilding_from_a_moved_copy_gives_identical_bytes(fabricated_records, built_outputs, tmp_path):
    # A copy in another folder, with every record's (informational) timestamp changed.
    records = shutil.copytree(fabricated_records, tmp_path / "elsewhere" / "records")
    for path in records.rglob("*.json"):
        try:
            record = json.loads(path.read_text())
        except json.JSONDecodeError:
            continue
        record["created"] = "2031-01-01T00:00:00+00:00"
        path.write_text(json.dumps(record))
    build(records, tmp_path / "out" / "leaderboard", tmp_path / "out" / "reports")
    first, second = files_under(built_outputs), files_under(tmp_path / "out")
    assert sorted(first) == sorted(second)
    assert {name.rsplit(".", 1)[-1] for name in first} == {"md", "csv", "html", "png", "txt"}  # txt: figures manifest
    changed = [name for name in first if first[name] != second[name]]
    assert changed == []


def test_png_metadata_names_the_renderer_only(built_outputs):
    for path in sorted((built_outputs / "reports" / "figures").glob("*.png")):
        with Image.open(path) as image:
            assert image.text == {SOFTWARE_KEY: software_tag()}, path.name


def test_figures_left_from_older_records_are_removed(fabricated_records, tmp_path):
    records = tmp_path / "records"
    shutil.copytree(fabricated_records / "other", records / "other")
    stale = tmp_path / "reports" / "figures" / "scaling_old-gpu_fp32_infer.png"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"not a figure")
    (stale.parent / FIGURES_MANIFEST).write_text(f"{stale.name}\n")  # as the build that drew it left it
    build(records, tmp_path / "leaderboard", tmp_path / "reports")
    assert not stale.exists()
    assert "figures/scaling_old-gpu" not in (tmp_path / "reports" / "index.html").read_text()
