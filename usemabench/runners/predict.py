"""Segment a folder of images with trained weights: one mask PNG per image (and optional overlays).

Masks are label maps (pixel value = class index, 0 = background), at each image's own size. Images go
through the same steps as in training: channels matched to the model, the training dataset's intensity
normalisation, and its evaluation policy at the training resolution. Checkpoints written by
`usemabench train` carry those settings; Hub weights do not, so they come from the options
(`--resolution`, `--normalization`, `--eval-policy`).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from usemabench.core.io import atomic_write_bytes, canonical_json, file_sha256
from usemabench.datasets.errors import DatasetError
from usemabench.datasets.imaging import image_to_float, is_image_file, read_image
from usemabench.datasets.transforms import normalize_image
from usemabench.runners.errors import UsageError
from usemabench.runners.evaluate import display_image
from usemabench.runners.inference import predict_logits
from usemabench.runners.precision import resolve_device
from usemabench.runners.weights import load_weights

# Overlay colours per class (class 0 is not drawn); cycled for more classes.
PALETTE = np.array([(230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48), (145, 30, 180)], dtype=np.float32)
OVERLAY_ALPHA = 0.45


@dataclass(frozen=True)
class PredictSettings:
    resolution: tuple[int, int]
    normalization: str | dict
    eval_policy: str


def resolve_settings(stored: dict, resolution: int | None, normalization: str | None, eval_policy: str | None) -> PredictSettings:
    """Options override what the checkpoint stored; without either, a clear error (resolution) or a default."""
    if resolution is not None:
        size = (resolution, resolution)
    elif "resolution" in stored:
        size = tuple(stored["resolution"])
    else:
        raise UsageError("these weights do not record their training resolution; pass --resolution")
    return PredictSettings(
        resolution=size,  # type: ignore[arg-type]
        normalization=normalization or stored.get("normalization", "zscore"),
        eval_policy=eval_policy or stored.get("eval_policy", "resize"),
    )


@dataclass
class PredictReport:
    """What one `predict` call did: masks written now, masks an earlier call with the same weights and settings
    had written (kept, not redone), and every image that could not be segmented with the reason."""

    written: list[Path] = field(default_factory=list)
    kept: list[Path] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)

    def summary(self, output_dir: Path) -> str:
        kept = f" ({len(self.kept)} more written earlier, kept)" if self.kept else ""
        failed = f"; {len(self.failed)} image(s) failed, listed above" if self.failed else ""
        return f"wrote {len(self.written)} masks to {output_dir}{kept}{failed}"


def predict_folder(
    model_name: str | None,
    weights: str,
    input_dir: str | Path,
    output_dir: str | Path,
    *,
    overlay: bool = False,
    resolution: int | None = None,
    normalization: str | None = None,
    eval_policy: str | None = None,
    device: str = "auto",
    progress: bool = True,
    overwrite: bool = False,
) -> PredictReport:
    """Write `<output_dir>/<image stem>.png` for every image in `input_dir` that can be segmented.

    An image that cannot (unreadable, wrong channel count, NaN or infinite values, a non-finite model output)
    is reported with its reason while the others are predicted. A second call with the same weights and
    settings keeps the masks the first one wrote (so an interrupted call resumes); any other file in the way
    is replaced only with `overwrite`. `output_dir` may never be `input_dir`.
    """
    input_dir, output_dir = Path(input_dir), Path(output_dir)
    if not input_dir.is_dir():
        raise FileNotFoundError(f"input folder {input_dir} does not exist")
    images = sorted(path for path in input_dir.iterdir() if is_image_file(path))
    if not images:
        raise FileNotFoundError(f"no images (png, jpg, tif, bmp, gif) in {input_dir}")
    stems = [path.stem for path in images]
    duplicates = sorted({stem for stem in stems if stems.count(stem) > 1})
    if duplicates:
        raise UsageError(f"{input_dir}: several images share the name {duplicates[0]!r}; their masks would overwrite each other")
    if output_dir.resolve() == input_dir.resolve():
        raise UsageError(f"output folder {output_dir} is the input folder: the masks would replace the images; choose another folder")
    loaded = load_weights(weights, model_name)
    settings = resolve_settings(loaded.preprocessing, resolution, normalization, eval_policy)
    torch_device = resolve_device(device)
    model = loaded.model.to(torch_device)
    in_channels = model.usemabench_spec["in_channels"]
    if resolution is not None:
        check_resolution(model, settings, torch_device)
    suffixes = (".png", "_overlay.png") if overlay else (".png",)
    targets = {path: [output_dir / f"{path.stem}{suffix}" for suffix in suffixes] for path in images}
    ledger = PredictionLedger(output_dir, prediction_identity(model, settings))
    done = ledger.done() if not overwrite else {}
    check_output_folder(output_dir, [target for files in targets.values() for target in files if target.name not in done], overwrite)
    if overwrite:
        ledger.restart()
    report = PredictReport()
    try:
        for path in tqdm(images, desc="predict", disable=not progress):
            image_sha = file_sha256(path)
            if all(done.get(target.name) == image_sha for target in targets[path]):  # written from this very image
                report.kept.append(targets[path][0])
                continue
            try:
                labels, image = segment(model, path, in_channels, settings, torch_device)
            except (DatasetError, ValueError) as error:
                report.failed.append((path, str(error).removeprefix(f"{path}: ")))
                continue
            outputs = {targets[path][0]: png_bytes(labels)}
            if overlay:
                outputs[targets[path][1]] = png_bytes(overlay_image(display_image(image), labels))
            ledger.add(outputs, image_sha)  # listed before they are written: a kill in between leaves a missing file, redone next time
            for target, data in outputs.items():
                atomic_write_bytes(target, data)
            report.written.append(targets[path][0])
    except KeyboardInterrupt:  # Ctrl-C: what is written stays, and the next call picks up from there
        raise KeyboardInterrupt(
            f"interrupted after {len(report.written)} new mask(s) in {output_dir}; the same command resumes, keeping them"
        ) from None
    return report


def segment(model: torch.nn.Module, path: Path, in_channels: int, settings: PredictSettings, device: torch.device) -> tuple[np.ndarray, torch.Tensor]:
    """(label map uint8, normalised image) of one image file; DatasetError or ValueError saying why it cannot be."""
    array = image_to_float(read_image(path), in_channels, str(path))
    bad = int((~np.isfinite(array)).sum())
    if bad:
        raise DatasetError(f"{path}: image holds {bad} NaN or infinite value(s); no mask is written for it")
    image = normalize_image(torch.from_numpy(array), settings.normalization)
    logits = predict_logits(model, image, settings.resolution, settings.eval_policy, device)
    if not torch.isfinite(logits).all():
        raise DatasetError(f"{path}: the model's output is not finite (NaN or infinite) for this image; no mask is written for it")
    return logits.argmax(0).numpy().astype(np.uint8), image


def png_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def prediction_identity(model: torch.nn.Module, settings: PredictSettings) -> str:
    """A hash of what decides the masks: the weights themselves and the preprocessing settings."""
    digest = hashlib.sha256(canonical_json({"model": model.usemabench_spec, "settings": asdict(settings)}).encode())
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:16]


class PredictionLedger:
    """`<output_dir>/.usemabench-predict.jsonl`: which masks this output folder holds, by which weights and settings.

    An identity line, then one JSON line per file written (its name and sha256, and the sha256 of the image it
    segments). A file counts as done only when the identity matches, the file still holds what was written and
    its image is unchanged; a listed file that is missing is redone.
    """

    NAME = ".usemabench-predict.jsonl"

    def __init__(self, output_dir: Path, identity: str) -> None:
        self.path = output_dir / self.NAME
        self.identity = identity
        self._lines = self._read()  # None: no ledger of this identity yet

    def _read(self) -> list[dict] | None:
        """The entries under this identity; an unreadable line (a kill mid-write) is skipped."""
        try:
            lines = self.path.read_text(encoding="utf-8").splitlines()
        except (FileNotFoundError, UnicodeDecodeError):
            return None
        entries = []
        for line in lines:
            try:
                entries.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        if not entries or not isinstance(entries[0], dict) or entries[0].get("identity") != self.identity:
            return None
        return [entry for entry in entries[1:] if isinstance(entry, dict) and {"file", "sha256", "image_sha256"} <= set(entry)]

    def done(self) -> dict[str, str]:
        """{file name: sha256 of its image} of the files an earlier call with this identity wrote that still hold
        what it wrote."""
        folder = self.path.parent
        listed = {str(entry["file"]): entry for entry in self._lines or []}
        return {
            name: str(entry["image_sha256"]) for name, entry in listed.items()
            if (folder / name).is_file() and file_sha256(folder / name) == entry["sha256"]
        }

    def restart(self) -> None:
        self.path.unlink(missing_ok=True)
        self._lines = None

    def add(self, outputs: dict[Path, bytes], image_sha: str) -> None:
        """List `outputs` (written next) of the image with sha256 `image_sha`; the first entry of a new identity
        starts the ledger afresh."""
        lines = [] if self._lines is not None else [{"identity": self.identity}]
        lines += [
            {"file": target.name, "sha256": hashlib.sha256(data).hexdigest(), "image_sha256": image_sha}
            for target, data in outputs.items()
        ]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a" if self._lines is not None else "w", encoding="utf-8") as stream:
            stream.write("".join(json.dumps(line) + "\n" for line in lines))
            stream.flush()
            os.fsync(stream.fileno())
        self._lines = (self._lines or []) + lines[-len(outputs):]


def check_output_folder(output_dir: Path, targets: list[Path], overwrite: bool) -> None:
    """Refuse, before any work, to write over files this command did not write with these weights: masks are
    named like the images they segment, so the folder may hold the user's own files of those names."""
    existing = [path.name for path in targets if path.exists()]
    if existing and not overwrite:
        listed = ", ".join(existing[:3]) + (", ..." if len(existing) > 3 else "")
        raise UsageError(
            f"{output_dir} already holds {len(existing)} of the files to write ({listed}), not written by this command "
            "with these weights and settings; pass --force to replace them"
        )


def check_resolution(model: torch.nn.Module, settings: PredictSettings, device: torch.device) -> None:
    """One forward of a blank image at --resolution, so that a size the model cannot take (its bottleneck would be
    1x1, or not divisible as it requires) is reported naming the option, before any mask is written."""
    height, width = settings.resolution
    blank = torch.zeros(model.usemabench_spec["in_channels"], height, width)
    try:
        predict_logits(model, blank, settings.resolution, settings.eval_policy, device)
    except ValueError as error:
        info = model.usemabench_info
        divisor = getattr(model, "size_divisor", info.size_divisor)
        padded = info.size_policy == "pad" and min(height, width) <= divisor
        hint = f"; it pads inputs to a multiple of {divisor}, so try more than {divisor}" if padded else ""
        name = model.usemabench_spec["name"]
        raise UsageError(f"--resolution {height}: model {name!r} cannot take a {height}x{width} input ({error}){hint}") from error


def overlay_image(image: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """RGB uint8: the image in gray (or colour) with each foreground class tinted in its colour."""
    rgb = np.repeat(image[..., None], 3, axis=2) if image.ndim == 2 else image
    blended = rgb.astype(np.float32)
    foreground = labels > 0
    colours = PALETTE[(labels[foreground].astype(np.int64) - 1) % len(PALETTE)]
    blended[foreground] = (1 - OVERLAY_ALPHA) * blended[foreground] + OVERLAY_ALPHA * colours
    return blended.round().astype(np.uint8)
