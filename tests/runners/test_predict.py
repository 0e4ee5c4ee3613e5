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
        argv = ["predict", "--weights", str(weights), images, str(tmp_path / "b"), "--resolution", "32", "--device", "cpu", "--no-progress"]
        assert main(argv) == 0
    assert len(list((tmp_path / "b").glob("*.png"))) == 12


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
