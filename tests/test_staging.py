"""All-or-nothing output folders (usemabench.core.staging): every new file goes in, or none does."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from usemabench.core.staging import OutputError, staged_outputs


def tree(root: Path) -> dict[str, bytes]:
    return {path.relative_to(root).as_posix(): path.read_bytes() for path in sorted(root.rglob("*")) if path.is_file()}


@pytest.fixture
def outputs(tmp_path: Path) -> tuple[Path, Path]:
    """An earlier build: a table in tables/ and a page in site/, each naming its build."""
    tables, site = tmp_path / "tables", tmp_path / "site"
    (site / "figures").mkdir(parents=True)
    tables.mkdir()
    (tables / "board.md").write_text("old board")
    (site / "index.html").write_text("old page")
    (site / "figures" / "old.png").write_bytes(b"old figure")
    return tables, site


def test_the_new_files_replace_the_old_ones_and_each_staged_file_knows_its_real_place(outputs, tmp_path):
    tables, site = outputs
    with staged_outputs(tables, site) as staging:
        staged_tables, staged_site = staging.folder(tables), staging.folder(site)
        assert staging.real(staged_site / "figures" / "new.png") == (site / "figures" / "new.png").resolve()
        assert staging.real(staged_tables / "board.md") == (tables / "board.md").resolve()
        (staged_tables / "board.md").write_text("new board")
        (staged_site / "figures").mkdir()
        (staged_site / "figures" / "new.png").write_bytes(b"new figure")
        (staged_site / "index.html").write_text("new page")
        staging.remove(site / "figures" / "old.png")
        assert tree(tables) == {"board.md": b"old board"}  # nothing changes before the block ends
    assert tree(tables) == {"board.md": b"new board"}
    assert tree(site) == {"figures/new.png": b"new figure", "index.html": b"new page"}
    assert sorted(path.name for path in tmp_path.iterdir()) == ["site", "tables"]  # the staging folder is gone


def test_an_error_while_writing_changes_nothing(outputs, tmp_path):
    tables, site = outputs
    before = tree(tmp_path)
    with pytest.raises(RuntimeError, match="chart failed"), staged_outputs(tables, site) as staging:
        (staging.folder(tables) / "board.md").write_text("new board")
        raise RuntimeError("chart failed")
    assert tree(tmp_path) == before and sorted(path.name for path in tmp_path.iterdir()) == ["site", "tables"]


def test_a_failing_swap_puts_every_old_file_back_and_names_the_path(outputs, tmp_path):
    tables, site = outputs
    (site / "report.csv").mkdir()  # a folder where the new build puts a file: that rename fails
    (site / "report.csv" / "mine.txt").write_text("the user's")
    before = tree(tmp_path)
    with pytest.raises(OutputError, match=r"nothing was changed: .*report\.csv"), staged_outputs(tables, site) as staging:
        (staging.folder(tables) / "board.md").write_text("new board")
        (staging.folder(site) / "index.html").write_text("new page")
        (staging.folder(site) / "report.csv").write_text("new csv")
        staging.remove(site / "figures" / "old.png")
    assert tree(tmp_path) == before


def test_a_disk_error_inside_the_block_is_one_output_error(outputs):
    tables, site = outputs
    message = r"cannot write outputs, nothing was changed: .*full\.png: No space left on device"
    with pytest.raises(OutputError, match=message), staged_outputs(tables, site) as staging:
        raise OSError(28, "No space left on device", str(staging.folder(site) / "full.png"))
    assert (tables / "board.md").read_text() == "old board"


def test_each_folder_is_staged_beside_itself_not_in_a_common_parent(tmp_path):
    """Unrelated folders (common parent `/`, or on two file systems) each get a stand-in in their own parent,
    so every move is a rename within one folder's file system."""
    tables, site = tmp_path / "a" / "deep" / "tables", tmp_path / "b" / "site"
    with staged_outputs(tables, site) as staging:
        for real in (tables, site):
            assert staging.folder(real).parent.parent == real.parent.resolve()
        (staging.folder(tables) / "board.md").write_text("new board")
        (staging.folder(site) / "index.html").write_text("new page")
    assert tree(tmp_path) == {"a/deep/tables/board.md": b"new board", "b/site/index.html": b"new page"}
    assert sorted(path.name for path in (tmp_path / "a" / "deep").iterdir()) == ["tables"]


def test_a_nested_output_folder_is_its_own_stand_in(tmp_path):
    outer, inner = tmp_path / "out", tmp_path / "out" / "reports"
    with staged_outputs(outer, inner) as staging:
        (staging.folder(outer) / "board.md").write_text("board")
        (staging.folder(inner) / "index.html").write_text("page")
    assert tree(tmp_path) == {"out/board.md": b"board", "out/reports/index.html": b"page"}


def test_removing_a_file_outside_the_output_folders_is_refused(outputs, tmp_path):
    tables, site = outputs
    (tmp_path / "mine.txt").write_text("the user's")
    with pytest.raises(ValueError, match="in no output folder"), staged_outputs(tables, site) as staging:
        staging.remove(tmp_path / "mine.txt")
    assert (tmp_path / "mine.txt").read_text() == "the user's"


def test_a_folder_whose_parent_is_read_only_or_another_file_system_is_staged_inside_itself(outputs, tmp_path, monkeypatch):
    tables, site = outputs
    monkeypatch.setattr(os, "access", lambda path, mode: Path(path) != tmp_path)  # the parent of both: read-only
    with staged_outputs(tables, site) as staging:
        assert staging.folder(tables).parent.parent == tables.resolve()
        (staging.folder(tables) / "board.md").write_text("new board")
        (staging.folder(site) / "index.html").write_text("new page")
    assert tree(tmp_path) == {"tables/board.md": b"new board", "site/index.html": b"new page", "site/figures/old.png": b"old figure"}
