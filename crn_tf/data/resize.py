"""MATLAB's `imresize` (bicubic) for photos: how the authors made their training photos.

The original's training photos come from `extract_cityscapes_input_data/extract256full.m`
(also 512/1024): `imwrite(imresize(im2double(imread(f)), [256 512]), ...)`. MATLAB's
`imresize` default is bicubic (Keys' cubic, a = -0.5) and, when shrinking, antialiased: the
kernel is widened by 1/scale (h(x) = scale * cubic(scale * x)). Output pixel x (1-based)
samples the input at u = x / scale + 0.5 (1 - 1/scale); the taps are floor(u - width/2) + 0 ..
ceil(width) + 1, mirrored symmetrically at the borders (..., 2, 1, 1, 2, ..., n, n, n-1, ...),
and their weights normalised to sum 1. Each dimension is one weight matrix [out, in]; the
dimension with the smaller scale goes first. `imwrite` then clips the double result to [0, 1]
and rounds it to 8 bits (half away from zero).

Enlarging (scale > 1) is the same code with the plain kernel (width 4): MATLAB's `imresize`
bicubic when enlarging, where antialiasing has no effect.

This module builds the matrices in NumPy (float64); `imresize` applies them in NumPy, and the
tf.data pipeline (`crn_tf.data.decode`) applies the same matrices as two float32 matmuls.
"""
from __future__ import annotations

import functools

import numpy as np

from crn_tf.core.images import to_uint8

MATLAB_BICUBIC = "matlab-bicubic"
AREA = "area"
PHOTO_RESIZE_METHODS = (MATLAB_BICUBIC, AREA)
"""`--photo-resize` choices: the original's MATLAB bicubic (default) or area averaging."""
DEFAULT_PHOTO_RESIZE = MATLAB_BICUBIC

PHOTO_RESIZE_HELP = (
    "how photos are resized to the training size: matlab-bicubic (the original's MATLAB imresize: bicubic, "
    "antialiased when shrinking, rounded to 8 bits as imwrite) or area (area averaging when shrinking, "
    "bilinear when enlarging, not rounded)")


def check_photo_resize(method: str) -> str:
    """`method` if it is a known photo resize, else ValueError naming the choices."""
    if method not in PHOTO_RESIZE_METHODS:
        raise ValueError(f"photo resize must be one of {', '.join(PHOTO_RESIZE_METHODS)}; got {method!r}")
    return method


def cubic(x: np.ndarray) -> np.ndarray:
    """Keys' cubic convolution kernel with a = -0.5 (MATLAB's `cubic`), support [-2, 2]."""
    ax = np.abs(x)
    ax2, ax3 = ax**2, ax**3
    return ((1.5 * ax3 - 2.5 * ax2 + 1) * (ax <= 1)
            + (-0.5 * ax3 + 2.5 * ax2 - 4 * ax + 2) * ((ax > 1) & (ax <= 2)))


@functools.lru_cache(maxsize=64)
def resize_matrix(in_length: int, out_length: int) -> np.ndarray:
    """The [out_length, in_length] float64 matrix of MATLAB's bicubic `imresize` along one axis.

    Row i holds output pixel i's normalised weights; mirrored taps add into the border
    columns. Cached per (in, out) length; the array is read-only.
    """
    if in_length < 1 or out_length < 1:
        raise ValueError(f"lengths must be positive, got {in_length} -> {out_length}")
    scale = out_length / in_length
    width = 4.0 / scale if scale < 1 else 4.0
    x = np.arange(1, out_length + 1, dtype=np.float64)
    u = x / scale + 0.5 * (1 - 1 / scale)
    left = np.floor(u - width / 2)
    taps = int(np.ceil(width)) + 2
    index = left[:, None] + np.arange(taps)[None, :]  # 1-based input positions [out, taps]
    distance = u[:, None] - index
    weights = scale * cubic(scale * distance) if scale < 1 else cubic(distance)
    weights /= weights.sum(axis=1, keepdims=True)
    mirror = np.concatenate([np.arange(in_length), np.arange(in_length)[::-1]])  # symmetric padding
    columns = mirror[(index.astype(np.int64) - 1) % (2 * in_length)]
    matrix = np.zeros((out_length, in_length))
    np.add.at(matrix, (np.repeat(np.arange(out_length), taps), columns.ravel()), weights.ravel())
    matrix.setflags(write=False)
    return matrix


def axis_order(in_size: tuple[int, int], out_size: tuple[int, int]) -> tuple[int, int]:
    """The axes (0 = rows, 1 = columns) in MATLAB's order: the smaller scale first, rows on a tie."""
    scales = (out_size[0] / in_size[0], out_size[1] / in_size[1])
    return (1, 0) if scales[1] < scales[0] else (0, 1)


def imresize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """[h, w] or [h, w, c] (any scale, e.g. 0..255) -> float64 [H, W(, c)], not clipped or rounded."""
    result = np.asarray(image, dtype=np.float64)
    in_size = result.shape[:2]
    for axis in axis_order(in_size, size):
        if result.shape[axis] == size[axis]:
            continue  # scale 1: MATLAB's weights are the identity
        matrix = resize_matrix(result.shape[axis], int(size[axis]))
        result = np.moveaxis(np.tensordot(matrix, np.moveaxis(result, axis, 0), axes=1), 0, axis)
    return result


def imresize_uint8(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """uint8 photo [h, w, 3] -> uint8 [H, W, 3] as the original's `imwrite(imresize(im2double(...)))`:
    clipped to [0, 255] and rounded half up (half away from zero, the values being >= 0)."""
    if tuple(np.shape(image)[:2]) == tuple(size):
        return np.asarray(image, dtype=np.uint8)
    return to_uint8(imresize(image, size))


def resize_photo_array(photo: np.ndarray, size: tuple[int, int], method: str = DEFAULT_PHOTO_RESIZE) -> np.ndarray:
    """uint8 photo [h, w, 3] -> uint8 [H, W, 3] outside the tf.data pipeline (demo's reference photos,
    evaluate's real photos): "matlab-bicubic" by `imresize_uint8`; "area" by PIL's box filter
    (exact area averaging) when shrinking both axes, else PIL's antialiased bilinear, as the pipeline."""
    check_photo_resize(method)
    if tuple(photo.shape[:2]) == tuple(size):
        return np.asarray(photo, dtype=np.uint8)
    if method == MATLAB_BICUBIC:
        return imresize_uint8(photo, size)
    from PIL import Image

    shrink = photo.shape[0] >= size[0] and photo.shape[1] >= size[1]
    resample = Image.Resampling.BOX if shrink else Image.Resampling.BILINEAR
    return np.asarray(Image.fromarray(np.asarray(photo, dtype=np.uint8)).resize((size[1], size[0]), resample))
