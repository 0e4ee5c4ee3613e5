"""The commands as a user types them: `usemabench leaderboard` (alias `report`) and `usemabench compare`."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from reliability_cases import BUILD_FAILURES, BUILD_STRICT, params
from usemabench.cli import main


def usemabench_command() -> list[str]:
    """The installed console script beside this interpreter (as a user runs it), else `python -m usemabench`."""
    script = Path(sys.executable).with_name("usemabench")
    return [str(script)] if script.exists() else [sys.executable, "-m", "usemabench"]


@pytest.fixture
def small_records(fabricated_records, tmp_path):
    """Two eval runs and the two bad files: enough for the command, quick to draw (no cost records)."""
    records = tmp_path / "records"
    for model in ("usema_s", "unet"):
        shutil.copytree(fabricated_records / "other" / model, records / "other" / model)
    for name in ("broken.json", "future.json"):
        shutil.copy(fabricated_records / name, records / name)
    return records


def test_leaderboard_command_builds_everything_and_names_skipped_files(small_records, tmp_path):
    result = subprocess.run(
        [*usemabench_command(), "leaderboard", "--records-dir", str(small_records),
         "--leaderboard-dir", str(tmp_path / "leaderboard"), "--reports-dir", str(tmp_path / "reports")],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "skipped broken.json: not a readable JSON record" in result.stderr
    assert "skipped future.json: schema_version 99" in result.stderr
    assert "(2 skipped)" in result.stdout
    markdown = (tmp_path / "leaderboard" / "LEADERBOARD.md").read_text()
    assert "| 1 | usema_s (ref) | usema | ok | 1/1 |" in markdown and "| 2 | unet | unregistered | ok | 1/1 |" in markdown
    assert (tmp_path / "reports" / "index.html").is_file()


@pytest.mark.parametrize("case", params(BUILD_STRICT))
def test_report_alias_with_strict_fails_on_skipped_files_and_writes_nothing(small_records, tmp_path, capsys, case):
    arguments = ["report", "--records-dir", str(small_records), "--leaderboard-dir", str(tmp_path / "lb"),
                 "--reports-dir", str(tmp_path / "rp")]
    assert main(arguments) == 0
    before = outputs(tmp_path)
    (small_records / "other" / "unet" / "seed0" / "extra.json").write_text('{"schema_version": 1, "kind": "eval"}')
    assert main([*arguments, "--strict"]) == 1
    err = capsys.readouterr().err
    assert re.search(case.message, err) and "skipped other/unet/seed0/extra.json: (top level): missing " in err
    assert outputs(tmp_path) == before


def outputs(root: Path) -> dict[str, bytes]:
    return {str(path.relative_to(root)): path.read_bytes() for path in sorted(root.rglob("*"))
            if path.is_file() and "records" not in path.parts}


@pytest.mark.parametrize("case", params(BUILD_FAILURES))
def test_a_build_that_fails_changes_nothing_and_says_where_in_one_line(small_records, tmp_path, monkeypatch, capsys, case):
    arguments = ["leaderboard", "--records-dir", str(small_records), "--leaderboard-dir", str(tmp_path / "lb"),
                 "--reports-dir", str(tmp_path / "rp")]
    assert main(arguments) == 0
    shutil.rmtree(small_records / "other" / "unet")  # the next build would change LEADERBOARD.md and index.html
    before = outputs(tmp_path)
    if case.data["fault"] == "folder-in-the-way":
        (tmp_path / "rp" / "index.html").unlink()
        (tmp_path / "rp" / "index.html").mkdir()  # the page cannot be renamed into place: the last step fails
        (tmp_path / "rp" / "index.html" / "x").write_text("x")
        before = outputs(tmp_path)
    else:
        def disk_full(*args, **kwargs):
            raise OSError(28, "No space left on device", str(tmp_path / "rp" / "index.html"))

        monkeypatch.setattr("usemabench.reports.build.report_html", disk_full)
    capsys.readouterr()
    assert main(arguments) == 1
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if not line.startswith(("skipped ", "note: "))]
    assert len(lines) == 1 and re.search(case.message, lines[0]), err
    assert outputs(tmp_path) == before
    assert sorted(path.name for path in tmp_path.iterdir()) == ["lb", "records", "rp"]  # no staging folder left
