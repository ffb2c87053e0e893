"""Synthesis with a trained CRN: the plain forward pass, or a low-memory one for large outputs.

The plain pass (`model(layout)` in a `tf.function`) materialises, in each of the last modules,
the full-size upsampled features and their concat with the layout: at 1024x2048 the last
module's 148-channel input alone is 1.2 GB in float32, and a graph of the whole network peaks
at about 4.4 GB. The low-memory pass runs the same layers with the same weights, eagerly and
module by module, and computes conv1 of each large module in horizontal bands: each band
upsamples only the feature rows it needs (plus a one-row halo for the 3x3 kernel), concats
them with its layout rows and convolves; the bands are joined into conv1's output (small: 32
channels at 1024p), and the layer norm, conv2 and the rest then run on whole tensors, so the
statistics are the plain pass's. The results equal `model(layout)` to float rounding.
"""
from __future__ import annotations

import weakref
from typing import Sequence

import numpy as np
import tensorflow as tf

from crn_tf.ops import area_downsample

DEFAULT_BAND_BYTES = 64 * 2**20
"""A module is computed in bands when its merged input (upsampled features + layout) would be
larger than this; each band's merged input then stays under it."""

_plain_functions: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def synthesize(
    model,
    layout,
    low_memory: bool = False,
    band_rows: int | None = None,
    band_bytes: int = DEFAULT_BAND_BYTES,
) -> tf.Tensor:
    """Images `(batch, k, height, width, 3)`, float32 in about 0..255, for a one-hot `layout`
    `(batch, height, width, num_classes + 1)`.

    Args:
        model: a `crn_tf.model.CRN`.
        layout: float layout tensor or array.
        low_memory: bool. Run the banded low-memory pass (for 512p/1024p on small machines
            or GPUs) instead of the plain graph. Same output to float rounding.
        band_rows: int. Rows per band in every module after the first (forces banding;
            for tests). Defaults to what keeps each band's input under `band_bytes`.
        band_bytes: int. Size above which a module's merged input is computed in bands.
    """
    layout = tf.convert_to_tensor(layout)
    if not layout.dtype.is_floating:
        layout = tf.cast(layout, tf.float32)
    model._check_layout(layout)
    if low_memory:
        return low_memory_forward(model, layout, band_rows=band_rows, band_bytes=band_bytes)
    function = _plain_functions.get(model)
    if function is None:
        function = tf.function(lambda x: model(x, training=False), reduce_retracing=True)
        _plain_functions[model] = function
    return function(layout)


def low_memory_forward(
    model, layout: tf.Tensor, band_rows: int | None = None, band_bytes: int = DEFAULT_BAND_BYTES
) -> tf.Tensor:
    """`model(layout)`, computed eagerly module by module with banded conv1 in large modules.

    Intermediates are dropped as soon as the next one exists, so the peak is about the
    previous module's features, the current conv1 output and one band.
    """
    if band_rows is not None and band_rows < 1:
        raise ValueError(f"band_rows must be >= 1, got {band_rows}")
    layout = tf.cast(layout, model.compute_dtype)  # (B, H, W, C), as CRN.call
    features = None
    for index, module in enumerate(model.refinement_modules):
        scaled = area_downsample(layout, model.module_sizes[index])  # (B, h_i, w_i, C)
        if features is None:
            features = module(scaled)
            continue
        rows = band_rows or rows_per_band(features, scaled, band_bytes)
        if rows >= scaled.shape[1]:
            features = module([features, scaled])  # small enough: the module's own call
            continue
        x = banded_conv1(module, features, scaled, rows)  # (B, h_i, w_i, d_i)
        features = scaled = None  # free the previous module's features before the big tail
        x = tf.nn.leaky_relu(module.norm1(x), alpha=module.leak)
        x = module.conv2(x)
        features = tf.nn.leaky_relu(module.norm2(x), alpha=module.leak)
        x = None
    return model.to_images(features)


def rows_per_band(features: tf.Tensor, layout: tf.Tensor, band_bytes: int = DEFAULT_BAND_BYTES) -> int:
    """Rows per band keeping one band's merged input (batch x rows x width x (d + C)) under `band_bytes`."""
    batch, _, width, channels = layout.shape
    row_bytes = int(batch or 1) * int(width) * (int(features.shape[-1]) + int(channels)) * features.dtype.size
    return max(1, int(band_bytes) // max(1, row_bytes))


def banded_conv1(module, features: tf.Tensor, layout: tf.Tensor, band_rows: int) -> tf.Tensor:
    """conv1 of a refinement module on [upsample(features), layout], `band_rows` output rows at a time.

    Each band convolves its rows plus the neighbouring row above and below (SAME padding pads
    only beyond those, at the image edges the true zero rows) and keeps its own rows: exactly
    the full convolution's rows.
    """
    height, width = int(layout.shape[1]), int(layout.shape[2])
    bands = []
    for start in range(0, height, band_rows):
        stop = min(start + band_rows, height)
        low, high = max(start - 1, 0), min(stop + 1, height)  # with the 1-row halo
        upsampled = upsample_rows(features, low, high, (height, width), module.align_corners)
        merged = tf.concat([upsampled, tf.cast(layout[:, low:high], upsampled.dtype)], axis=-1)
        out = module.conv1(merged)  # (B, high - low, W, d)
        bands.append(out[:, start - low : stop - low])
        upsampled = merged = out = None
    return tf.concat(bands, axis=1) if len(bands) > 1 else bands[0]


def interpolation_rows(in_size: int, out_size: int, align_corners: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per output row: (lower source row, upper source row, weight of the upper), as TensorFlow's
    ResizeBilinear computes them in float32 (legacy scaler for align_corners, else half-pixel)."""
    if align_corners and out_size > 1:
        scale = np.float32(in_size - 1) / np.float32(out_size - 1)
    else:
        scale = np.float32(in_size) / np.float32(out_size)
    rows = np.arange(out_size, dtype=np.float32)
    source = rows * scale if align_corners else (rows + np.float32(0.5)) * scale - np.float32(0.5)
    source = source.astype(np.float32)
    floor = np.floor(source)
    lower = np.maximum(floor.astype(np.int64), 0)
    upper = np.minimum(np.ceil(source).astype(np.int64), in_size - 1)
    return lower, upper, (source - floor).astype(np.float32)


def upsample_rows(features: tf.Tensor, start: int, stop: int, size: Sequence[int], align_corners: bool = True) -> tf.Tensor:
    """Rows [start, stop) of `upsample_bilinear(features, size, align_corners)`, computing only those.

    Columns are resized by ResizeBilinear itself on the few source rows needed (the height
    kept, so rows map to themselves); rows are then blended with ResizeBilinear's own
    weights, in the same order (columns first, then rows) and in float32 as it does.
    """
    in_height = int(features.shape[1])
    lower, upper, weight = interpolation_rows(in_height, int(size[0]), align_corners)
    lower, upper, weight = lower[start:stop], upper[start:stop], weight[start:stop]
    first, last = int(lower.min()), int(upper.max()) + 1
    source = tf.cast(features[:, first:last], tf.float32)  # (B, last - first, w, d)
    source = tf.raw_ops.ResizeBilinear(
        images=source, size=(last - first, int(size[1])), align_corners=align_corners, half_pixel_centers=not align_corners
    )  # (B, last - first, W, d)
    top = tf.gather(source, lower - first, axis=1)
    bottom = tf.gather(source, upper - first, axis=1)
    rows = top + (bottom - top) * tf.constant(weight.reshape(1, -1, 1, 1))
    return tf.cast(rows, features.dtype)
