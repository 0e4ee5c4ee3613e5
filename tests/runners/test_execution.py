"""Execution modes as data: names, what each does to a model, and the protocol field that selects one."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from usemabench.runners.execution import (
    EXEC_MODES,
    CompileWatch,
    apply_exec,
    parse_exec,
)
from usemabench.runners.protocol import ProtocolError, load_protocol


@pytest.mark.parametrize(
    "name,channels_last,compile_mode",
    [
        ("eager", False, None),
        ("channels_last", True, None),
        ("compile", False, "default"),
        ("compile-max-autotune", False, "max-autotune"),
        ("channels_last+compile", True, "default"),
        ("channels_last+compile-max-autotune", True, "max-autotune"),
    ],
)
def test_every_mode_name_parses(name: str, channels_last: bool, compile_mode: str | None) -> None:
    mode = parse_exec(name)
    assert (mode.name, mode.channels_last, mode.compile_mode) == (name, channels_last, compile_mode)
    assert mode.is_eager == (name == "eager")


def test_every_listed_mode_is_tested_above() -> None:
    assert len(EXEC_MODES) == 6


@pytest.mark.parametrize("name", ["compile+channels_last", "fast", "", "max-autotune"])
def test_unknown_modes_are_refused_with_the_choices(name: str) -> None:
    with pytest.raises(ValueError, match="choose one of eager, channels_last"):
        parse_exec(name)


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 2, 1))


def test_channels_last_keeps_the_state_dict_and_the_output() -> None:
    eager, converted = _net(), _net()
    keys = list(eager.state_dict())
    prepared = apply_exec(converted, parse_exec("channels_last"))
    assert list(converted.state_dict()) == keys
    assert converted[0].weight.is_contiguous(memory_format=torch.channels_last)
    x = torch.randn(2, 3, 16, 16)
    out = prepared(x)
    assert out.is_contiguous(memory_format=torch.channels_last)  # the input was converted too
    torch.testing.assert_close(out, eager(x), rtol=1e-5, atol=1e-6)
    assert {id(p) for p in prepared.parameters()} == {id(p) for p in converted.parameters()}


def test_the_wrapper_sits_between_the_layout_and_compile() -> None:
    seen = []

    def wrap(module: nn.Module) -> nn.Module:
        seen.append(module)
        return module

    model = _net()
    prepared = apply_exec(model, parse_exec("channels_last+compile"), wrap=wrap)
    assert seen[0].model is model  # wrapped after the channels_last input conversion
    assert isinstance(prepared, torch._dynamo.eval_frame.OptimizedModule) and prepared._orig_mod is seen[0]


def test_compile_watch_counts_graphs_and_breaks() -> None:
    def broken(x: torch.Tensor) -> torch.Tensor:
        x = x + 1
        torch._dynamo.graph_break()
        return x * 2

    compiled = torch.compile(broken, backend="eager")  # Dynamo's capture alone: no code generation
    watch = CompileWatch()
    with watch.watch():
        compiled(torch.ones(3))
    assert (watch.graphs, watch.graph_breaks, watch.fell_back) == (2, 1, True)
    assert watch.summary()["break_reasons"]


class NotCompilable(nn.Module):
    @torch._dynamo.disable
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + 1


def test_compile_watch_calls_no_graph_a_fallback() -> None:
    watch = CompileWatch()
    with watch.watch():
        torch.compile(NotCompilable(), backend="eager")(torch.ones(3))
    assert watch.graphs == 0 and watch.fell_back
    assert watch.break_reasons == ["Skip inlining `torch.compiler.disable()`d function"]


def _protocol_file(tmp_path, **changes):
    contents = {**load_protocol("quick").contents, **changes}
    path = tmp_path / "protocol.json"
    path.write_text(json.dumps(contents))
    return path


def test_the_protocol_execution_field_is_optional_and_leaves_old_hashes_alone(tmp_path) -> None:
    quick = load_protocol("quick")
    assert "execution" not in quick.contents and quick.execution == "eager"
    compiled = load_protocol(_protocol_file(tmp_path, execution="channels_last+compile"))
    assert compiled.execution == "channels_last+compile" and compiled.hash != quick.hash


def test_an_unknown_execution_in_a_protocol_names_the_file(tmp_path) -> None:
    path = _protocol_file(tmp_path, execution="turbo")
    with pytest.raises(ProtocolError, match=f"{path}.*execution must be one of"):
        load_protocol(path)


def test_training_runs_its_steps_in_the_protocol_execution_mode(tmp_path, monkeypatch) -> None:
    """channels_last from the protocol: train() prepares the model in that mode and trains through it; the
    weights end equal to an eager run's up to rounding, under the same state_dict keys."""
    from runner_helpers import BlobDataset, TinyNet

    import usemabench.runners.train as train_module
    from usemabench.runners.protocol import protocol_from_dict
    from usemabench.runners.seeding import seed_everything

    prepared_in = []

    def recording_apply_exec(model, mode, wrap=None):
        prepared_in.append(mode.name)
        return apply_exec(model, mode, wrap)

    monkeypatch.setattr(train_module, "apply_exec", recording_apply_exec)
    models = {}
    for execution in ("eager", "channels_last"):
        contents = {**load_protocol("quick").contents, "resolution": [32, 32], "batch_size": 4, "epochs": 1,
                    "iterations_per_epoch": 3, "schedule": {"name": "poly", "power": 0.9, "warmup_iterations": 1}}
        if execution != "eager":
            contents["execution"] = execution
        seed_everything(0)
        models[execution] = TinyNet(width=8)
        result = train_module.train(
            models[execution], BlobDataset(augment=True), BlobDataset(count=4, seed=1),
            protocol_from_dict(contents, source="test protocol"), seed=0, run_dir=tmp_path / execution,
            num_classes=2, device=torch.device("cpu"), progress=False,
        )
        assert result.steps == 3
    assert prepared_in == ["eager", "channels_last"]
    eager, converted = models["eager"].state_dict(), models["channels_last"].state_dict()
    assert list(eager) == list(converted)
    for key in eager:
        torch.testing.assert_close(converted[key], eager[key], rtol=1e-4, atol=1e-5, msg=key)
