"""`usemabench`'s errors: bad input in one line on stderr, a bug with its traceback."""

from __future__ import annotations

import pytest

import usemabench.runners.commands as commands
from usemabench.cli import main
from usemabench.runners.checkpoint import CheckpointError
from usemabench.runners.errors import UsageError


def failing_run_command(monkeypatch: pytest.MonkeyPatch, error: Exception) -> None:
    def handler(args) -> int:
        raise error

    monkeypatch.setattr(commands, "run_command", handler)  # read when main() builds the parser


@pytest.mark.parametrize("bug", [KeyError("dice"), RuntimeError("CUDA error: an illegal memory access"), TypeError("x")])
def test_a_bug_keeps_its_traceback(bug, monkeypatch):
    failing_run_command(monkeypatch, bug)
    with pytest.raises(type(bug)):
        main(["run", "--model", "nnunet_small"])


@pytest.mark.parametrize("error", [UsageError("--thing is wrong"), CheckpointError("runs/x/last.pt cannot be read")])
def test_bad_input_is_one_line(error, monkeypatch, capsys):
    failing_run_command(monkeypatch, error)
    assert main(["run", "--model", "nnunet_small"]) == 1
    assert capsys.readouterr().err == f"usemabench run: error: {error}\n"


def test_a_device_name_torch_does_not_know_is_bad_input(tmp_path, capsys):
    assert main(["run", "--model", "nnunet_small", "--device", "gpu", "--records-dir", str(tmp_path)]) == 1
    assert "device 'gpu': Expected one of cpu, cuda" in capsys.readouterr().err


def test_model_module_is_found_in_the_current_folder(user_module, tmp_path, monkeypatch, capsys):
    # The console script's sys.path has no current folder (unlike `python -m usemabench`).
    user_module("cwd_models_x1")
    monkeypatch.chdir(tmp_path)
    assert main(["--model-module", "cwd_models_x1", "models", "cwd_models_*"]) == 0
    assert "cwd_models_x1" in capsys.readouterr().out


def test_model_module_may_be_a_python_file(user_module, tmp_path, capsys):
    path = user_module("file_models_x1")
    assert main(["--model-module", str(path), "models", "file_models_*"]) == 0
    assert "file_models_x1" in capsys.readouterr().out
    assert main(["--model-module", str(tmp_path / "missing.py"), "models"]) == 1
    assert f"no such file {tmp_path / 'missing.py'}" in capsys.readouterr().err
