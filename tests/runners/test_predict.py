"""`usemabench predict`: masks for a folder of images from a run folder, a weights folder or a Hub id."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from PIL import Image

import usemabench.hub
import usemabench.runners.predict as predict
from reliability_cases import PREDICT_IMAGES, PREDICT_RERUNS, params
from usemabench.cli import main
from usemabench.core.records import read_records
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


@pytest.mark.parametrize("case", params(PREDICT_RERUNS, only="predict-foreign-files"))
def test_other_files_in_the_way_are_replaced_only_with_force(weights_and_images, tmp_path, capsys, case):
    weights, images = weights_and_images
    output = tmp_path / "masks"
    output.mkdir()
    (output / case.data["file"]).write_bytes(b"mine")
    assert main(predict_argv(weights, images, output)) == 0  # an overlay is not written without --overlay
    capsys.readouterr()
    assert main(predict_argv(weights, images, output, "--overlay")) == 1
    assert re.search(case.message, capsys.readouterr().err)
    assert (output / case.data["file"]).read_bytes() == b"mine" and not (output / "case0_overlay.png").exists()
    assert main(predict_argv(weights, images, output, "--overlay", "--force")) == 0
    assert (output / case.data["file"]).read_bytes() != b"mine"


@pytest.mark.parametrize("case", params(PREDICT_RERUNS, only="predict-resume"))
def test_a_rerun_keeps_the_masks_it_wrote_and_needs_no_force(weights_and_images, tmp_path, monkeypatch, capsys, case):
    weights, images = weights_and_images
    output = tmp_path / "masks"
    segment, calls = predict.segment, []

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) > case.data["interrupt_at"]:
            raise KeyboardInterrupt
        return segment(*args, **kwargs)

    monkeypatch.setattr(predict, "segment", interrupted)
    assert main(predict_argv(weights, images, output, "--overlay")) == 130
    assert capsys.readouterr().err == f"usemabench predict: interrupted after 1 new mask(s) in {output}; the same command resumes, keeping them\n"
    first = output / "case0.png"
    written = (first.stat().st_mtime_ns, first.read_bytes())
    assert not (output / "case1.png").exists()
    monkeypatch.setattr(predict, "segment", segment)
    capsys.readouterr()
    assert main(predict_argv(weights, images, output, "--overlay")) == 0
    assert re.search(case.message, capsys.readouterr().out)
    assert (first.stat().st_mtime_ns, first.read_bytes()) == written  # kept, not redone
    assert (output / "case1.png").is_file() and (output / "case1_overlay.png").is_file()
    Image.fromarray(np.full((20, 18), 200, dtype=np.uint8)).save(images / "case1.png")  # a changed image is redone
    assert main(predict_argv(weights, images, output, "--overlay")) == 0
    assert re.search(case.message, capsys.readouterr().out)
    first.write_bytes(b"edited by the user")  # no longer what predict wrote: in the way again
    assert main(predict_argv(weights, images, output)) == 1
    assert "already holds 1 of the files to write (case0.png)" in capsys.readouterr().err


@pytest.mark.parametrize("case", params(PREDICT_RERUNS, only="predict-other-weights"))
def test_masks_of_other_weights_are_not_taken_for_done(weights_and_images, tmp_path, capsys, case):
    weights, images = weights_and_images
    output = tmp_path / "masks"
    assert main(predict_argv(weights, images, output)) == 0
    torch.manual_seed(1)
    other = usemabench.hub.save_pretrained(create_model("nnunet_small"), tmp_path / "other")
    capsys.readouterr()
    assert main(predict_argv(other, images, output)) == 1
    assert re.search(case.message, capsys.readouterr().err)
    assert main(predict_argv(other, images, output, "--force")) == 0


def write_bad_image(images, kind: str) -> str:
    if kind == "corrupt":
        (images / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
        return "bad.png"
    if kind == "nan":
        values = np.full((20, 18), 0.5, dtype=np.float32)
        values[0, :3] = np.nan
        Image.fromarray(values, mode="F").save(images / "bad.tif")
        return "bad.tif"
    Image.fromarray(np.full((20, 18, 3), 90, dtype=np.uint8)).save(images / "bad.png")
    return "bad.png"


@pytest.mark.parametrize("case", params(PREDICT_IMAGES))
def test_every_good_image_is_predicted_and_every_bad_one_named(weights_and_images, tmp_path, capsys, case):
    weights, images = weights_and_images
    if case.data["kind"] == "nan-weights":
        model = create_model("nnunet_small")
        with torch.no_grad():
            next(model.parameters()).fill_(float("nan"))
        weights, bad = usemabench.hub.save_pretrained(model, tmp_path / "nan-weights"), None
    else:
        bad = write_bad_image(images, case.data["kind"])
    output = tmp_path / "masks"
    assert main(predict_argv(weights, images, output)) == 1
    captured = capsys.readouterr()
    failures = [line for line in captured.err.splitlines() if line.startswith("usemabench predict: ")]
    if bad is None:
        assert len(failures) == 2 and all(re.search(case.message, line) for line in failures)
        assert not list(output.glob("*.png"))
    else:
        assert len(failures) == 1 and re.search(case.message, failures[0]) and str(images / bad) in failures[0]
        assert sorted(path.name for path in output.glob("*.png")) == ["case0.png", "case1.png"]
        assert "wrote 2 masks" in captured.out and "1 image(s) failed" in captured.out
    assert "Traceback" not in captured.err


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
