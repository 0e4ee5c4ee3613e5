"""Protocols as data: packaged recipes load, hashes cover the full contents, bad files are named."""

from __future__ import annotations

import json

import pytest

from usemabench.runners.protocol import ProtocolError, available_protocols, load_protocol


def test_packaged_protocols_load():
    assert {"quick", "standard", "gpu-short"} <= set(available_protocols())
    standard = load_protocol("standard")
    assert (standard.optimizer.name, standard.optimizer.momentum, standard.optimizer.nesterov) == ("sgd", 0.99, True)
    assert (standard.optimizer.lr, standard.optimizer.weight_decay, standard.schedule.power) == (0.01, 3e-5, 0.9)
    assert load_protocol("gpu-short").resolution == (256, 256)
    assert load_protocol("quick").precision == "fp32"


def test_hash_covers_every_field_and_a_file_equals_its_packaged_copy(tmp_path):
    quick = load_protocol("quick")
    path = tmp_path / "mine.json"
    path.write_text(json.dumps(quick.contents))
    assert load_protocol(path).hash == quick.hash
    changed = dict(quick.contents, description=quick.description + ".")
    path.write_text(json.dumps(changed))
    assert load_protocol(path).hash != quick.hash
    assert quick.record_entry() == {"name": "quick", "hash": quick.hash}


def test_precision_overrides_by_family_or_name_glob():
    from usemabench.runners.protocol import protocol_from_dict

    contents = {**load_protocol("gpu-short").contents, "precision_overrides": {"family:mamba": "fp32", "transunet*": "fp16"}}
    gpu = protocol_from_dict(contents)
    assert gpu.precision_for("umamba_bot", "mamba") == ("fp32", "family:mamba")
    assert gpu.precision_for("transunet_small", "attention-full") == ("fp16", "transunet*")
    assert gpu.precision_for("usema_t", "usema") == ("bf16", None)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"epochs_typo": 3}, "unknown field.*epochs_typo"),
        ({"optimizer": {"name": "sgd", "lr": 0.1, "moment": 0.9}}, "OptimizerConfig: unknown field.*moment"),
        ({"precision": "fp8"}, "precision must be one of"),
        ({"resolution": [64]}, r"resolution must be \[height, width\]"),
    ],
)
def test_bad_protocol_files_are_named(tmp_path, change, message):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({**load_protocol("quick").contents, **change}))
    with pytest.raises(ProtocolError, match=f"bad.json.*{message}"):
        load_protocol(path)


def test_missing_field_and_unknown_name():
    contents = dict(load_protocol("quick").contents)
    del contents["epochs"]
    from usemabench.runners.protocol import protocol_from_dict

    with pytest.raises(ProtocolError, match="missing field.*epochs"):
        protocol_from_dict(contents, "mine")
    with pytest.raises(ProtocolError, match="unknown protocol 'quik'"):
        load_protocol("quik")
