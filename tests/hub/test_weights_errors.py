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

from usemabench.cli import main
from usemabench.core.io import file_sha256
from usemabench.hub import CARD_NAME, CONFIG_NAME, WEIGHTS_NAME, save_pretrained
from usemabench.runners.checkpoint import BEST, save_checkpoint
from usemabench.runners.weights import load_weights
from usemabench.zoo.loading import MAX_RESOLUTION, WeightsError
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


FOLDER_CASES = {
    "config-not-utf8": (lambda f: (f / CONFIG_NAME).write_bytes(b'{"usemabench_name": "\xff"}'), r"config\.json: not UTF-8 text"),
    "config-not-object": (lambda f: (f / CONFIG_NAME).write_text("[1, 2]"), r"config\.json: must hold a JSON object, got list"),
    "channels-string": (lambda f: edit_config(f, in_channels="three"), r"config\.json: in_channels must be an integer .* got 'three'"),
    "classes-zero": (lambda f: edit_config(f, num_classes=0), r"config\.json: num_classes must be an integer"),
    "classes-unbounded": (lambda f: edit_config(f, num_classes=10**6), r"config\.json: num_classes must be an integer in \[1, 4096\]"),
    "name-missing": (lambda f: edit_config(f, usemabench_name=None), r"config\.json: the model name must be a non-empty string"),
    "unknown-model": (lambda f: edit_config(f, usemabench_name="usema_nope"), r"config\.json: unknown model 'usema_nope'"),
    "unknown-option": (lambda f: edit_config(f, overrides={"no_such_option": 1}),
                       r"config\.json: model 'usema_tiny' cannot be built with \{'no_such_option': 1\}"),
    "overrides-list": (lambda f: edit_config(f, overrides=[1]), r"config\.json: overrides must be an object"),
    "resolution-unbounded": (lambda f: edit_config(f, preprocessing={"resolution": [10**6, 10**6]}),
                             rf"config\.json: resolution must be \[height, width\], each an integer in \[1, {MAX_RESOLUTION}\]"),
    "card-broken-yaml": (break_card, r"README\.md: its YAML metadata cannot be parsed"),
    "card-not-utf8": (lambda f: (f / CARD_NAME).write_bytes(b"---\nx: \xff\n---\n"), r"README\.md: not UTF-8 text"),
    "other-class-count": (three_class_weights,
                          r"model\.safetensors: weights do not fit usema_tiny \(in_channels=1, num_classes=2\): \d+ tensor\(s\) of "
                          r"another shape \(heads\.0\.weight: weights \(3, 64, 1, 1\), model \(2, 64, 1, 1\)"),
}


@pytest.mark.parametrize("case", FOLDER_CASES, ids=list(FOLDER_CASES))
def test_a_bad_weights_folder_is_one_message_naming_the_file(case: str, tmp_path: Path) -> None:
    folder = save_pretrained(create_model("usema_tiny"), tmp_path / "weights")
    damage, message = FOLDER_CASES[case]
    damage(folder)
    with pytest.raises(WeightsError, match=message):
        load_weights(str(folder))


def checkpoint(tmp_path: Path, spec: dict | None = None, state: object = None, preprocessing: dict | None = None) -> Path:
    model = create_model("usema_tiny")
    payload = {"model_spec": spec or model.usemabench_spec, "model": model.state_dict() if state is None else state}
    if preprocessing is not None:
        payload["preprocessing"] = preprocessing
    return save_checkpoint(tmp_path / "run" / BEST, payload)


SPEC = {"name": "usema_tiny", "in_channels": 1, "num_classes": 2, "overrides": {}}
CHECKPOINT_CASES = {
    "spec-other-classes": (dict(spec={**SPEC, "num_classes": 4}), r"best\.pt: weights do not fit usema_tiny \(in_channels=1, num_classes=4\)"),
    "spec-other-channels": (dict(spec={**SPEC, "in_channels": 3}), r"best\.pt: weights do not fit .*tensor\(s\) of another shape"),
    "spec-no-name": (dict(spec={"in_channels": 1, "num_classes": 2}), r"best\.pt: the model name must be a non-empty string, got None"),
    "spec-bad-option": (dict(spec={**SPEC, "overrides": {"widths": "wide"}}), r"best\.pt: model 'usema_tiny' cannot be built with"),
    "state-not-dict": (dict(state=[1, 2]), r"best\.pt: its model state is a list, not a dict of tensors"),
    "state-missing-keys": (dict(state={"stray": torch.zeros(1)}), r"best\.pt: weights do not fit .* missing .* 1 unexpected \(e\.g\. stray\)"),
    "resolution-unbounded": (dict(preprocessing={"resolution": [64, MAX_RESOLUTION + 1]}), r"best\.pt: resolution must be"),
}


@pytest.mark.parametrize("case", CHECKPOINT_CASES, ids=list(CHECKPOINT_CASES))
def test_a_bad_checkpoint_is_one_message_naming_the_file(case: str, tmp_path: Path) -> None:
    options, message = CHECKPOINT_CASES[case]
    path = checkpoint(tmp_path, **options)
    with pytest.raises(ValueError, match=message):
        load_weights(str(path))


def test_predict_without_model_on_mismatching_weights_is_one_line(tmp_path: Path, capsys) -> None:
    path = checkpoint(tmp_path, spec={**SPEC, "num_classes": 3})
    images = tmp_path / "images"
    images.mkdir()
    Image.fromarray(np.zeros((16, 16), dtype=np.uint8)).save(images / "a.png")
    code = main(["predict", "--weights", str(path), str(images), str(tmp_path / "out"), "--resolution", "32",
                 "--device", "cpu", "--no-progress"])
    error = capsys.readouterr().err
    assert code == 1 and error.count("\n") == 1
    assert f"{path}: weights do not fit usema_tiny (in_channels=1, num_classes=3)" in error
