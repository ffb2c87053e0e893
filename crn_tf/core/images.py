"""Turning the generator's float output into saved pictures, as the original does."""
from __future__ import annotations

import math
import os
from typing import Sequence

import numpy as np
from PIL import Image

from crn_tf.core.files import atomic_path


def to_uint8(images) -> np.ndarray:
    """Float pixels (about 0..255) -> uint8: clip to [0, 255], then round to nearest.

    The original's `scipy.misc.toimage(..., cmin=0, cmax=255)` adds 0.5 before its uint8
    cast; truncating instead would shift half the pixels down by one level.
    """
    images = np.asarray(images, dtype=np.float32)
    return np.floor(np.clip(images, 0.0, 255.0) + 0.5).astype(np.uint8)


def image_file_name(stem: str, index: int) -> str:
    """The file of image `index` of a layout: `<stem>.png` for the first, `<stem>_<index>.png` after."""
    return f"{stem}.png" if index == 0 else f"{stem}_{index}.png"


def make_grid(
    images: Sequence[np.ndarray] | np.ndarray, columns: int | None = None, gap: int = 0, fill: int = 0
) -> np.ndarray:
    """Tiles images [n, H, W, C] row-major into one picture (9 -> 3x3: 0 1 2 / 3 4 5 / 6 7 8).

    `columns` defaults to ceil(sqrt(n)); tiles are `gap` pixels apart, and the gaps and any
    empty cells of the last row are `fill`.
    """
    images = np.asarray(images)
    count, height, width, channels = images.shape
    columns = columns or int(math.ceil(math.sqrt(count)))
    rows = int(math.ceil(count / columns))
    grid = np.full((rows * (height + gap) - gap, columns * (width + gap) - gap, channels), fill, dtype=images.dtype)
    for index in range(count):
        row, column = divmod(index, columns)
        top, left = row * (height + gap), column * (width + gap)
        grid[top : top + height, left : left + width] = images[index]
    return grid


def save_image(path: str | os.PathLike, image: np.ndarray, quality: int = 95) -> None:
    """Saves a uint8 (or float 0..255) RGB image; the format follows the extension (.png, .jpg).

    Written to a temporary name first and renamed, so a killed run never leaves half a file.
    """
    array = image if np.asarray(image).dtype == np.uint8 else to_uint8(image)
    extension = os.path.splitext(os.fspath(path))[1]
    options = {"quality": quality} if extension.lower() in (".jpg", ".jpeg") else {}
    with atomic_path(path) as temporary:
        Image.fromarray(np.asarray(array)).save(temporary, **options)


def save_png(path: str | os.PathLike, array: np.ndarray, compress_level: int = 6) -> None:
    """Saves an integer array as it is (uint8 RGB/RGBA/grey, uint16 ids) as a PNG, atomically.

    `compress_level` trades size for speed: 1 for photos written in bulk, 9 for committed files.
    """
    with atomic_path(path) as temporary:
        Image.fromarray(array).save(temporary, compress_level=compress_level)
