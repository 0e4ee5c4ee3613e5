"""Reading image and mask files into numpy arrays, with one clear error per unreadable file.

TIFF files are read with `tifffile` (float, many-channel and planar TIFFs that Pillow cannot decode), then
Pillow if tifffile fails (e.g. JPEG-compressed TIFF without imagecodecs); every other format with Pillow.
A file no reader can open is named with the reason each reader gave.

Images come back as (H, W, C) in their stored dtype (alpha dropped, palettes expanded); masks as (H, W)
raw integer values, decoded into classes later by `labels.decode_mask`. A mask pixel's raw value is its
gray value where its colour channels are equal and it is opaque, 0 where it is fully transparent, and
otherwise a colour code `COLOUR_CODE_BASE + 0xRRGGBBAA` (see `colour_codes`), so colour-coded (RGB or
RGBA) masks keep every colour distinct and never collide with gray values.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from usemabench.datasets.errors import DatasetError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".gif")
TIFF_SUFFIXES = (".tif", ".tiff")
COLOUR_CODE_BASE = 1 << 32  # above every gray value of an 8/16/32-bit mask


def is_image_file(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")


@dataclass
class Decoded:
    """The samples of one decoded file, before they become an image or a mask."""

    samples: np.ndarray  # (H, W) or (H, W, C)
    has_alpha: bool = False  # the last channel is alpha
    palette: np.ndarray | None = None  # (N, 3) uint8 colours; `samples` then holds palette indices
    lossy: bool = False  # JPEG: the channels of a gray mask differ by compression noise


class _Unsupported(Exception):
    """A file a reader decoded but that is not a single 2D image (no other reader is tried)."""


def _from_pil(image: Image.Image) -> Decoded:
    lossy = image.format == "JPEG"
    if image.mode == "P" and image.getpalette():
        colours = np.zeros((256, 3), dtype=np.uint8)  # room for every index, however short the stored palette
        stored = np.asarray(image.getpalette(), dtype=np.uint8).reshape(-1, 3)[:256]
        colours[: len(stored)] = stored
        return Decoded(np.asarray(image), palette=colours)
    if image.mode in ("P", "PA", "CMYK", "YCbCr", "LAB", "HSV"):
        image = image.convert("RGBA" if image.mode == "PA" else "RGB")
    if image.mode == "1":
        image = image.convert("L")
    return Decoded(np.asarray(image), has_alpha=image.mode in ("RGBA", "LA", "RGBa", "La"), lossy=lossy)


def _read_pillow(path: Path) -> Decoded:
    try:
        with Image.open(path) as image:
            frames = getattr(image, "n_frames", 1)
            image.load()  # decode now, so a truncated or corrupt file fails here and not inside a worker
    except UnidentifiedImageError:
        raise ValueError("not a recognised image format") from None
    if frames > 1:
        raise _Unsupported(f"has {frames} frames; only single-frame 2D files are supported")
    return _from_pil(image)


def _read_tifffile(path: Path) -> Decoded:
    import tifffile

    with tifffile.TiffFile(path) as tiff:
        pages = [page for page in tiff.pages if not page.is_reduced]  # thumbnails are not frames
        if not pages:
            raise ValueError("the file holds no image")
        if len(pages) > 1:
            raise _Unsupported(f"has {len(pages)} frames; only single-frame 2D files are supported")
        page = pages[0]
        photometric = tifffile.PHOTOMETRIC(page.photometric)
        if photometric not in (tifffile.PHOTOMETRIC.MINISBLACK, tifffile.PHOTOMETRIC.MINISWHITE, tifffile.PHOTOMETRIC.RGB, tifffile.PHOTOMETRIC.PALETTE):
            raise ValueError(f"photometric {photometric.name} is left to Pillow")
        samples = page.asarray()
        axes = page.axes
        for axis in [a for a in axes if a not in "YXS"]:  # squeeze length-1 axes (e.g. a one-plane stack)
            if samples.shape[axes.index(axis)] != 1:
                raise _Unsupported(f"is not a 2D image (axes {axes}, shape {samples.shape})")
            samples = samples.squeeze(axes.index(axis))
            axes = axes.replace(axis, "")
        if "S" in axes and axes.index("S") == 0:  # planar storage: (S, Y, X) -> (Y, X, S)
            samples = np.moveaxis(samples, 0, -1)
        if samples.dtype == np.bool_:
            samples = samples.astype(np.uint8) * np.uint8(255)  # as Pillow reads bilevel files
        if photometric == tifffile.PHOTOMETRIC.MINISWHITE and samples.dtype.kind == "u":
            samples = np.iinfo(samples.dtype).max - samples  # as Pillow shows them: 0 is black
        if photometric == tifffile.PHOTOMETRIC.PALETTE:
            colormap = np.asarray(page.colormap)
            colours = (colormap // 257 if colormap.max() > 255 else colormap).astype(np.uint8).T
            return Decoded(samples, palette=colours)
        has_alpha = any(int(extra) in (1, 2) for extra in page.extrasamples)  # associated / unassociated alpha
        return Decoded(samples, has_alpha=has_alpha, lossy=page.compression == tifffile.COMPRESSION.JPEG)


@contextlib.contextmanager
def _quiet_decoders() -> Iterator[None]:
    """Decoders' own log lines and warnings (tifffile's invalid offsets, Pillow's corrupt EXIF) stay out of the
    one-line-per-file report: a file that fails is reported with each reader's reason instead."""
    tifffile_logger = logging.getLogger("tifffile")
    level = tifffile_logger.level
    tifffile_logger.setLevel(logging.CRITICAL)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        tifffile_logger.setLevel(level)


def _decode(path: Path, what: str) -> Decoded:
    if not path.is_file():
        raise DatasetError(f"{path}: {what} file not found")
    readers = [("tifffile", _read_tifffile), ("Pillow", _read_pillow)] if path.suffix.lower() in TIFF_SUFFIXES else [("Pillow", _read_pillow)]
    reasons = []
    for reader_name, reader in readers:
        try:
            with _quiet_decoders():
                return reader(path)
        except _Unsupported as error:
            raise DatasetError(f"{path}: {what} {error}") from None
        except Exception as error:  # noqa: BLE001 - any decoder failure means "try the next reader"; each reason is reported
            text = str(error).splitlines()[0] if str(error) else type(error).__name__
            reasons.append(f"{reader_name}: {text}")
    if len(reasons) == 1:
        raise DatasetError(f"{path}: unreadable or corrupt {what} ({reasons[0].split(': ', 1)[1]})") from None
    raise DatasetError(f"{path}: unreadable or corrupt {what} ({'; '.join(reasons)})") from None


def decoded_image_array(decoded: Decoded) -> np.ndarray:
    """(H, W, C) image: palette expanded to RGB, alpha dropped."""
    array = decoded.palette[decoded.samples] if decoded.palette is not None else decoded.samples
    if array.ndim == 2:
        array = array[:, :, None]
    if decoded.has_alpha:
        array = array[:, :, :-1]
    return array


def pil_to_image_array(image: Image.Image) -> np.ndarray:
    """(H, W, C) array of a decoded PIL image: alpha dropped, palette and exotic modes made RGB or gray."""
    return decoded_image_array(_from_pil(image))


def read_image(path: str | Path) -> np.ndarray:
    """(H, W, C) image array in its stored dtype (uint8, uint16, int32 or float32)."""
    return decoded_image_array(_decode(Path(path), "image"))


def colour_codes(samples: np.ndarray, has_alpha: bool, where: str) -> np.ndarray:
    """(H, W) int64 raw values of a multi-channel mask, one per distinct pixel colour.

    Opaque pixels whose colour channels are equal keep their gray value (a gray mask saved as RGB reads as
    before), fully transparent pixels are 0 (nothing drawn), and any other pixel is
    `COLOUR_CODE_BASE + 0xRRGGBBAA`, so every colour stays distinct and no colour equals a gray value.
    """
    if samples.dtype != np.uint8:
        colour = samples[:, :, : samples.shape[2] - int(has_alpha)]
        if all(np.array_equal(colour[:, :, 0], colour[:, :, c]) for c in range(1, colour.shape[2])):
            return colour[:, :, 0].astype(np.int64)
        raise DatasetError(f"{where}: a {samples.dtype} mask with differing colour channels; only 8-bit colour masks are read as colours")
    colour = samples[:, :, :-1] if has_alpha else samples
    colour = np.repeat(colour, 3, axis=2) if colour.shape[2] == 1 else colour[:, :, :3]
    alpha = samples[:, :, -1] if has_alpha else np.full(samples.shape[:2], 255, dtype=np.uint8)
    red, green, blue = (colour[:, :, c].astype(np.int64) for c in range(3))
    gray = (red == green) & (green == blue) & (alpha == 255)
    packed = COLOUR_CODE_BASE + (red << 24 | green << 16 | blue << 8 | alpha.astype(np.int64))
    return np.where(alpha == 0, 0, np.where(gray, red, packed))


def describe_colour(value: int) -> str:
    """'#rrggbb' (with alpha when it is not opaque) of a colour code; the number itself for a gray value."""
    if value < COLOUR_CODE_BASE:
        return str(value)
    rgba = value - COLOUR_CODE_BASE
    text = f"#{rgba >> 8:06x}"
    return text if rgba & 0xFF == 0xFF else f"{text}{rgba & 0xFF:02x}"


def decoded_mask_array(decoded: Decoded, where: str, first_channel: bool = False) -> np.ndarray:
    """(H, W) raw label values of a decoded mask.

    A palette whose used colours are all gray (a GIF or PNG saved from a gray mask) gives its gray values; a
    colour palette (PASCAL VOC style) gives the palette indices, which are the class ids there. A
    multi-channel lossless mask gives `colour_codes`; a JPEG (lossy) one, or any with `first_channel`
    (thresholded masks), its first channel.
    """
    array = decoded.samples
    if decoded.palette is not None:
        used = decoded.palette[np.unique(array)]
        if (used == used[:, :1]).all():
            array = decoded.palette[array, 0]
    elif array.ndim == 3:
        if first_channel or decoded.lossy or array.shape[2] == 1:
            array = array[:, :, 0]
        else:
            array = colour_codes(array, decoded.has_alpha, where)
    if array.dtype.kind == "f":
        if not np.array_equal(array, np.round(array)):
            raise DatasetError(f"{where}: mask holds non-integer values; masks must hold integer labels")
        array = array.astype(np.int64)
    return array


def pil_to_mask_array(image: Image.Image, where: str, first_channel: bool = False) -> np.ndarray:
    """(H, W) raw label values of a decoded PIL image (see `decoded_mask_array`)."""
    return decoded_mask_array(_from_pil(image), where, first_channel)


def read_mask(path: str | Path, first_channel: bool = False) -> np.ndarray:
    """(H, W) raw mask values of a mask file."""
    path = Path(path)
    return decoded_mask_array(_decode(path, "mask"), str(path), first_channel)


def image_to_float(array: np.ndarray, in_channels: int, where: str) -> np.ndarray:
    """(C, H, W) float32 image: integers scaled by their type's range, gray replicated to `in_channels`."""
    if array.ndim != 3:
        raise DatasetError(f"{where}: expected a 2D image with channels, got an array of shape {array.shape}")
    channels = array.shape[2]
    if channels != in_channels:
        if channels == 1:
            array = np.repeat(array, in_channels, axis=2)
        else:
            raise DatasetError(f"{where}: image has {channels} channels, the dataset expects {in_channels}")
    if array.dtype == np.uint8:
        scale = 255.0
    elif array.dtype.kind in "ui":
        scale = 65535.0  # 16-bit images (PIL reads some as int32); scale-free normalisations ignore this
    else:
        scale = 1.0
    return np.ascontiguousarray(array.transpose(2, 0, 1), dtype=np.float32) / np.float32(scale)
