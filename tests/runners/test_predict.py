"""`usemabench predict`: masks for a folder of images from a run folder, a weights folder or a Hub id."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import usemabench.hub
from usemabench.cli import main
from usemabench.leaderboard.records import read_records
from usemabench.runners.experiment import ExperimentRequest, run_experiment
from usemabench.runners.weights import load_weights
from usemabench.zoo import create_model


@pytest.fixture
def trained(blob_folder, tiny_protocol_file, tmp_path):
    request = ExperimentRequest(model="nnunet_small", dataset=f"folder:{blob_folder}", protocol=str(tiny_protocol_file),
                                runs_dir=tmp_path / "runs", records_dir=tmp_path / "records", device="cpu", progress=False)
    outcome = run_experiment(request)
    assert outcome.status == "ok"
    return next((tmp_path / "runs").glob("nnunet_small/*/*/seed0"))


def test_masks_match_what_evaluation_predicted(trained, blob_folder, tmp_path, capsys):
    output = tmp_path / "masks"
    argv = ["predict", "--model", "nnunet_small", "--weights", str(trained), str(blob_folder / "images"), str(output),
            "--overlay", "--device", "cpu", "--no-progress"]
    assert main(argv) == 0
    assert "wrote 12 masks" in capsys.readouterr().out
    (evaluation,), _ = read_records(tmp_path / "records", kind="eval")
    saved = sorted((tmp_path / "records" / evaluation["files"]["predictions"]).glob("*.png"))
    assert saved
    for path in saved:
        assert np.array_equal(np.asarray(Image.open(output / path.name)), np.asarray(Image.open(path)))
    mask = np.asarray(Image.open(output / "case00.png"))
    assert mask.shape == (40, 36) and set(np.unique(mask)) <= {0, 1}
    assert np.asarray(Image.open(output / "case00_overlay.png")).shape == (40, 36, 3)


def test_weights_folder_of_the_hub_layout_needs_the_resolution(trained, blob_folder, tmp_path, capsys):
    model = load_weights(str(trained)).model
    folder = usemabench.hub.save_pretrained(model, tmp_path / "weights")
    images = str(blob_folder / "images")
    assert main(["predict", "--weights", str(folder), images, str(tmp_path / "a"), "--device", "cpu", "--no-progress"]) == 1
    assert "pass --resolution" in capsys.readouterr().err
    for weights in (folder, folder / "model.safetensors"):
        output = tmp_path / weights.name
        argv = ["predict", "--weights", str(weights), images, str(output), "--resolution", "32", "--device", "cpu", "--no-progress"]
        assert main(argv) == 0
        assert len(list(output.glob("*.png"))) == 12


def test_hub_ids_go_to_the_hub_and_bad_references_are_named(trained, monkeypatch, tmp_path):
    calls = []
    hub_model = torch.nn.Identity()
    hub_model.usemabench_preprocessing = {"resolution": [64, 64]}
    monkeypatch.setattr(usemabench.hub, "load_pretrained", lambda reference, name=None: calls.append((reference, name)) or hub_model)
    loaded = load_weights("someone/usema-tiny@v1", "usema_tiny")
    assert loaded.model is hub_model and loaded.preprocessing == {"resolution": [64, 64]}
    assert calls == [("someone/usema-tiny@v1", "usema_tiny")]
    with pytest.raises(ValueError, match="holds weights of model 'nnunet_small', not 'usema_tiny'"):
        load_weights(str(trained), "usema_tiny")
    with pytest.raises(FileNotFoundError, match="no such file or folder"):
        load_weights(str(tmp_path / "missing.pt"))


@pytest.fixture
def weights_and_images(tmp_path):
    """An untrained nnunet_small weights folder (Hub layout) and a folder of two 20x18 images."""
    folder = usemabench.hub.save_pretrained(create_model("nnunet_small"), tmp_path / "weights")
    images = tmp_path / "images"
    images.mkdir()
    for index in range(2):
        Image.fromarray(np.full((20, 18), 40 * index, dtype=np.uint8)).save(images / f"case{index}.png")
    return folder, images


def predict_argv(weights, images, output, *options: str) -> list[str]:
    return ["predict", "--weights", str(weights), str(images), str(output), "--resolution", "16", "--device", "cpu",
            "--no-progress", *options]


def test_the_input_folder_is_never_the_output_folder(weights_and_images, capsys):
    weights, images = weights_and_images
    before = {path.name: path.read_bytes() for path in images.iterdir()}
    for options in ((), ("--force",)):
        assert main(predict_argv(weights, images, images / ".." / images.name, *options)) == 1
        assert "is the input folder" in capsys.readouterr().err
    assert {path.name: path.read_bytes() for path in images.iterdir()} == before


def test_existing_masks_are_replaced_only_with_force(weights_and_images, tmp_path, capsys):
    weights, images = weights_and_images
    output = tmp_path / "masks"
    output.mkdir()
    (output / "case1_overlay.png").write_bytes(b"mine")
    assert main(predict_argv(weights, images, output)) == 0  # an overlay is not written without --overlay
    assert main(predict_argv(weights, images, output, "--overlay")) == 1
    assert "masks already holds 3 of the files to write (case0.png, case1.png, case1_overlay.png); pass --force" in capsys.readouterr().err
    assert (output / "case1_overlay.png").read_bytes() == b"mine" and not (output / "case0_overlay.png").exists()
    assert main(predict_argv(weights, images, output, "--overlay", "--force")) == 0
    assert (output / "case1_overlay.png").read_bytes() != b"mine"


@pytest.mark.parametrize("side", ["0", "-5", "x"])
def test_resolution_must_be_a_positive_integer(weights_and_images, tmp_path, side, capsys):
    weights, images = weights_and_images
    with pytest.raises(SystemExit):
        main(["predict", "--weights", str(weights), str(images), str(tmp_path / "masks"), f"--resolution={side}"])
    assert f"argument --resolution: must be a positive integer (pixels per side), got '{side}'" in capsys.readouterr().err


def test_a_resolution_the_model_cannot_take_is_named_before_writing(weights_and_images, tmp_path, capsys):
    weights, images = weights_and_images
    argv = predict_argv(weights, images, tmp_path / "masks")
    argv[argv.index("16")] = "7"
    assert main(argv) == 1
    error = capsys.readouterr().err
    assert "--resolution 7: model 'nnunet_small' cannot take a 7x7 input" in error and "so try more than 8" in error
    assert not (tmp_path / "masks").exists()
