"""Synthesis with a trained CRN: the plain forward pass, or a low-memory one for large outputs.

The plain pass (`model(layout)` in a `tf.function`) materialises, in each of the last modules,
the full-size upsampled features and their concat with the layout: at 1024x2048 the last
module's 148-channel input alone is 1.2 GB in float32, and the graph of the 1024p network
peaks at about 5 GB of RSS in float32 (3.2 GB in bfloat16). The low-memory pass runs the same
layers with the same weights, eagerly and module by module, and holds each large module's
activations as horizontal row bands: conv1 upsamples only the feature rows a band needs (plus
a one-row halo for the 3x3 kernel; exactly the rows of the full bilinear upsample), concats
them with the band's layout rows and convolves; conv2 reads each band with one row of its
neighbours; the layer-norm statistics are summed over the bands in float32 and applied by the
layer's own `normalize`; the 1x1 output conv runs per band. The result equals `model(layout)`
to float rounding, at a peak RSS under 2 GB for 1024p in either precision.
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
        model_ref = weakref.ref(model)  # the cache must not keep the model alive
        function = tf.function(lambda x: model_ref()(x, training=False), reduce_retracing=True)
        _plain_functions[model] = function
    return function(layout)


def low_memory_forward(
    model, layout: tf.Tensor, band_rows: int | None = None, band_bytes: int = DEFAULT_BAND_BYTES
) -> tf.Tensor:
    """`model(layout)`, computed eagerly module by module, large modules in row bands.

    A large module's activations are kept as a list of row bands: conv1 reads the upsampled
    features band by band (`banded_conv1`), conv2 reads each band with one row of its
    neighbours (`banded_conv`), the layer-norm statistics are summed over the bands in
    float32 (`banded_moments`) and applied by the layer's own `normalize`, band by band, and
    the output conv runs per band. The full-size layout is cast to the compute dtype one band
    at a time. No full-size temporary of a large module ever exists beside its bands.
    """
    if band_rows is not None and band_rows < 1:
        raise ValueError(f"band_rows must be >= 1, got {band_rows}")
    dtype = model.compute_dtype
    features = None  # a tensor, or a list of row bands after a banded module
    for index, module in enumerate(model.refinement_modules):
        size = tuple(model.module_sizes[index])
        full_size = size == tuple(layout.shape[1:3])
        # As CRN.call: the layout in the compute dtype, area-downsampled to the module's size.
        scaled = layout if full_size else area_downsample(tf.cast(layout, dtype), size)  # (B, h_i, w_i, C)
        if features is None:
            features = module(tf.cast(scaled, dtype))
            continue
        if isinstance(features, list):
            features = join_bands(features)
        rows = band_rows or rows_per_band(features, scaled, band_bytes)
        if rows >= size[0]:
            features = module([features, tf.cast(scaled, dtype)])  # small enough: the module's own call
            continue
        bands = banded_conv1(module, features, scaled, rows)  # [(B, rows, w_i, d_i)]
        features = scaled = None  # free the previous module's features before the big tail
        _normalize_bands(module.norm1, bands, module.leak)
        bands = banded_conv(module.conv2, bands)
        _normalize_bands(module.norm2, bands, module.leak)
        features = bands
    if isinstance(features, list):
        # The 1x1 output conv is per pixel: band by band, then the model's own arrangement.
        outputs = [model.output_conv(tf.cast(band, tf.float32)) for band in features]
        features = None
        return model.arrange_images(join_bands(outputs))
    return model.to_images(features)


def _normalize_bands(norm, bands: list, leak: float) -> None:
    """LReLU(norm(x)) of the whole tensor held as `bands`, in place, band by band."""
    mean, variance = banded_moments(bands)
    for i in range(len(bands)):
        bands[i] = tf.nn.leaky_relu(norm.normalize(bands[i], mean, variance), alpha=leak)


def join_bands(bands: list) -> tf.Tensor:
    """Row bands -> one tensor (the list is emptied as it goes)."""
    if len(bands) == 1:
        return bands.pop()
    joined = tf.concat(bands, axis=1)
    bands.clear()
    return joined


def banded_moments(bands: Sequence[tf.Tensor]) -> tuple[tf.Tensor, tf.Tensor]:
    """Per-sample mean and variance over (H, W, C) of the tensor held as row `bands`, float32,
    (B, 1, 1, 1) each, as `LayerNorm.moments` computes them (the mean, then the mean squared
    deviation from it), with float32 copies one band large."""
    count = float(sum(int(b.shape[1]) for b in bands) * int(bands[0].shape[2]) * int(bands[0].shape[3]))
    total = tf.add_n([tf.reduce_sum(tf.cast(b, tf.float32), axis=[1, 2, 3], keepdims=True) for b in bands])
    mean = total / count
    squares = tf.add_n([
        tf.reduce_sum(tf.math.squared_difference(tf.cast(b, tf.float32), mean), axis=[1, 2, 3], keepdims=True)
        for b in bands
    ])
    return mean, squares / count


def rows_per_band(features: tf.Tensor, layout: tf.Tensor, band_bytes: int = DEFAULT_BAND_BYTES) -> int:
    """Rows per band keeping one band's merged input (batch x rows x width x (d + C)) under `band_bytes`."""
    batch, _, width, channels = layout.shape
    row_bytes = int(batch or 1) * int(width) * (int(features.shape[-1]) + int(channels)) * features.dtype.size
    return max(1, int(band_bytes) // max(1, row_bytes))


def banded_conv1(module, features: tf.Tensor, layout: tf.Tensor, band_rows: int) -> list:
    """conv1 of a refinement module on [upsample(features), layout], as row bands of `band_rows`.

    Each band convolves its rows plus the neighbouring row above and below (SAME padding pads
    only beyond those, at the image edges the true zero rows) and keeps its own rows: exactly
    the full convolution's rows.
    """
    height, width = int(layout.shape[1]), int(layout.shape[2])
    dtype = module.compute_dtype
    # The float32 row blending of `upsample_rows` needs about 4 float32 copies of its rows: do
    # it a few rows at a time so that they stay far smaller than a band.
    blend_rows = max(1, band_rows * features.dtype.size // (4 * 4 * 4))
    bands = []
    for start in range(0, height, band_rows):
        stop = min(start + band_rows, height)
        low, high = max(start - 1, 0), min(stop + 1, height)  # with the 1-row halo
        pieces = [
            upsample_rows(features, a, min(a + blend_rows, high), (height, width), module.align_corners)
            for a in range(low, high, blend_rows)
        ]
        upsampled = join_bands(pieces)  # (B, high - low, W, d_prev)
        merged = tf.concat([upsampled, tf.cast(layout[:, low:high], dtype)], axis=-1)  # (B, rows, W, d_prev + C)
        upsampled = None
        out = module.conv1(merged)  # (B, high - low, W, d)
        bands.append(out[:, start - low : stop - low])
        merged = out = None
    return bands


def banded_conv(conv, bands: list) -> list:
    """A 3x3 SAME convolution of the tensor held as row `bands`, band by band: each band is
    convolved with one row of each neighbour and keeps its own rows (exactly the full
    convolution's). Input bands are released as soon as no output band needs them."""
    outputs = []
    for i in range(len(bands)):
        above = [bands[i - 1][:, -1:]] if i > 0 else []
        below = [bands[i + 1][:, :1]] if i + 1 < len(bands) else []
        out = conv(tf.concat(above + [bands[i]] + below, axis=1) if above or below else bands[i])
        outputs.append(out[:, len(above) : int(out.shape[1]) - len(below)])
        if i > 0:
            bands[i - 1] = None  # its last row was the halo of band i
    bands.clear()
    return outputs


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
