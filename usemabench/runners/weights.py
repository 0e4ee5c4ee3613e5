"""Load a trained model from whatever a user points at: a run folder, a checkpoint, safetensors, or the Hub.

    runs/usema_tiny/synthetic/quick/seed0      a run folder: its best.pt (else last.pt)
    path/to/best.pt                            a checkpoint written by `usemabench train`
    path/to/model.safetensors                  with the config.json of the Hub layout beside it
    path/to/weights_folder                     config.json + model.safetensors + README.md (`usemabench.hub`)
    usema_tiny.kvasir_seg_cpu                  weights listed in the package's manifest (`usemabench weights`)
    org/repo[@revision]                        a Hub repo, when no such local path exists

Checkpoints are read with `torch.load(weights_only=True)`; downloaded files are only ever safetensors.
Anything in them that does not fit (config, shapes, resolution) is one error naming the file and what differs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from torch import nn

from usemabench.runners.checkpoint import BEST, LAST, load_checkpoint
from usemabench.runners.errors import UsageError
from usemabench.zoo.loading import build_from_spec, check_preprocessing, check_spec, load_state
from usemabench.zoo.pretrained import list_pretrained

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+(@[\w./-]+)?$")


@dataclass(frozen=True)
class LoadedWeights:
    model: nn.Module
    source: str
    preprocessing: dict = field(default_factory=dict)  # empty when the weights do not say


def load_weights(reference: str, model_name: str | None = None) -> LoadedWeights:
    """The model `reference` describes, with its weights loaded; `model_name`, when given, must match."""
    path = Path(reference).expanduser()
    if path.is_dir():
        for name in (BEST, LAST):
            if (path / name).is_file():
                return _from_checkpoint(path / name, model_name)
        if (path / "config.json").is_file():
            return _from_hub(str(path), model_name)
        raise FileNotFoundError(f"{path}: neither a run folder (best.pt / last.pt) nor a weights folder (config.json)")
    if path.is_file():
        if path.suffix == ".safetensors":
            return _from_safetensors(path, model_name)
        return _from_checkpoint(path, model_name)
    if reference in list_pretrained():
        return _from_manifest(reference, model_name)
    if HUB_ID.match(reference):
        return _from_hub(reference, model_name)
    raise FileNotFoundError(
        f"weights {reference!r}: no such file or folder, no pretrained weights of that name (`usemabench weights`), "
        "and not a Hub id of the form org/name[@revision]"
    )


def _check_name(spec_name: str, model_name: str | None, source: str) -> None:
    if model_name is not None and model_name != spec_name:
        raise UsageError(f"{source} holds weights of model {spec_name!r}, not {model_name!r}")


def _from_checkpoint(path: Path, model_name: str | None) -> LoadedWeights:
    payload = load_checkpoint(path)
    spec = payload.get("model_spec") if isinstance(payload, dict) else None
    if not spec or "model" not in payload:
        raise UsageError(f"{path}: not a usemabench checkpoint (no model_spec / model state)")
    spec = check_spec(spec, str(path))
    _check_name(spec["name"], model_name, str(path))
    if not isinstance(payload["model"], dict):
        raise UsageError(f"{path}: its model state is a {type(payload['model']).__name__}, not a dict of tensors")
    model = build_from_spec(spec, str(path))
    load_state(model, payload["model"], str(path))
    return LoadedWeights(model, str(path), check_preprocessing(payload.get("preprocessing"), str(path)))


def _from_safetensors(path: Path, model_name: str | None) -> LoadedWeights:
    if not (path.parent / "config.json").is_file():
        raise FileNotFoundError(f"{path}: a safetensors file needs the config.json of its weights folder beside it")
    return _from_hub(str(path.parent), model_name)


def _from_hub(reference: str, model_name: str | None) -> LoadedWeights:
    from usemabench.hub import load_pretrained  # lazy: huggingface_hub only when the Hub is used

    model = load_pretrained(reference, name=model_name)
    return LoadedWeights(model, reference, dict(model.usemabench_preprocessing))


def _from_manifest(name: str, model_name: str | None) -> LoadedWeights:
    from usemabench.hub import from_pretrained  # lazy, as above

    model = from_pretrained(name)
    _check_name(model.usemabench_spec["name"], model_name, name)
    return LoadedWeights(model, name, dict(model.usemabench_preprocessing))
