"""Reading image and mask files into numpy arrays, with one clear error per unreadable file.

Images come back as (H, W, C) in their stored dtype (alpha dropped, palettes expanded); masks as (H, W)
raw integer values, decoded into classes later by `labels.decode_mask`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from usemabench.datasets.errors import DatasetError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".gif")


def is_image_file(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")


def _open(path: Path, what: str) -> Image.Image:
    try:
        with Image.open(path) as image:
            frames = getattr(image, "n_frames", 1)
            image.load()  # decode now, so a truncated or corrupt file fails here and not inside a worker
    except FileNotFoundError:
        raise DatasetError(f"{path}: {what} file not found") from None
    except UnidentifiedImageError:
        raise DatasetError(f"{path}: unreadable or corrupt {what} (not a recognised image format)") from None
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
        raise DatasetError(f"{path}: unreadable or corrupt {what} ({error})") from None
    if frames > 1:
        raise DatasetError(f"{path}: {what} has {frames} frames; only single-frame 2D files are supported")
    return image


def pil_to_image_array(image: Image.Image) -> np.ndarray:
    """(H, W, C) array of a decoded PIL image: alpha dropped, palette and exotic modes made RGB or gray."""
    if image.mode in ("P", "PA", "CMYK", "YCbCr", "LAB", "HSV"):
        image = image.convert("RGBA" if image.mode == "PA" else "RGB")
    if image.mode == "1":
        image = image.convert("L")
    array = np.asarray(image)
    if array.ndim == 2:
        array = array[:, :, None]
    if image.mode in ("RGBA", "LA", "RGBa", "La"):
        array = array[:, :, :-1]
    return array


def read_image(path: str | Path) -> np.ndarray:
    """(H, W, C) image array in its stored dtype (uint8, uint16, int32 or float32)."""
    return pil_to_image_array(_open(Path(path), "image"))


def pil_to_mask_array(image: Image.Image, where: str, first_channel: bool = False) -> np.ndarray:
    """(H, W) raw label values; 0/255 for 1-bit images.

    A palette image whose used colours are all gray (a GIF or PNG saved from a gray mask) gives its gray
    values; a colour palette (PASCAL VOC style) gives the palette indices, which are the class ids there.

    Multi-channel masks must have identical channels (a gray mask saved as RGB), unless `first_channel`
    (thresholded JPEG masks, whose channels differ slightly by compression).
    """
    if image.mode == "1":
        image = image.convert("L")
    array = np.asarray(image)
    if image.mode == "P" and image.getpalette():
        colours = np.asarray(image.getpalette(), dtype=np.uint8).reshape(-1, 3)
        used = colours[np.unique(array)]
        if (used == used[:, :1]).all():
            array = colours[array, 0]
    if array.ndim == 3:
        channels = array[:, :, : 3 if array.shape[2] >= 3 else 1]
        if not first_channel and not all(np.array_equal(channels[:, :, 0], channels[:, :, c]) for c in range(1, channels.shape[2])):
            raise DatasetError(
                f"{where}: mask has {array.shape[2]} channels with different values; "
                "save masks as single-channel label images (colour-coded masks are not supported)"
            )
        array = channels[:, :, 0]
    if array.dtype.kind == "f":
        if not np.array_equal(array, np.round(array)):
            raise DatasetError(f"{where}: mask holds non-integer values; masks must hold integer labels")
        array = array.astype(np.int64)
    return array


def read_mask(path: str | Path, first_channel: bool = False) -> np.ndarray:
    """(H, W) raw mask values of a mask file."""
    path = Path(path)
    return pil_to_mask_array(_open(path, "mask"), str(path), first_channel)


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
