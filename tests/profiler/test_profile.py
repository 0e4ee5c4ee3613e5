"""The profiler: memory measurement, latency summary, records (ok, oom, unsupported, failed), the CLI.

No timing asserts: latencies are only checked to be present and positive.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from torch import Tensor, nn

from usemabench.cli import main
from usemabench.core.records import read_records, record_filename
from usemabench.profiler import commands as profile_commands
from usemabench.profiler import peaks, profile
from usemabench.profiler.flops import count_flops
from usemabench.profiler.peaks import device_peak, utilisation
from usemabench.profiler.profile import (
    cpu_allocation_peak,
    latency_summary,
    profile_model,
    profile_sweep,
)
from usemabench.zoo import registry


class TinyNet(nn.Module):
    """Two convs; raises CUDA's out-of-memory error above `oom_above` pixels, to stand for a full GPU."""

    calls_in_training_mode: list[bool] = []  # one entry per forward on real tensors

    def __init__(
        self, in_channels: int, num_classes: int, oom_above: int = 10**9, broken: bool = False, max_width: int = 10**9
    ) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(in_channels, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, num_classes, 1))
        self.oom_above, self.broken, self.max_width = oom_above, broken, max_width

    def forward(self, x: Tensor) -> Tensor:
        if self.broken:
            raise RuntimeError("a kernel bug")
        if x.shape[-1] > self.max_width:
            raise ValueError(f"built for inputs up to {self.max_width} pixels wide")
        if x.shape[-2] * x.shape[-1] > self.oom_above and not x.is_meta:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 80.00 GiB (simulated)")
        if not x.is_meta:
            TinyNet.calls_in_training_mode.append(self.training)
        return self.body(x)


@pytest.fixture
def tiny_models(monkeypatch: pytest.MonkeyPatch) -> None:
    """Registers test models for this test only (the shared registry is restored afterwards)."""
    registry.list_models()  # load the built-in families first, so they do not overwrite anything later

    def add(name: str, **info) -> None:
        model_info = registry.ModelInfo(name=name, family="cnn", builder=TinyNet, paper="test", code="", **info)
        monkeypatch.setitem(registry._REGISTRY, name, model_info)

    add("test_tiny", size_policy="any")
    add("test_tiny_div16", size_divisor=16, size_policy="error")
    add("test_tiny_oom", size_policy="any", default_config={"oom_above": 40 * 40})
    add("test_tiny_broken", size_policy="any", default_config={"broken": True})
    add("test_tiny_fixed", size_policy="any", default_config={"max_width": 32})
    monkeypatch.setitem(
        registry._REGISTRY, "test_not_compilable",
        registry.ModelInfo(name="test_not_compilable", family="cnn", builder=NotCompilable, paper="test", code="",
                           size_policy="any"),
    )


class NotCompilable(TinyNet):
    """A model Dynamo captures no graph of: under a compile label it would silently run eagerly."""

    @torch._dynamo.disable
    def forward(self, x: Tensor) -> Tensor:
        return super().forward(x)


def test_cpu_allocation_peak_sees_what_a_step_holds_at_once() -> None:
    def step() -> None:
        first = torch.ones(2**20)  # 4 MiB
        second = torch.ones(2**20)
        del first, second
        third = torch.ones(2**19)  # 2 MiB, after the others are freed
        del third

    assert cpu_allocation_peak(step) == 8 * 2**20


def test_the_cpu_profiler_leaves_stderr_clean() -> None:
    """Kineto's start/stop lines and CPU-only device errors read as failures in every profile's output."""
    code = (
        "import os, torch; os.environ.pop('KINETO_LOG_LEVEL', None)\n"
        "from usemabench.profiler.profile import cpu_allocation_peak\n"
        "assert cpu_allocation_peak(lambda: torch.ones(1024).sum()) > 0\n"
    )
    child = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert child.returncode == 0, child.stderr[-2000:]
    assert child.stderr == "", child.stderr[-2000:]


def test_latency_summary() -> None:
    summary = latency_summary([0.001, 0.002, 0.003, 0.004, 0.010], warmup=2)
    assert summary["median"] == pytest.approx(3.0)
    assert summary["iqr"] == pytest.approx(4.0 - 2.0)
    assert summary["min"] == pytest.approx(1.0)
    assert (summary["repeats"], summary["warmup"]) == (5, 2)


@pytest.mark.parametrize("mode", ["infer", "train"])
def test_record_of_a_model(tiny_models: None, mode: str) -> None:
    TinyNet.calls_in_training_mode.clear()
    record = profile_model("test_tiny", 32, batch=2, mode=mode, repeats=2, warmup=1)
    assert record["status"] == "ok", record["error"]
    # the input check's inference forward; warm-up, memory and the timed calls in the requested mode; then one
    # inference forward for the backends
    assert TinyNet.calls_in_training_mode == [False] + [mode == "train"] * 4 + [False]
    assert record["kind"] == "profile" and record["resolution"] == [32, 32]
    cost = record["cost"]
    assert cost["mode"] == mode and cost["batch"] == 2
    weights = 4 * 1 * 9 + 4 + 2 * 4 + 2
    assert cost["params"] == {"total": weights, "trainable": weights}
    assert cost["macs"] == count_flops(TinyNet(1, 2), (1, 1, 32, 32), mode)["macs"] > 0
    assert cost["flops"] == 2 * cost["macs"]
    assert cost["latency_ms"]["median"] > 0 and cost["latency_ms"]["repeats"] == 2
    assert cost["throughput"] == pytest.approx(2 / (cost["latency_ms"]["median"] / 1e3))
    # At least the input, the first activation (2 x 4 x 32 x 32 floats) and the weights are live at once.
    assert cost["peak_memory_bytes"] >= 4 * (2 * 32 * 32 + 2 * 4 * 32 * 32 + weights)
    assert "profiler memory events" in cost["memory_method"]
    assert cost["cpu_load_average_1min"] >= 0
    assert record["environment"]["precision"] == "fp32"
    assert record["model"]["config"] == {"in_channels": 1, "num_classes": 2}


def test_record_names_the_sema_backend_that_ran() -> None:
    record = profile_model("usema_tiny", 32, mode="infer", repeats=1, warmup=0)
    assert record["status"] == "ok", record["error"]
    assert record["environment"]["backends"]["sema"] == ["torch"]
    assert record["cost"]["flops_by_op"]["usemabench.sema_attention"] > 0


def test_full_attention_ablation_runs_a_fused_sdpa_kernel() -> None:
    # Its values are a strided view of the feature map; unfixed, SDPA silently fell back to `math`.
    record = profile_model("usema_tiny_full", 32, mode="infer", repeats=1, warmup=0)
    assert record["status"] == "ok", record["error"]
    assert record["environment"]["backends"]["sdpa"] == ["flash (cpu)"]


def test_sweep_records_oom_and_unsupported_and_goes_on(tiny_models: None, tmp_path) -> None:
    lines: list[str] = []
    records = profile_sweep(
        ["test_tiny_oom", "test_tiny_div16"], [32, 40, 48], modes=("infer",), records_dir=tmp_path,
        log=lines.append, repeats=1, warmup=0,
    )
    status = [(record["model"]["name"], record["resolution"][0], record["status"]) for record in records]
    assert status == [
        ("test_tiny_oom", 32, "ok"),
        ("test_tiny_oom", 40, "ok"),
        ("test_tiny_oom", 48, "oom"),
        ("test_tiny_div16", 32, "ok"),
        ("test_tiny_div16", 40, "unsupported"),
        ("test_tiny_div16", 48, "ok"),
    ]
    oom = next(record for record in records if record["status"] == "oom")
    assert "out of memory" in oom["error"] and oom["cost"]["macs"] > 0
    written, skipped = read_records(tmp_path, kind="profile")
    assert not skipped and len(written) == len(lines) == len(records)


def test_unsupported_size_is_recorded(tiny_models: None) -> None:
    record = profile_model("test_tiny_div16", 40, repeats=1, warmup=0)
    assert record["status"] == "unsupported"
    assert "divisible by 16" in record["error"]
    refused = profile_model("test_tiny_fixed", 40, repeats=1, warmup=0)
    assert refused["status"] == "unsupported"
    assert "up to 32 pixels" in refused["error"]


def test_a_broken_model_is_recorded_as_failed_and_fails_the_command(tiny_models: None, tmp_path) -> None:
    record = profile_model("test_tiny_broken", 32, repeats=1, warmup=0)
    assert record["status"] == "failed" and "a kernel bug" in record["error"]
    argv = ["profile", "--models", "test_tiny_broken", "--resolutions", "32", "--records-dir", str(tmp_path)]
    assert main(argv) == 1


@pytest.mark.parametrize("mode", ["infer", "train"])
def test_a_value_error_outside_the_models_input_check_is_failed_not_unsupported(
    tiny_models: None, monkeypatch: pytest.MonkeyPatch, tmp_path, mode: str
) -> None:
    def broken(*args, **kwargs):
        raise ValueError("a bug outside the model")

    # infer: the FLOP counter breaks; train: the loss does
    monkeypatch.setattr(profile, "count_flops" if mode == "infer" else "SegmentationLoss", broken)
    record = profile_model("test_tiny", 32, mode=mode, repeats=1, warmup=0)
    assert record["status"] == "failed" and "ValueError: a bug outside the model" in record["error"]
    argv = ["profile", "--models", "test_tiny", "--resolutions", "32", "--mode", mode, "--records-dir", str(tmp_path)]
    assert main(argv) == 1


def test_cli_writes_one_record_per_model_resolution_and_mode(tiny_models: None, tmp_path, capsys) -> None:
    code = main([
        "profile", "--models", "test_tiny,test_tiny_div16", "--resolutions", "32,40", "--mode", "both",
        "--repeats", "1", "--warmup", "0", "--records-dir", str(tmp_path),
    ])
    assert code == 0
    records, skipped = read_records(tmp_path, kind="profile")
    assert not skipped
    keys = {(r["model"]["name"], r["resolution"][0], r["cost"]["mode"], r["status"]) for r in records}
    assert len(records) == 8
    assert ("test_tiny_div16", 40, "train", "unsupported") in keys
    assert ("test_tiny", 40, "train", "ok") in keys
    assert "unsupported" in capsys.readouterr().out


def test_cli_refuses_an_unknown_model_before_any_work(tmp_path, capsys) -> None:
    code = main(["profile", "--models", "usema_tni", "--resolutions", "32", "--records-dir", str(tmp_path)])
    assert code == 1
    assert "usema_t" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_cli_choices_match_the_profiler() -> None:
    assert profile_commands.MODES == profile.MODES
    assert profile_commands.SDPA_BACKENDS == profile.SDPA_BACKENDS


def test_channels_last_is_recorded_as_the_mode_and_a_variant_and_eager_keeps_its_identity(tiny_models: None) -> None:
    eager = profile_model("test_tiny", 32, repeats=1, warmup=0)
    converted = profile_model("test_tiny", 32, repeats=1, warmup=0, exec_mode="channels_last")
    assert converted["status"] == "ok", converted["error"]
    assert "exec" not in eager["cost"] and eager["metrics"] == {}  # as every record written before modes existed
    assert converted["cost"]["exec"] == {"mode": "channels_last"}
    assert converted["metrics"] == {"variant": "channels_last"}
    assert record_filename(converted) != record_filename(eager)
    sdpa_too = profile_model("test_tiny", 32, repeats=1, warmup=0, exec_mode="channels_last", sdpa="math")
    assert sdpa_too["metrics"] == {"variant": "channels_last, sdpa-math"}


def test_a_model_compile_captures_nothing_of_is_failed_never_timed_eagerly(tiny_models: None) -> None:
    record = profile_model("test_not_compilable", 32, repeats=1, warmup=0, exec_mode="compile")
    assert record["status"] == "failed"
    assert "captured no graph" in record["error"]
    assert "latency_ms" not in record["cost"] and record["cost"]["exec"] == {"mode": "compile"}


@pytest.mark.slow
def test_compiled_record_times_the_compilation_apart(tiny_models: None) -> None:
    record = profile_model("test_tiny", 32, mode="infer", repeats=2, warmup=1, exec_mode="compile")
    assert record["status"] == "ok", record["error"]
    execution = record["cost"]["exec"]
    assert execution["mode"] == "compile" and execution["compile_mode"] == "default"
    assert execution["graphs"] >= 1 and execution["graph_breaks"] == 0 and not execution["fell_back"]
    median_s = record["cost"]["latency_ms"]["median"] / 1e3
    assert execution["first_call_seconds"] > median_s
    assert execution["compile_seconds"] == pytest.approx(execution["first_call_seconds"] - median_s)


def test_cpu_record_has_achieved_flops_and_says_why_no_mfu(tiny_models: None) -> None:
    record = profile_model("test_tiny", 32, batch=2, repeats=2, warmup=0)
    cost = record["cost"]
    achieved = cost["flops"] * 2 / (cost["latency_ms"]["median"] / 1e3)
    assert cost["utilisation"]["achieved_flops_per_s"] == pytest.approx(achieved)
    assert cost["utilisation"]["mfu"] is None and "CPU" in cost["utilisation"]["peak_note"]


@pytest.mark.parametrize(
    "name,precision,peak",
    [
        ("NVIDIA H100 80GB HBM3", "bf16", 989e12),
        ("NVIDIA H100 PCIe", "bf16", 756e12),
        ("NVIDIA H200", "fp16", 989e12),
        ("NVIDIA H200 NVL", "bf16", 835e12),
        ("NVIDIA A100-SXM4-80GB", "tf32", 156e12),
        ("NVIDIA A100 80GB PCIe", "fp32", 19.5e12),
    ],
)
def test_device_peaks_by_name_and_precision(name: str, precision: str, peak: float) -> None:
    assert device_peak(name, precision)[1] == pytest.approx(peak)


def test_mfu_against_the_peak_and_unknown_devices_say_so(monkeypatch: pytest.MonkeyPatch) -> None:
    use = utilisation(10**12, 4, 8.0, "cuda", "NVIDIA H100 80GB HBM3", "bf16")  # 4 TFLOP in 8 ms: 500 TFLOP/s
    assert use["achieved_flops_per_s"] == pytest.approx(5e14)
    assert use["mfu"] == pytest.approx(5e14 / 989e12) and use["peak_precision"] == "bf16"
    assert "H100 bf16" in use["peak_source"]
    unknown = utilisation(10**12, 1, 1.0, "cuda", "NVIDIA GeForce RTX 4090", "bf16")
    assert unknown["mfu"] is None and "RTX 4090" in unknown["peak_note"]
    # fp32 with TF32 allowed anywhere is held against the TF32 peak (a lower bound on MFU); with none, fp32.
    monkeypatch.setattr(peaks, "tf32_allowed", lambda: True)
    assert utilisation(1, 1, 1.0, "cuda", "NVIDIA A100-SXM4-40GB", "fp32")["peak_precision"] == "tf32"
    monkeypatch.setattr(peaks, "tf32_allowed", lambda: False)
    assert utilisation(1, 1, 1.0, "cuda", "NVIDIA A100-SXM4-40GB", "fp32")["peak_precision"] == "fp32"


def test_cli_sweeps_execution_modes_and_refuses_unknown_ones(tiny_models: None, tmp_path, capsys) -> None:
    code = main([
        "profile", "--models", "test_tiny", "--resolutions", "32", "--mode", "infer", "--exec", "eager,channels_last",
        "--repeats", "1", "--warmup", "0", "--records-dir", str(tmp_path),
    ])
    assert code == 0
    records, _ = read_records(tmp_path, kind="profile")
    assert sorted(r["cost"].get("exec", {}).get("mode", "eager") for r in records) == ["channels_last", "eager"]
    with pytest.raises(SystemExit):
        main(["profile", "--models", "test_tiny", "--resolutions", "32", "--exec", "turbo"])
    assert "execution modes must be among" in capsys.readouterr().err


def test_profile_batch_defaults_to_one_on_the_cpu_and_the_protocol_batch_on_a_gpu() -> None:
    assert profile_commands.default_batch("cpu", "gpu-short") == 1
    assert profile_commands.default_batch("cuda", "gpu-short") == 16
    assert profile_commands.default_batch("cuda:1", "quick") == 8
