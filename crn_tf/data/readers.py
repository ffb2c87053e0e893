"""Reading photos and label maps from disk (NumPy side), and cheap header probes.

Everything here names the file in its errors: a `DataError` (a ValueError) says which
file and what is wrong with it. The tf.data pipeline decodes inside TensorFlow
(`decode.py`); these readers are for the demo, the checker and the tests. Both map label
values through the same tables (`crn_tf.labels`), so both paths give the same class indices.
"""
from __future__ import annotations

import dataclasses
import functools
import os
import warnings

import numpy as np
from PIL import Image

from crn_tf.labels import (
    CITYSCAPES,
    LABEL_FORMATS,
    LabelError,
    LabelSet,
    values_to_classes,
)

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")
"""Photo file types the readers accept (labels must be PNG: JPEG changes colours and ids)."""

PHOTO_MODES_CONVERTED = ("RGBA", "LA", "L", "P", "1")
"""Photo modes read by converting to RGB (with a warning): alpha is dropped, grey is repeated."""

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_END = b"IEND\xaeB`\x82"


class DataError(ValueError):
    """A dataset file is missing, unreadable or inconsistent; the message names the file."""


@dataclasses.dataclass(frozen=True)
class FileInfo:
    """What a header probe learns about an image file without decoding its pixels."""

    path: str
    size: tuple[int, int]  # (height, width)
    mode: str  # PIL mode: "RGB", "RGBA", "L", "P", "I;16", ...
    format: str  # "PNG" or "JPEG"


def _probe_uncached(path: str) -> FileInfo:
    try:
        with open(path, "rb") as f:
            head = f.read(8)
            f.seek(0, os.SEEK_END)
            length = f.tell()
            f.seek(max(0, length - 12))
            tail = f.read()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except OSError as error:
        raise DataError(f"{path}: cannot read ({error.strerror})") from error
    if length == 0:
        raise DataError(f"{path}: empty file (0 bytes)")
    try:
        with Image.open(path) as image:
            width, height = image.size
            mode, kind = image.mode, image.format
    except Exception as error:  # PIL raises UnidentifiedImageError, SyntaxError, struct.error, ...
        raise DataError(f"{path}: not a readable PNG or JPEG image ({error})") from None
    if kind not in ("PNG", "JPEG"):
        raise DataError(f"{path}: unsupported image format {kind} (use PNG, or JPEG for photos)")
    # A complete PNG ends with its IEND chunk, a complete JPEG with the EOI marker: checking
    # the last bytes finds truncated files (an interrupted copy) without decoding them.
    if kind == "PNG" and (head != _PNG_SIGNATURE or not tail.endswith(_PNG_END)):
        raise DataError(f"{path}: truncated PNG (no IEND chunk at the end of the file)")
    if kind == "JPEG" and b"\xff\xd9" not in tail.rstrip(b"\x00"):
        raise DataError(f"{path}: truncated JPEG (no end-of-image marker)")
    if width == 0 or height == 0:
        raise DataError(f"{path}: image has size {height}x{width}")
    return FileInfo(path=path, size=(height, width), mode=mode, format=kind)


@functools.lru_cache(maxsize=65536)
def _probe_cached(path: str, mtime_ns: int, length: int) -> FileInfo:
    return _probe_uncached(path)


def probe(path: str | os.PathLike) -> FileInfo:
    """Size, mode and format from the file header, plus a truncation check of its last bytes.

    Costs one open and two small reads (no pixel decoding), so a whole dataset is scanned
    in seconds. Raises DataError naming the file when it is missing, empty, not an
    image, or truncated.
    """
    path = os.fspath(path)
    try:
        stat = os.stat(path)
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except OSError as error:
        raise DataError(f"{path}: cannot read ({error.strerror})") from error
    return _probe_cached(path, stat.st_mtime_ns, stat.st_size)


def label_format_for(info: FileInfo) -> str:
    """The label format a label PNG's mode implies: single channel -> "ids", colour -> "colors".

    Palette PNGs are read by their colours (what a viewer shows). 16-bit and other modes
    raise DataError: ids must fit in 0..255.
    """
    if info.format != "PNG":
        raise DataError(f"{info.path}: label maps must be PNG ({info.format} compression changes ids and colours)")
    if info.mode in ("L", "LA"):
        return "ids"
    if info.mode in ("RGB", "RGBA", "P", "PA"):
        return "colors"
    if info.mode.startswith("I"):
        raise DataError(f"{info.path}: 16-bit label PNG (mode {info.mode}); label ids must be 8-bit, 0..255")
    raise DataError(f"{info.path}: unsupported label PNG mode {info.mode} (use 8-bit grey ids or RGB colours)")


def check_photo_mode(info: FileInfo) -> str | None:
    """None for an RGB photo, a warning text for one that is converted, DataError otherwise."""
    if info.mode == "RGB":
        return None
    if info.mode in PHOTO_MODES_CONVERTED:
        what = {"RGBA": "RGBA (alpha dropped)", "LA": "grey+alpha (grey repeated, alpha dropped)",
                "L": "greyscale (grey repeated to RGB)", "P": "palette (expanded to RGB)",
                "1": "1-bit (expanded to RGB)"}[info.mode]
        return f"{info.path}: photo is {what}; read as RGB"
    raise DataError(f"{info.path}: unsupported photo mode {info.mode} (use 8-bit RGB)")


def read_image(path: str | os.PathLike) -> np.ndarray:
    """A photo as uint8 [H, W, 3]. RGBA, grey and palette photos are converted with a warning."""
    path = os.fspath(path)
    info = probe(path)
    message = check_photo_mode(info)
    if message:
        warnings.warn(message, stacklevel=2)
    try:
        with Image.open(path) as image:
            image.load()
            array = np.asarray(image.convert("RGB") if image.mode != "RGB" else image)
    except Exception as error:
        raise DataError(f"{path}: corrupt image data ({error})") from None
    return np.ascontiguousarray(array, dtype=np.uint8)


def read_label_values(path: str | os.PathLike, label_format: str) -> np.ndarray:
    """A label PNG's raw values: uint8 [H, W] for "ids"/"trainids", [H, W, 3] for "colors".

    For "colors" palette and RGBA PNGs are converted to RGB, for the others any mode to 8-bit
    grey. Raises DataError naming the file on corrupt data.
    """
    path = os.fspath(path)
    try:
        with Image.open(path) as image:
            image.load()
            if label_format == "colors":
                return np.asarray(image.convert("RGB") if image.mode != "RGB" else image)
            return np.asarray(image.convert("L") if image.mode != "L" else image)
    except Exception as error:
        raise DataError(f"{path}: corrupt PNG data ({error})") from None


def read_label(
    path: str | os.PathLike,
    label_set: LabelSet = CITYSCAPES,
    label_format: str | None = None,
    unknown: str = "error",
) -> np.ndarray:
    """A label PNG as class indices, uint8 [H, W], 255 = void.

    Args:
        path: the label PNG.
        label_set: LabelSet. The classes, their ids and colours. Defaults to Cityscapes.
        label_format: "ids" (label-set ids, e.g. `*_gtFine_labelIds.png`), "trainids" (class
            indices, e.g. `*_gtFine_labelTrainIds.png`) or "colors" (class colours). None
            decides by the PNG's mode (grey -> ids, colour -> colors).
        unknown: "error" (default) raises on ids or colours outside the label set; "void"
            reads them as void.

    Raises DataError naming the file, the unknown values and their pixel counts.
    """
    path = os.fspath(path)
    info = probe(path)
    if label_format is None:
        label_format = label_format_for(info)
    elif label_format not in LABEL_FORMATS:
        raise ValueError(f"label_format must be one of {LABEL_FORMATS}, got {label_format!r}")
    else:
        label_format_for(info)  # rejects JPEG and 16-bit labels
    pixels = read_label_values(path, label_format)
    try:
        return values_to_classes(pixels, label_set, label_format, unknown, source=path)
    except LabelError as error:
        raise DataError(str(error)) from None
