"""Weights that do not fit are one message naming the file and what differs (issue 18.4), never a traceback:
broken configs and cards in a weights folder, checkpoints whose spec and tensors disagree, unbounded resolutions."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from reliability_cases import SPEC, WEIGHTS_CHECKPOINTS, WEIGHTS_FOLDERS, BadInput, params
from usemabench.cli import main
from usemabench.core.io import file_sha256
from usemabench.hub import CARD_NAME, CONFIG_NAME, WEIGHTS_NAME, save_pretrained
from usemabench.runners.checkpoint import BEST, save_checkpoint
from usemabench.runners.weights import load_weights
from usemabench.zoo.loading import WeightsError
from usemabench.zoo.registry import create_model


def edit_config(folder: Path, **changes) -> None:
    config = json.loads((folder / CONFIG_NAME).read_text())
    config.update(changes)
    (folder / CONFIG_NAME).write_text(json.dumps(config))


def resign(folder: Path) -> None:
    """Record the current weights' hash in the card, so that the check under test is the one that must refuse."""
    card = (folder / CARD_NAME).read_text()
    (folder / CARD_NAME).write_text(re.sub(r"weights_sha256: \w+", f"weights_sha256: {file_sha256(folder / WEIGHTS_NAME)}", card))


def break_card(folder: Path) -> None:
    (folder / CARD_NAME).write_text("---\nusemabench: [unclosed\n---\n# card\n")


def three_class_weights(folder: Path) -> None:
    """Weights of a 3-class usema_tiny behind a config that says 2 classes."""
    other = save_pretrained(create_model("usema_tiny", num_classes=3), folder.parent / "three")
    (folder / WEIGHTS_NAME).write_bytes((other / WEIGHTS_NAME).read_bytes())
    resign(folder)


# How each folder case damages a fresh weights folder; the config edits come from the case's data.
DAMAGE = {
    "weights-config-not-utf8": lambda folder, case: (folder / CONFIG_NAME).write_bytes(b'{"usemabench_name": "\xff"}'),
    "weights-config-list": lambda folder, case: (folder / CONFIG_NAME).write_text("[1, 2]"),
    "weights-card-broken-yaml": lambda folder, case: break_card(folder),
    "weights-card-not-utf8": lambda folder, case: (folder / CARD_NAME).write_bytes(b"---\nx: \xff\n---\n"),
    "weights-other-class-count": lambda folder, case: three_class_weights(folder),
}


@pytest.mark.parametrize("case", params(WEIGHTS_FOLDERS))
def test_a_bad_weights_folder_is_one_message_naming_the_file(case: BadInput, tmp_path: Path) -> None:
    folder = save_pretrained(create_model("usema_tiny"), tmp_path / "weights")
    DAMAGE.get(case.id, lambda folder, case: edit_config(folder, **case.data))(folder, case)
    with pytest.raises(WeightsError, match=case.message):
        load_weights(str(folder))


def checkpoint(tmp_path: Path, spec: dict | None = None, state: object = None, preprocessing: dict | None = None) -> Path:
    model = create_model("usema_tiny")
    if state == "stray":
        state = {"stray": torch.zeros(1)}
    payload = {"model_spec": spec or model.usemabench_spec, "model": model.state_dict() if state is None else state}
    if preprocessing is not None:
        payload["preprocessing"] = preprocessing
    return save_checkpoint(tmp_path / "run" / BEST, payload)


@pytest.mark.parametrize("case", params(WEIGHTS_CHECKPOINTS))
def test_a_bad_checkpoint_is_one_message_naming_the_file(case: BadInput, tmp_path: Path) -> None:
    path = checkpoint(tmp_path, **case.data)
    with pytest.raises(ValueError, match=case.message):
        load_weights(str(path))


def test_predict_without_model_on_mismatching_weights_is_one_line(tmp_path: Path, capsys) -> None:
    path = checkpoint(tmp_path, spec={**SPEC, "num_classes": 3})  # SPEC: reliability_cases' usema_tiny spec
    images = tmp_path / "images"
    images.mkdir()
    Image.fromarray(np.zeros((16, 16), dtype=np.uint8)).save(images / "a.png")
    code = main(["predict", "--weights", str(path), str(images), str(tmp_path / "out"), "--resolution", "32",
                 "--device", "cpu", "--no-progress"])
    error = capsys.readouterr().err
    assert code == 1 and error.count("\n") == 1
    assert f"{path}: weights do not fit usema_tiny (in_channels=1, num_classes=3)" in error
