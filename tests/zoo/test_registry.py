"""The registry as users meet it: their own models, unknown names, size policies, the `models` command."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from torch import nn

from usemabench.zoo import create_model, get_model_info, list_models
from usemabench.zoo.registry import ModelInfo, apply_size_policy


def run_cli(*args: str, cwd: Path | None = None, extra_path: Path | None = None) -> subprocess.CompletedProcess:
    env = None
    if extra_path is not None:
        import os

        env = {**os.environ, "PYTHONPATH": f"{extra_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    return subprocess.run(
        [sys.executable, "-m", "usemabench", *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=300
    )


def test_unknown_name_lists_close_matches() -> None:
    with pytest.raises(KeyError, match="Did you mean: .*usema_t"):
        create_model("usema_tt")


def test_list_models_filters_by_pattern_and_family() -> None:
    assert all(name.startswith("usema_s") for name in list_models("usema_s*"))
    assert set(list_models(family="usema")) <= set(list_models())
    with pytest.raises(ValueError, match="unknown family"):
        list_models(family="rnn")


def test_model_info_rejects_bad_policy() -> None:
    with pytest.raises(ValueError, match="size_policy"):
        ModelInfo(name="x", family="cnn", builder=lambda *a: None, paper="p", code="", size_policy="stretch")


class Downsampler(nn.Module):
    """A model that needs sizes divisible by 4 and returns two deep-supervision outputs."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3, padding=1)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        assert x.shape[-1] % 4 == 0 and x.shape[-2] % 4 == 0
        full = self.conv(x)
        return [full, full[..., ::2, ::2]]


def test_pad_policy_crops_every_deep_supervision_output() -> None:
    model = Downsampler()
    apply_size_policy(model, "pad", 4, "downsampler")
    full, half = model(torch.randn(1, 1, 13, 18))
    assert full.shape[-2:] == (13, 18)
    assert half.shape[-2:] == (7, 9)


def test_error_policy_names_the_divisor() -> None:
    model = Downsampler()
    apply_size_policy(model, "error", 4, "downsampler")
    with pytest.raises(ValueError, match="divisible by 4; got 13x18"):
        model(torch.randn(1, 1, 13, 18))


def test_models_command_prints_every_family() -> None:
    result = run_cli("models")
    assert result.returncode == 0, result.stderr
    families = {get_model_info(name).family for name in list_models()}
    for family in families:
        assert family in result.stdout
    assert "usema_t " in result.stdout


def test_user_module_registers_a_model_from_the_command_line(tmp_path: Path) -> None:
    module = tmp_path / "my_models.py"
    module.write_text(
        textwrap.dedent(
            '''
            from torch import nn
            from usemabench import register_model

            @register_model(family="cnn", paper="My paper, 2026", config=dict(width=8))
            def my_tiny_net(in_channels, num_classes, width):
                """A user's model registered from outside the package."""
                return nn.Sequential(nn.Conv2d(in_channels, width, 3, padding=1), nn.Conv2d(width, num_classes, 1))
            '''
        )
    )
    result = run_cli("--model-module", "my_models", "models", "my_*", extra_path=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "my_tiny_net" in result.stdout and "cnn" in result.stdout


def test_missing_user_module_is_a_clear_error() -> None:
    result = run_cli("--model-module", "no_such_module_xyz", "models")
    assert result.returncode == 1
    assert "no_such_module_xyz" in result.stderr


def test_entry_point_plugin_is_discovered(tmp_path: Path) -> None:
    (tmp_path / "plugin_models.py").write_text(
        textwrap.dedent(
            '''
            from torch import nn
            from usemabench import register_model

            @register_model(family="cnn", paper="Plugin paper")
            def plugin_net(in_channels, num_classes):
                return nn.Conv2d(in_channels, num_classes, 1)
            '''
        )
    )
    dist_info = tmp_path / "plugin_models-0.1.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: plugin-models\nVersion: 0.1\n")
    (dist_info / "entry_points.txt").write_text("[usemabench.models]\nplugin = plugin_models\n")
    result = run_cli("models", "plugin_*", extra_path=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "plugin_net" in result.stdout
