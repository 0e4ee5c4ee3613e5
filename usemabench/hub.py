"""Pretrained weights on the Hugging Face Hub: save, load, push and pull, in the Hub's usual layout.

A weights folder (local or a Hub repo) holds:
    config.json        {"usemabench_name", "in_channels", "num_classes", "overrides", "usemabench_version",
                        "preprocessing" (optional: what `predict` must do to an image first)}
    model.safetensors  the state dict (safetensors only: a downloaded file is never unpickled)
    README.md          the model card; its metadata carries `usemabench.weights_sha256`, checked on load

`create_model(name, pretrained="org/repo@rev")` and `usemabench predict --weights org/repo` go through
`load_pretrained`. Offline use follows huggingface_hub (`HF_HUB_OFFLINE=1` reads its cache).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from huggingface_hub import HfApi, ModelCard, hf_hub_download, snapshot_download
from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError, LocalEntryNotFoundError
from safetensors import SafetensorError
from safetensors.torch import load_file, save_model
from torch import nn

from usemabench import __version__
from usemabench.core.io import atomic_write_json, file_sha256
from usemabench.model_card import build_model_card

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
CARD_NAME = "README.md"
HUB_FILES = (CONFIG_NAME, WEIGHTS_NAME, CARD_NAME)


class PretrainedError(ValueError):
    """Weights that cannot be used (missing file, mismatching config or hash, unreadable safetensors) or that
    cannot be fetched from or pushed to the Hub."""


# HfHubHTTPError's first base is its HTTP library's error (httpx2's here, httpx's or requests' in other
# huggingface_hub versions): upload calls let that library's transport errors (no network, DNS, timeout) through
# unwrapped. HfHubHTTPError itself, offline mode (ConnectionError) and a missing token are OSErrors.
HUB_TRANSPORT_ERRORS = (HfHubHTTPError.__mro__[1], OSError)


def _one_line(error: BaseException) -> str:
    """huggingface_hub's messages span lines; the command line reports errors in one."""
    return " ".join(str(error).split())


def model_config(model: nn.Module) -> dict:
    """The constructor arguments of a registry-built model, as stored in config.json."""
    spec = getattr(model, "usemabench_spec", None)
    if spec is None:
        raise ValueError("this model was not built by usemabench.create_model, so its config is unknown")
    return {
        "usemabench_name": spec["name"],
        "in_channels": spec["in_channels"],
        "num_classes": spec["num_classes"],
        "overrides": spec["overrides"],
        "usemabench_version": __version__,
    }


def save_pretrained(
    model: nn.Module, save_dir: str | os.PathLike, card: ModelCard | None = None, preprocessing: dict | None = None
) -> Path:
    """Write config.json, model.safetensors and a model card into `save_dir`.

    `preprocessing` (training resolution, normalisation, evaluation policy) goes into config.json so that
    `usemabench predict --weights org/repo` prepares images as training did. The card's metadata records
    the weights' sha256; a minimal card is written when none is given.
    """
    save_dir = Path(save_dir)
    save_dir.mkdir(parents=True, exist_ok=True)
    config = model_config(model)
    if preprocessing:
        config["preprocessing"] = preprocessing
    weights_path = save_dir / WEIGHTS_NAME
    save_model(model, str(weights_path), metadata={"format": "pt"})
    atomic_write_json(save_dir / CONFIG_NAME, config)
    card = card or build_model_card(model.usemabench_info, config, train_record=None, eval_record=None)
    card.data.usemabench = {**(card.data.to_dict().get("usemabench") or {}), "weights_sha256": file_sha256(weights_path)}
    card.save(save_dir / CARD_NAME)
    return save_dir


def parse_repo_reference(reference: str) -> tuple[str, str | None]:
    """`org/repo@revision` -> (`org/repo`, `revision`); no `@` -> revision None (the default branch)."""
    repo_id, _, revision = reference.partition("@")
    return repo_id, revision or None


def resolve_weights_dir(
    source: str | os.PathLike, revision: str | None = None, cache_dir: str | None = None
) -> tuple[Path, str | None]:
    """(folder, revision fetched): a local folder as is (revision None), or a Hub repo (`org/repo[@rev]`)
    downloaded into the huggingface_hub cache; `revision` overrides the `@rev`, None is the default branch."""
    local = Path(source)
    if local.is_dir():
        return local, None
    repo_id, parsed_revision = parse_repo_reference(str(source))
    revision = revision or parsed_revision
    if repo_id.count("/") != 1:
        raise PretrainedError(f"{source!r} is neither an existing folder nor a Hub repo id of the form org/name[@revision]")
    try:
        folder = snapshot_download(repo_id, revision=revision, cache_dir=cache_dir, allow_patterns=list(HUB_FILES))
    except (EntryNotFoundError, LocalEntryNotFoundError, HfHubHTTPError) as error:
        # Unknown repo or revision, no network and no cached copy: one message naming what was asked for.
        raise PretrainedError(f"{repo_id}@{revision or 'main'}: weights could not be fetched ({_one_line(error)})") from error
    return Path(folder), revision


def read_weights_folder(folder: Path) -> tuple[dict, dict]:
    """(config, card metadata) of a weights folder, with a clear error for any missing file."""
    missing = [name for name in HUB_FILES if not (folder / name).is_file()]
    if missing:
        raise PretrainedError(f"{folder}: missing {', '.join(missing)} (a usemabench weights folder holds {', '.join(HUB_FILES)})")
    try:
        config = json.loads((folder / CONFIG_NAME).read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise PretrainedError(f"{folder / CONFIG_NAME}: not valid JSON ({error})") from error
    metadata = ModelCard.load(folder / CARD_NAME).data.to_dict()
    return config, metadata


def check_config(config: dict, source: str, name: str | None, in_channels: int | None, num_classes: int | None) -> None:
    """Refuse weights whose config does not match what the caller asked for, saying what differs."""
    expected = {"usemabench_name": name, "in_channels": in_channels, "num_classes": num_classes}
    differences = [
        f"{key}: weights have {config.get(key)!r}, you asked for {wanted!r}"
        for key, wanted in expected.items()
        if wanted is not None and config.get(key) != wanted
    ]
    if differences:
        raise PretrainedError(f"{source}: config does not match the requested model ({'; '.join(differences)})")


def check_weights_hash(weights_path: Path, metadata: dict, source: str) -> str:
    """The weights' sha256, after checking it against the one the model card records."""
    recorded = (metadata.get("usemabench") or {}).get("weights_sha256")
    if not recorded:
        raise PretrainedError(f"{source}: the model card records no usemabench.weights_sha256, so the weights cannot be verified")
    actual = file_sha256(weights_path)
    if actual != recorded:
        raise PretrainedError(f"{source}: {WEIGHTS_NAME} has sha256 {actual}, but the model card records {recorded} (corrupt or tampered download)")
    return actual


def load_pretrained(
    source: str | os.PathLike,
    name: str | None = None,
    in_channels: int | None = None,
    num_classes: int | None = None,
    revision: str | None = None,
    cache_dir: str | None = None,
    **overrides: Any,
) -> nn.Module:
    """Build the model a weights folder or Hub repo describes and load its safetensors weights.

    `name`, `in_channels` and `num_classes`, when given, must match the stored config. Extra `overrides`
    are applied on top of the stored ones (e.g. a different SEMA backend).
    """
    from usemabench.zoo.registry import create_model

    folder, revision = resolve_weights_dir(source, revision, cache_dir)
    config, metadata = read_weights_folder(folder)
    check_config(config, str(source), name, in_channels, num_classes)
    weights_path = folder / WEIGHTS_NAME
    weights_sha256 = check_weights_hash(weights_path, metadata, str(source))
    try:
        state_dict = load_file(str(weights_path))
    except (SafetensorError, OSError) as error:
        raise PretrainedError(f"{source}: {WEIGHTS_NAME} is not a readable safetensors file ({error})") from error
    model = create_model(
        config["usemabench_name"], config["in_channels"], config["num_classes"], **{**config.get("overrides", {}), **overrides}
    )
    missing, unexpected = model.load_state_dict(state_dict, strict=False)
    if missing or unexpected:
        raise PretrainedError(
            f"{source}: weights do not fit {config['usemabench_name']} (missing {len(missing)} keys, e.g. {missing[:3]}; "
            f"unexpected {len(unexpected)}, e.g. {unexpected[:3]})"
        )
    model.usemabench_weights = {"source": str(source), "revision": revision, "weights_sha256": weights_sha256}
    model.usemabench_preprocessing = config.get("preprocessing", {})
    return model


def pull(repo_reference: str, cache_dir: str | None = None) -> Path:
    """Download (or find in the cache) a weights repo, verify it, and return its local folder."""
    folder, _ = resolve_weights_dir(repo_reference, cache_dir=cache_dir)
    _, metadata = read_weights_folder(folder)
    check_weights_hash(folder / WEIGHTS_NAME, metadata, repo_reference)
    return folder


def push_folder(folder: str | os.PathLike, repo_id: str, revision: str | None = None, private: bool = False, token: str | None = None) -> str:
    """Create the repo if needed and upload a weights folder; returns the commit URL."""
    folder = Path(folder)
    read_weights_folder(folder)
    api = HfApi(token=token)
    try:
        api.create_repo(repo_id, private=private, exist_ok=True)
        if revision:
            api.create_branch(repo_id, branch=revision, exist_ok=True)
        commit = api.upload_folder(
            repo_id=repo_id,
            folder_path=str(folder),
            revision=revision,
            allow_patterns=list(HUB_FILES),
            commit_message="Upload usemabench weights",
        )
    except HUB_TRANSPORT_ERRORS as error:
        # No network, offline mode, no or a bad token, no such org: one message naming the target, as pull gives.
        raise PretrainedError(f"{repo_id}@{revision or 'main'}: weights could not be pushed ({_one_line(error)})") from error
    return str(commit.commit_url if hasattr(commit, "commit_url") else commit)
