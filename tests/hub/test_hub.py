"""Weights: save/load round trips per family, offline cache, a real huggingface_hub round trip against a
local fake Hub, and clear failures for bad downloads."""

from __future__ import annotations

import json
from pathlib import Path

import huggingface_hub.constants as constants
import pytest
import torch

from usemabench.hub import (
    CONFIG_NAME,
    WEIGHTS_NAME,
    PretrainedError,
    load_pretrained,
    pull,
    push_folder,
    save_pretrained,
)
from usemabench import create_model
from usemabench.zoo import FAMILIES, get_model_info, list_models

from fake_hub import FakeHub


def one_small_model_per_family() -> list[str]:
    chosen: dict[str, str] = {}
    for name in list_models():
        info = get_model_info(name)
        target = info.test_variant or name
        if get_model_info(target).available:
            chosen.setdefault(info.family, target)
    return [chosen[family] for family in FAMILIES if family in chosen]


def outputs(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model.eval()(x)


@pytest.mark.parametrize("name", one_small_model_per_family())
def test_save_load_round_trip_gives_identical_outputs(name: str, tmp_path: Path) -> None:
    model = create_model(name, in_channels=1, num_classes=2)
    x = torch.randn(1, 1, 64, 64)
    save_pretrained(model, tmp_path)
    loaded = load_pretrained(tmp_path, name=name)
    torch.testing.assert_close(outputs(loaded, x), outputs(model, x), rtol=0, atol=0)


def point_client_at(monkeypatch: pytest.MonkeyPatch, endpoint: str) -> None:
    """huggingface_hub reads HF_ENDPOINT once at import; point the already-imported client at `endpoint`."""
    monkeypatch.setattr(constants, "ENDPOINT", endpoint)
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", endpoint + "/{repo_id}/resolve/{revision}/{filename}")


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    server = FakeHub().start()
    monkeypatch.setenv("HF_ENDPOINT", server.endpoint)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setenv("HF_TOKEN", "hf_fake_token_for_tests")
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    point_client_at(monkeypatch, server.endpoint)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    yield server
    server.stop()


@pytest.fixture
def published(hub: FakeHub, tmp_path: Path) -> tuple[torch.nn.Module, str]:
    model = create_model("usema_tiny", in_channels=1, num_classes=2)
    folder = save_pretrained(model, tmp_path / "weights")
    push_folder(folder, "usemabench/usema-tiny-test")
    return model, "usemabench/usema-tiny-test"


def test_round_trip_through_the_real_client(published, tmp_path: Path) -> None:
    model, repo_id = published
    x = torch.randn(1, 1, 48, 48)
    loaded = create_model("usema_tiny", in_channels=1, num_classes=2, pretrained=repo_id)
    torch.testing.assert_close(outputs(loaded, x), outputs(model, x), rtol=0, atol=0)
    folder = pull(repo_id)
    assert (folder / WEIGHTS_NAME).is_file()


def test_revision_is_pinned(hub: FakeHub, tmp_path: Path) -> None:
    first = create_model("usema_tiny", in_channels=1, num_classes=2)
    push_folder(save_pretrained(first, tmp_path / "a"), "org/pinned")
    pinned = hub.branches["org/pinned"]["main"]
    second = create_model("usema_tiny", in_channels=1, num_classes=2)
    push_folder(save_pretrained(second, tmp_path / "b"), "org/pinned")
    x = torch.randn(1, 1, 32, 32)
    old = load_pretrained(f"org/pinned@{pinned}")
    new = load_pretrained("org/pinned")
    torch.testing.assert_close(outputs(old, x), outputs(first, x), rtol=0, atol=0)
    torch.testing.assert_close(outputs(new, x), outputs(second, x), rtol=0, atol=0)
    assert old.usemabench_weights["revision"] == pinned, "the revision parsed from org/repo@rev is recorded"
    assert new.usemabench_weights["revision"] is None
    assert load_pretrained("org/pinned", revision=pinned).usemabench_weights["revision"] == pinned


def test_offline_load_from_the_cache(published, monkeypatch: pytest.MonkeyPatch) -> None:
    model, repo_id = published
    pull(repo_id)  # fills the cache
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    point_client_at(monkeypatch, "http://127.0.0.1:9")  # nothing listens there: any request would fail
    loaded = load_pretrained(repo_id)
    x = torch.randn(1, 1, 32, 32)
    torch.testing.assert_close(outputs(loaded, x), outputs(model, x), rtol=0, atol=0)


def test_wrong_config_for_the_name_is_refused(published) -> None:
    _, repo_id = published
    with pytest.raises(PretrainedError, match="usemabench_name: weights have 'usema_tiny', you asked for 'usema_t'"):
        load_pretrained(repo_id, name="usema_t")
    with pytest.raises(PretrainedError, match="num_classes"):
        load_pretrained(repo_id, num_classes=5)


def test_missing_file_is_named(tmp_path: Path) -> None:
    folder = save_pretrained(create_model("usema_tiny"), tmp_path / "w")
    (folder / CONFIG_NAME).unlink()
    with pytest.raises(PretrainedError, match="missing config.json"):
        load_pretrained(folder)


def test_hash_mismatch_is_refused(tmp_path: Path) -> None:
    folder = save_pretrained(create_model("usema_tiny"), tmp_path / "w")
    other = save_pretrained(create_model("usema_tiny"), tmp_path / "other")
    (folder / WEIGHTS_NAME).write_bytes((other / WEIGHTS_NAME).read_bytes())
    with pytest.raises(PretrainedError, match="sha256"):
        load_pretrained(folder)


def test_truncated_safetensors_is_refused(tmp_path: Path) -> None:
    folder = save_pretrained(create_model("usema_tiny"), tmp_path / "w")
    weights = folder / WEIGHTS_NAME
    weights.write_bytes(weights.read_bytes()[:1000])
    card = (folder / "README.md").read_text()
    from usemabench.core.io import file_sha256

    # Re-sign the card so that the hash check passes and the safetensors reader is what must refuse it.
    import re

    (folder / "README.md").write_text(re.sub(r"weights_sha256: \w+", f"weights_sha256: {file_sha256(weights)}", card))
    with pytest.raises(PretrainedError, match="not a readable safetensors file"):
        load_pretrained(folder)


def test_config_is_plain_json_with_constructor_arguments(tmp_path: Path) -> None:
    folder = save_pretrained(create_model("usema_tiny", in_channels=3, num_classes=4), tmp_path / "w")
    config = json.loads((folder / CONFIG_NAME).read_text())
    assert config["usemabench_name"] == "usema_tiny"
    assert (config["in_channels"], config["num_classes"]) == (3, 4)


def test_unknown_repo_is_a_clear_error(hub: FakeHub) -> None:
    with pytest.raises(PretrainedError, match="nobody/nothing@main: weights could not be fetched"):
        load_pretrained("nobody/nothing")
