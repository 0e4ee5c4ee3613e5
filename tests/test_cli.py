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
