"""`usemabench export` and `push` as a user meets them: records not found, a folder in use, no network."""

from __future__ import annotations

from pathlib import Path

import huggingface_hub.constants as constants
import pytest

from usemabench.cli import main
from usemabench.runners.checkpoint import BEST, save_checkpoint
from usemabench.zoo import create_model

from test_hub import point_client_at


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    """A run folder holding only an untrained usema_tiny's best.pt (no records anywhere)."""
    model = create_model("usema_tiny")
    save_checkpoint(tmp_path / "run" / BEST, {"model_spec": model.usemabench_spec, "model": model.state_dict()})
    return tmp_path / "run"


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """The client aimed at a local port where nothing listens, with a token, so no request leaves the machine."""
    monkeypatch.setenv("HF_TOKEN", "hf_fake_token_for_tests")
    point_client_at(monkeypatch, "http://127.0.0.1:9")


@pytest.mark.parametrize("offline", [False, True], ids=["connection-refused", "HF_HUB_OFFLINE"])
def test_push_without_the_hub_is_a_one_line_error(run_dir, tmp_path, no_network, offline, monkeypatch, capsys) -> None:
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", offline)
    assert main(["push", str(run_dir), "lab/usema-tiny", "--records-dir", str(tmp_path / "records")]) == 1
    error = capsys.readouterr().err
    assert error.startswith("usemabench push: error: lab/usema-tiny@main: weights could not be pushed (")
    assert error.count("\n") == 1
    assert ("offline mode is enabled" in error) == offline


def test_export_warns_when_the_run_has_no_record(run_dir, tmp_path, caplog) -> None:
    records = tmp_path / "elsewhere"
    assert main(["export", str(run_dir), str(tmp_path / "out"), "--records-dir", str(records)]) == 0
    assert f"no train record of {run_dir} in {records}" in caplog.text
    assert (tmp_path / "out" / "README.md").is_file()


def test_export_default_records_folder_is_in_the_help(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["export", "--help"])
    assert "(default: leaderboard/records)" in " ".join(capsys.readouterr().out.split())


def test_export_never_writes_into_a_folder_in_use_unless_forced(run_dir, tmp_path, capsys) -> None:
    folder = tmp_path / "repo"
    folder.mkdir()
    (folder / "README.md").write_text("my project")
    argv = ["export", str(run_dir), str(folder), "--records-dir", str(tmp_path / "records")]
    assert main(argv) == 1
    assert f"{folder} is not empty (README.md) and not an earlier export" in capsys.readouterr().err
    assert [path.name for path in folder.iterdir()] == ["README.md"]
    assert (folder / "README.md").read_text() == "my project"

    (folder / "README.md").unlink()
    (folder / "notes.txt").write_text("keep me")
    assert main([*argv, "--force"]) == 0
    assert (folder / "notes.txt").read_text() == "keep me" and (folder / "model.safetensors").is_file()

    (folder / "notes.txt").unlink()
    assert main(argv) == 0  # an earlier export is replaced without --force
