"""Pretrained weights as timm users expect them: `arch.tag` names from a manifest, `list_pretrained`,
`create_model(..., pretrained=True)` offline from packaged files, hashes checked, channels and classes taken
from the weights, `usemabench weights add` / `weights` / `models`, and `publish` against the local fake Hub."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import usemabench
from usemabench import pretrained_export
from usemabench import create_model, list_pretrained
from usemabench.cli import main
from usemabench.core.io import file_sha256
from usemabench.hub import PretrainedError, save_pretrained
from usemabench.runners.weights import load_weights
from usemabench.zoo import list_models
from usemabench.zoo.pretrained import ManifestError, get_pretrained_cfg, load_manifest
from usemabench.zoo.registry import create_model as build_untrained

from test_hub import hub  # noqa: F401  (the fake-Hub fixture)

X = torch.randn(1, 1, 32, 32, generator=torch.Generator().manual_seed(0))


def outputs(model: torch.nn.Module, x: torch.Tensor = X) -> torch.Tensor:
    with torch.no_grad():
        return model.eval()(x)


def add(run_dir: Path, records: Path, manifest: Path, *options: str) -> int:
    return main(["weights", "add", str(run_dir), "--records-dir", str(records), "--manifest", str(manifest), *options])


def test_public_imports_keep_working_and_the_zoo_builds_untrained_models() -> None:
    assert usemabench.create_model is create_model and callable(usemabench.from_pretrained)
    with pytest.raises(TypeError, match=r"usemabench.create_model\(name, pretrained=...\)"):
        build_untrained("usema_tiny", pretrained=True)
    assert build_untrained("usema_tiny.any_tag").usemabench_spec["name"] == "usema_tiny"


def test_loading_weights_imports_neither_datasets_nor_scipy() -> None:
    code = ("import sys, usemabench.hub, usemabench.runners.weights; "
            "print(sorted(m for m in sys.modules if m.startswith(('usemabench.datasets', 'usemabench.leaderboard', 'scipy'))))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


@pytest.mark.slow
def test_added_run_loads_offline_with_its_cfg_and_records(tiny_run, manifest: Path, capsys) -> None:
    run_dir, records = tiny_run
    assert add(run_dir, records, manifest, "--tag", "synthetic_tiny", "--default") == 0
    assert "added usema_tiny.synthetic_tiny" in capsys.readouterr().out
    trained = load_weights(str(run_dir)).model

    assert list_pretrained() == ["usema_tiny.synthetic_tiny"] == list_pretrained("usema_*")
    assert list_pretrained("unet*") == [] and list_models(pretrained=True) == ["usema_tiny.synthetic_tiny"]
    for name in ("usema_tiny.synthetic_tiny", "usema_tiny"):  # the tag, and the default tag
        model = create_model(name, pretrained=True)
        torch.testing.assert_close(outputs(model), outputs(trained), rtol=0, atol=0)

    cfg = model.pretrained_cfg
    (train_record,) = records.rglob(cfg["train_record"])
    (eval_path,) = [path for path in records.rglob("eval_*.json")]
    assert cfg["train_record_sha256"] == file_sha256(train_record)
    assert cfg["test_dice"] == json.loads(eval_path.read_text())["metrics"]["dice"]["mean"]
    assert (cfg["in_channels"], cfg["num_classes"], cfg["dataset"], cfg["protocol"]) == (1, 3, "synthetic", "tiny-publish")
    assert model.usemabench_spec["num_classes"] == 3, "classes left out come from the weights"
    assert cfg["preprocessing"]["resolution"] == [32, 32] and cfg["class_names"] and cfg["license"] != ""
    assert model.usemabench_preprocessing == cfg["preprocessing"], "predict prepares images as training did"
    assert load_weights("usema_tiny.synthetic_tiny").source == "usema_tiny.synthetic_tiny"

    assert main(["weights", "list", "--manifest", str(manifest)]) == 0
    listing = capsys.readouterr().out
    assert "usema_tiny.synthetic_tiny" in listing and "packaged" in listing and f"{cfg['test_dice']:.4f}" in listing
    assert main(["models", "usema_tiny*"]) == 0
    rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()[2:]}
    assert ".synthetic_tiny" in rows["usema_tiny"] and ".synthetic_tiny" not in rows["usema_tiny_none"]


@pytest.mark.slow
def test_fp16_weights_are_half_the_size_and_load_into_fp32(tiny_run, manifest: Path) -> None:
    run_dir, records = tiny_run
    assert add(run_dir, records, manifest, "--tag", "full") == 0
    assert add(run_dir, records, manifest, "--tag", "half", "--fp16") == 0
    full, half = (manifest.parent / f"usema_tiny.{tag}.safetensors" for tag in ("full", "half"))
    assert half.stat().st_size < 0.6 * full.stat().st_size
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(full.stat().st_mode) == 0o666 & ~umask, "written atomically with the usual permissions"
    model = create_model("usema_tiny.half", pretrained=True)
    assert model.pretrained_cfg["dtype"] == "float16"
    assert all(parameter.dtype == torch.float32 for parameter in model.parameters())
    half_logits, full_logits = outputs(model), outputs(create_model("usema_tiny.full", pretrained=True))
    torch.testing.assert_close(half_logits, full_logits, rtol=0, atol=0.1)  # fp16 rounding of the weights
    assert (half_logits.argmax(1) == full_logits.argmax(1)).float().mean() > 0.99
    with pytest.raises(ManifestError, match="has no default pretrained weights; choose one of usema_tiny.full, usema_tiny.half"):
        create_model("usema_tiny", pretrained=True)


@pytest.mark.slow
def test_fp16_is_refused_when_it_moves_the_test_dice(tiny_run, manifest: Path, monkeypatch, capsys) -> None:
    run_dir, records = tiny_run
    monkeypatch.setattr(pretrained_export, "FP16_DICE_TOLERANCE", -1.0)  # any change, even none, is too much
    assert add(run_dir, records, manifest, "--tag", "half", "--fp16") == 1
    assert "usema_tiny.half: fp16 weights change the test Dice from" in capsys.readouterr().err
    assert list_pretrained() == [] and not (manifest.parent / "usema_tiny.half.safetensors").exists()


@pytest.mark.slow
def test_a_corrupted_packaged_file_is_refused_by_its_hash(tiny_run, manifest: Path) -> None:
    run_dir, records = tiny_run
    assert add(run_dir, records, manifest, "--tag", "t") == 0
    weights = manifest.parent / "usema_tiny.t.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(PretrainedError, match=r"usema_tiny\.t\.safetensors: sha256 \w+, but the pretrained manifest records"):
        create_model("usema_tiny.t", pretrained=True)


@pytest.mark.slow
def test_add_refuses_a_run_without_records_and_a_second_entry_of_the_name(tiny_run, manifest: Path, tmp_path, capsys) -> None:
    run_dir, records = tiny_run
    assert add(run_dir, tmp_path / "no-records", manifest, "--tag", "t") == 1
    assert "no train record of" in capsys.readouterr().err
    assert add(run_dir, records, manifest, "--tag", "t") == 0
    assert add(run_dir, records, manifest, "--tag", "t") == 1
    assert "already lists usema_tiny.t; pass --force" in capsys.readouterr().err
    assert add(run_dir, records, manifest, "--tag", "t.x") == 1
    assert "cannot contain '.'" in capsys.readouterr().err


def test_classes_and_channels_left_out_come_from_the_weights(tmp_path: Path) -> None:
    folder = save_pretrained(build_untrained("usema_tiny", in_channels=3, num_classes=3), tmp_path / "w")
    model = create_model("usema_tiny", pretrained=folder)
    assert (model.usemabench_spec["in_channels"], model.usemabench_spec["num_classes"]) == (3, 3)
    assert outputs(model, torch.randn(1, 3, 32, 32)).shape == (1, 3, 32, 32)
    with pytest.raises(PretrainedError, match="num_classes: weights have 3, you asked for 2"):
        create_model("usema_tiny", num_classes=2, pretrained=folder)


def test_every_model_writes_and_reads_the_same_folder_through_its_hub_methods(tmp_path: Path) -> None:
    for name in ("usema_tiny", "smp_unet_small"):  # ours, and one that smp builds (smp has hub methods of its own)
        model = create_model(name, in_channels=1, num_classes=2)
        model.save_pretrained(tmp_path / name)
        config = json.loads((tmp_path / name / "config.json").read_text())
        assert config["usemabench_name"] == name, "smp-built models write usemabench's format, not smp's"
        assert sorted(path.name for path in (tmp_path / name).iterdir()) == ["README.md", "config.json", "model.safetensors"]
        loaded = type(model).from_pretrained(tmp_path / name)
        assert type(loaded).__name__ == type(model).__name__
        x = torch.randn(1, 1, 64, 64)
        torch.testing.assert_close(outputs(loaded, x), outputs(model, x), rtol=0, atol=0)


def test_push_to_hub_from_a_model(hub, tmp_path: Path) -> None:  # noqa: F811
    model = create_model("nnunet_small")
    model.push_to_hub("lab/nnunet-small")
    loaded = create_model("nnunet_small", pretrained="lab/nnunet-small")
    x = torch.randn(1, 1, 32, 32)
    torch.testing.assert_close(outputs(loaded, x), outputs(model, x), rtol=0, atol=0)


@pytest.mark.slow
def test_publish_pushes_unpublished_hub_entries_and_pins_their_revision(tiny_run, manifest, hub, tmp_path, capsys) -> None:  # noqa: F811
    run_dir, records = tiny_run
    staging = tmp_path / "staging"
    assert add(run_dir, records, manifest, "--tag", "gpu", "--hub-id", "lab/usema-tiny-gpu", "--staging-dir", str(staging)) == 0
    assert load_manifest(manifest)["usema_tiny.gpu"].revision is None
    assert not (manifest.parent / "usema_tiny.gpu.safetensors").exists(), "Hub weights stay out of the package"
    with pytest.raises(PretrainedError, match="not yet published to lab/usema-tiny-gpu"):
        create_model("usema_tiny.gpu", pretrained=True)
    main(["weights", "list", "--manifest", str(manifest)])
    assert "lab/usema-tiny-gpu (not published)" in capsys.readouterr().out

    assert main(["publish", "--manifest", str(manifest), "--staging-dir", str(staging)]) == 0
    revision = load_manifest(manifest)["usema_tiny.gpu"].revision
    assert revision == hub.branches["lab/usema-tiny-gpu"]["main"]
    assert f"published usema_tiny.gpu to lab/usema-tiny-gpu@{revision}" in capsys.readouterr().out
    model = create_model("usema_tiny.gpu", pretrained=True)
    torch.testing.assert_close(outputs(model), outputs(load_weights(str(run_dir)).model), rtol=0, atol=0)
    assert model.usemabench_weights["revision"] == revision

    assert main(["publish", "--manifest", str(manifest), "--staging-dir", str(staging)]) == 0
    assert "every Hub entry is already published" in capsys.readouterr().out


@pytest.mark.slow
def test_publish_refuses_a_staged_file_that_differs_from_the_manifest(tiny_run, manifest, hub, tmp_path, capsys) -> None:  # noqa: F811
    run_dir, records = tiny_run
    staging = tmp_path / "staging"
    assert add(run_dir, records, manifest, "--tag", "gpu", "--hub-id", "lab/x", "--staging-dir", str(staging)) == 0
    weights = staging / "usema_tiny.gpu" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-1] + b"\0")
    assert main(["publish", "--manifest", str(manifest), "--staging-dir", str(staging)]) == 1
    assert "but" in capsys.readouterr().err and "lab/x" not in hub.branches


BASE_ENTRY = {
    "architecture": "usema_tiny", "tag": "t", "sha256": "0" * 64, "in_channels": 1, "num_classes": 2,
    "class_names": ["background", "fg"], "preprocessing": {"resolution": [32, 32]}, "file": "usema_tiny.t.safetensors",
}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"in_channels": "1"}, "in_channels must be int"),
        ({"default": 1}, "default must be bool"),
        ({"hub_id": "org/x"}, "exactly one of file"),
        ({"file": "../x.safetensors"}, "must be a .safetensors file name beside the manifest"),
        ({"sha256": "abc"}, "not a 64-character hex digest"),
        ({"test_dice": 1.5}, r"test_dice 1.5 is not in \[0, 1\]"),
        ({"score": 1}, r"unknown field\(s\) score"),
        ({"tag": "other"}, "describes 'usema_tiny.other'"),
    ],
)
def test_a_bad_manifest_entry_is_named(change: dict, message: str, manifest: Path) -> None:
    manifest.write_text(json.dumps({"schema_version": 1, "weights": {"usema_tiny.t": {**BASE_ENTRY, **change}}}))
    with pytest.raises(ManifestError, match=rf"manifest.json: entry 'usema_tiny.t'.*{message}"):
        list_pretrained()


def test_unknown_names_list_what_exists(manifest: Path) -> None:
    manifest.write_text(json.dumps({"schema_version": 1, "weights": {"usema_tiny.t": BASE_ENTRY}}))
    with pytest.raises(ManifestError, match=r"no pretrained weights named 'usema_tiny.x' \(known: usema_tiny.t\)"):
        get_pretrained_cfg("usema_tiny.x")
    assert get_pretrained_cfg("usema_tiny").tag == "t", "the only tag of a model is its default"
    with pytest.raises(ManifestError, match="has no default pretrained weights"):
        create_model("nnunet_small", pretrained=True)


def test_the_shipped_manifest_is_valid() -> None:
    for name, cfg in load_manifest().items():
        assert cfg.file is None or (Path(usemabench.__file__).parent / "zoo" / "pretrained" / cfg.file).is_file(), name
