"""Pretrained weights for every model in the zoo: one folder format, one loader, the Hub, and `create_model`.

A weights folder (local, or a Hub repo) holds:
    config.json        {"usemabench_name", "in_channels", "num_classes", "overrides", "usemabench_version",
                        "preprocessing" (optional: what `predict` must do to an image first)}
    model.safetensors  the state dict (safetensors only: a downloaded file is never unpickled)
    README.md          the model card; its metadata carries `usemabench.weights_sha256`, checked on load

Weights listed in the package's manifest (`usemabench.zoo.pretrained`, timm-style `arch.tag` names) are
checked against the manifest's sha256: a packaged file loads offline, a Hub entry is fetched at its pinned
revision. `create_model` lives here, above the zoo, because it needs both the registry and this loader
(`from usemabench import create_model` is this one). Offline use follows huggingface_hub (`HF_HUB_OFFLINE=1`).
This module imports neither the datasets nor the leaderboard: loading weights needs only the zoo.
"""

from __future__ import annotations

import json
import os
from functools import cache
from pathlib import Path
from typing import Any

import torch
import yaml
from huggingface_hub import HfApi, ModelCard, ModelCardData, ModelHubMixin, snapshot_download
from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError, LocalEntryNotFoundError
from safetensors import SafetensorError
from safetensors.torch import load_file, save
from torch import nn

from usemabench import __version__
from usemabench.core.io import atomic_write_bytes, atomic_write_json, file_sha256
from usemabench.zoo.features import as_feature_extractor
from usemabench.zoo.loading import WeightsError, build_from_spec, check_preprocessing, check_spec, load_state
from usemabench.zoo.pretrained import PretrainedCfg, get_pretrained_cfg, packaged_file, split_model_name
from usemabench.zoo.registry import create_model as build_model

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
CARD_NAME = "README.md"
HUB_FILES = (CONFIG_NAME, WEIGHTS_NAME, CARD_NAME)


class PretrainedError(WeightsError):
    """Weights that cannot be used (missing file, mismatching config or hash, unreadable safetensors) or that
    cannot be fetched from or pushed to the Hub."""


# HfHubHTTPError's first base is its HTTP library's error (httpx2's here, httpx's or requests' in other
# huggingface_hub versions): upload calls let that library's transport errors (no network, DNS, timeout) through
# unwrapped. HfHubHTTPError itself, offline mode (ConnectionError) and a missing token are OSErrors.
HUB_TRANSPORT_ERRORS = (HfHubHTTPError.__mro__[1], OSError)


def _one_line(error: BaseException) -> str:
    """huggingface_hub's messages span lines; the command line reports errors in one."""
    return " ".join(str(error).split())


# ----------------------------------------------------------------------------------------------- writing


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


def minimal_card(model: nn.Module, config: dict) -> ModelCard:
    """A card for weights saved without records (no dataset, no results); `usemabench export` writes full ones."""
    info = model.usemabench_info
    data = ModelCardData(library_name="usemabench", license="unknown", tags=["usemabench", info.family, info.name])
    text = (
        f"# {info.name}\n\n`{info.name}` ({info.family}) weights saved by usemabench; no training record is attached.\n\n"
        f"```python\nfrom usemabench import create_model\nmodel = create_model(\"{info.name}\", pretrained=\"ORG/REPO\")\n```\n\n"
        f"Paper: {info.paper}. Reference code: {info.code or '-'}.\n"
    )
    return ModelCard(f"---\n{data.to_yaml()}\n---\n{text}")


def half_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The state dict with floating tensors in fp16 (the weights ship at half the size; they load into fp32)."""
    return {
        key: (value.to(torch.float16) if value.is_floating_point() else value).detach().contiguous().clone()
        for key, value in model.state_dict().items()
    }


def save_pretrained(
    model: nn.Module,
    save_dir: str | os.PathLike,
    card: ModelCard | None = None,
    preprocessing: dict | None = None,
    fp16: bool = False,
) -> Path:
    """Write config.json, model.safetensors and a model card into `save_dir`.

    `preprocessing` (training resolution, normalisation, evaluation policy) goes into config.json so that
    `usemabench predict --weights org/repo` prepares images as training did. The card's metadata records
    the weights' sha256; a minimal card is written when none is given. `fp16` stores floating tensors in fp16.
    """
    save_dir = Path(save_dir)
    save_dir.mkdir(parents=True, exist_ok=True)
    config = model_config(model)
    if preprocessing:
        config["preprocessing"] = preprocessing
    weights_path = save_dir / WEIGHTS_NAME
    state = half_state_dict(model) if fp16 else {key: value.detach().contiguous().clone() for key, value in model.state_dict().items()}
    atomic_write_bytes(weights_path, save(state, metadata={"format": "pt"}))  # a kill never leaves half a file
    atomic_write_json(save_dir / CONFIG_NAME, config)
    card = card or minimal_card(model, config)
    card.data.usemabench = {**(card.data.to_dict().get("usemabench") or {}), "weights_sha256": file_sha256(weights_path)}
    card.save(save_dir / CARD_NAME)
    return save_dir


# ----------------------------------------------------------------------------------------------- reading


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


def read_config(path: Path) -> dict:
    """config.json of a weights folder: a JSON object in UTF-8 whose model spec and preprocessing are sound."""
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as error:
        raise PretrainedError(f"{path}: not UTF-8 text ({error.reason} at byte {error.start})") from None
    except json.JSONDecodeError as error:
        raise PretrainedError(f"{path}: not valid JSON ({error})") from None
    if not isinstance(config, dict):
        raise PretrainedError(f"{path}: must hold a JSON object, got {type(config).__name__}")
    try:
        check_spec(config_spec(config), str(path))
        check_preprocessing(config.get("preprocessing"), str(path))
    except WeightsError as error:
        raise PretrainedError(str(error)) from None
    return config


def config_spec(config: dict) -> dict:
    """The model spec (`zoo.loading` form) a config.json stores."""
    return {
        "name": config.get("usemabench_name"),
        "in_channels": config.get("in_channels"),
        "num_classes": config.get("num_classes"),
        "overrides": config.get("overrides", {}),
    }


def read_card_metadata(path: Path) -> dict:
    """The YAML metadata of a model card, or one error naming the card (broken YAML, not UTF-8, not a mapping)."""
    try:
        return ModelCard.load(path).data.to_dict()
    except UnicodeDecodeError as error:
        raise PretrainedError(f"{path}: not UTF-8 text ({error.reason} at byte {error.start})") from None
    except yaml.YAMLError as error:
        raise PretrainedError(f"{path}: its YAML metadata cannot be parsed ({_one_line(error)})") from None
    except ValueError as error:
        raise PretrainedError(f"{path}: {error}") from None


def read_weights_folder(folder: Path) -> tuple[dict, dict]:
    """(config, card metadata) of a weights folder, with one clear error for any missing or unreadable file."""
    missing = [name for name in HUB_FILES if not (folder / name).is_file()]
    if missing:
        raise PretrainedError(f"{folder}: missing {', '.join(missing)} (a usemabench weights folder holds {', '.join(HUB_FILES)})")
    return read_config(folder / CONFIG_NAME), read_card_metadata(folder / CARD_NAME)


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


def check_weights_hash(weights_path: Path, recorded: str | None, source: str, authority: str = "the model card") -> str:
    """The weights' sha256, after checking it against the one `authority` (card or manifest) records."""
    if not recorded:
        raise PretrainedError(f"{source}: {authority} records no weights sha256, so the weights cannot be verified")
    actual = file_sha256(weights_path)
    if actual != recorded:
        raise PretrainedError(f"{weights_path}: sha256 {actual}, but {authority} records {recorded} (corrupt or tampered file)")
    return actual


def read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    try:
        return load_file(str(path))
    except (SafetensorError, OSError) as error:
        raise PretrainedError(f"{path}: not a readable safetensors file ({error})") from None


def load_into(model: nn.Module, weights_path: Path) -> nn.Module:
    """`model` with the tensors of `weights_path` loaded (PretrainedError naming the file for any mismatch)."""
    try:
        load_state(model, read_safetensors(weights_path), str(weights_path))
    except PretrainedError:
        raise
    except WeightsError as error:
        raise PretrainedError(str(error)) from None
    return model


def _build(spec: dict, source: str, overrides: dict) -> nn.Module:
    try:
        return build_from_spec(spec, source, **overrides)
    except PretrainedError:
        raise
    except WeightsError as error:
        raise PretrainedError(str(error)) from None


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

    `name`, `in_channels` and `num_classes`, when given, must match the stored config; left out, they come from
    it. Extra `overrides` are applied on top of the stored ones (e.g. a different SEMA backend).
    """
    folder, revision = resolve_weights_dir(source, revision, cache_dir)
    config, metadata = read_weights_folder(folder)
    check_config(config, str(source), name, in_channels, num_classes)
    weights_path = folder / WEIGHTS_NAME
    recorded = (metadata.get("usemabench") or {}).get("weights_sha256")
    weights_sha256 = check_weights_hash(weights_path, recorded, str(source), "the model card's usemabench.weights_sha256")
    model = load_into(_build(config_spec(config), str(folder / CONFIG_NAME), overrides), weights_path)
    model.usemabench_weights = {"source": str(source), "revision": revision, "weights_sha256": weights_sha256}
    model.usemabench_preprocessing = config.get("preprocessing", {})
    return with_hub_methods(model)


def load_manifest_entry(
    cfg: PretrainedCfg,
    in_channels: int | None = None,
    num_classes: int | None = None,
    manifest: str | os.PathLike | None = None,
    cache_dir: str | None = None,
    **overrides: Any,
) -> nn.Module:
    """The model of a manifest entry with its weights, checked against the manifest's sha256.

    A packaged entry reads the file shipped beside the manifest (offline); a Hub entry downloads its repo at
    the pinned revision (or finds it in the cache).
    """
    check_config(
        {"usemabench_name": cfg.architecture, "in_channels": cfg.in_channels, "num_classes": cfg.num_classes},
        cfg.name, None, in_channels, num_classes,
    )
    if cfg.file is not None:
        weights_path = packaged_file(cfg, manifest)
        if not weights_path.is_file():
            raise PretrainedError(f"{cfg.name}: {weights_path} is missing (the package's pretrained files were not installed)")
        revision = None
    else:
        if cfg.revision is None:
            raise PretrainedError(f"{cfg.name}: not yet published to {cfg.hub_id} (run `usemabench publish`)")
        folder, revision = resolve_weights_dir(cfg.hub_id, cfg.revision, cache_dir)
        weights_path = folder / WEIGHTS_NAME
        if not weights_path.is_file():
            raise PretrainedError(f"{cfg.hub_id}@{cfg.revision}: no {WEIGHTS_NAME} in the repo")
    weights_sha256 = check_weights_hash(weights_path, cfg.sha256, cfg.name, "the pretrained manifest")
    spec = {"name": cfg.architecture, "in_channels": cfg.in_channels, "num_classes": cfg.num_classes, "overrides": cfg.overrides}
    model = load_into(_build(spec, cfg.name, overrides), weights_path)
    model.usemabench_weights = {"source": cfg.name, "revision": revision, "weights_sha256": weights_sha256}
    model.usemabench_preprocessing = dict(cfg.preprocessing)
    model.pretrained_cfg = cfg.to_dict()
    return with_hub_methods(model)


def create_model(
    name: str,
    in_channels: int | None = None,
    num_classes: int | None = None,
    pretrained: bool | str | os.PathLike = False,
    **overrides: Any,
) -> nn.Module:
    """A zoo model, untrained or with weights, as `timm.create_model` gives one.

    `pretrained=True` loads the manifest's weights of `arch.tag` (or of `arch`'s default tag); a string
    or path loads a weights folder or Hub repo (`org/repo[@revision]`). With weights, `in_channels` and
    `num_classes` come from them when left out and must match them when given. Without weights they
    default to 1 and 2. `features_only=True` (with `out_indices`) returns the encoder maps (`zoo.features`),
    after the weights are loaded into the full model.

    >>> model = create_model("usema_tiny", in_channels=3, num_classes=2)
    >>> model.save_pretrained("weights/")                          # config.json, model.safetensors, README.md
    >>> create_model("usema_tiny", pretrained="weights/")
    """
    if not pretrained:
        model = build_model(name, 1 if in_channels is None else in_channels, 2 if num_classes is None else num_classes, **overrides)
        return model if overrides.get("features_only") else with_hub_methods(model)
    features_only, out_indices = overrides.pop("features_only", False), overrides.pop("out_indices", None)
    if pretrained is True:
        model = load_manifest_entry(get_pretrained_cfg(name), in_channels, num_classes, **overrides)
    else:
        architecture, tag = split_model_name(name)
        if tag is not None:
            raise PretrainedError(f"{name!r}: a tag names manifest weights (pretrained=True); with pretrained={str(pretrained)!r} name the model {architecture!r}")
        model = load_pretrained(pretrained, name=architecture, in_channels=in_channels, num_classes=num_classes, **overrides)
    return as_feature_extractor(model, out_indices) if features_only else model


def from_pretrained(reference: str | os.PathLike, **kwargs: Any) -> nn.Module:
    """The model behind `reference`: a manifest name (`arch.tag`), a weights folder, or a Hub repo `org/repo[@rev]`."""
    reference = str(reference)
    if not Path(reference).exists() and "/" not in reference and "." in reference:
        return load_manifest_entry(get_pretrained_cfg(reference), **kwargs)
    return load_pretrained(reference, **kwargs)


# ------------------------------------------------------------------------------ the models' hub methods


class HubMethods(ModelHubMixin, library_name="usemabench", tags=["usemabench", "medical-image-segmentation"]):
    """`save_pretrained` / `push_to_hub` / `from_pretrained` for every zoo model, in this module's folder format.

    Models come from several libraries (ours, smp, MONAI), so no common base class can carry the methods;
    `with_hub_methods` gives each built model a subclass of its own class with this mixin first. The
    smp-built models' own hub methods (which write smp's format) are overridden, so every model writes the same
    folder. huggingface_hub's `save_pretrained` and `push_to_hub` do the work; `_save_pretrained` writes the folder.
    """

    def _save_pretrained(self, save_directory: Path) -> None:
        save_pretrained(self, save_directory)

    def save_pretrained(self, save_directory: str | os.PathLike, **kwargs: Any) -> str | None:  # type: ignore[override]
        return ModelHubMixin.save_pretrained(self, save_directory, **kwargs)

    def push_to_hub(self, repo_id: str, **kwargs: Any) -> str:  # type: ignore[override]
        return ModelHubMixin.push_to_hub(self, repo_id, **kwargs)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, **kwargs: Any) -> nn.Module:  # type: ignore[override]
        """Any weights `from_pretrained(reference)` takes, whichever class it is called on (the folder names the model)."""
        return from_pretrained(pretrained_model_name_or_path, **kwargs)


@cache
def _hub_class(model_class: type) -> type:
    if issubclass(model_class, HubMethods):
        return model_class
    return type(
        model_class.__name__, (HubMethods, model_class), {"__module__": model_class.__module__, "__qualname__": model_class.__qualname__}
    )


def with_hub_methods(model: nn.Module) -> nn.Module:
    """`model`, its class now a subclass with the hub methods (state dict, forward and hooks unchanged)."""
    model.__class__ = _hub_class(type(model))
    return model


# ------------------------------------------------------------------------------------------------- Hub


def pull(repo_reference: str, cache_dir: str | None = None) -> Path:
    """Download (or find in the cache) a weights repo, verify it, and return its local folder."""
    folder, _ = resolve_weights_dir(repo_reference, cache_dir=cache_dir)
    _, metadata = read_weights_folder(folder)
    check_weights_hash(folder / WEIGHTS_NAME, (metadata.get("usemabench") or {}).get("weights_sha256"), repo_reference)
    return folder


def push_folder(folder: str | os.PathLike, repo_id: str, revision: str | None = None, private: bool = False, token: str | None = None) -> str:
    """Create the repo if needed and upload a weights folder; returns the commit URL."""
    return push_folder_commit(folder, repo_id, revision, private, token)[0]


def push_folder_commit(
    folder: str | os.PathLike, repo_id: str, revision: str | None = None, private: bool = False, token: str | None = None
) -> tuple[str, str]:
    """(commit URL, commit sha) of uploading a weights folder, the repo created if needed."""
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
    return str(commit.commit_url), str(commit.oid)
