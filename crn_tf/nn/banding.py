"""Row bands: a refinement module's large tensors computed and held as horizontal strips.

The building blocks of `crn_tf.nn.inference`'s low-memory pass. A tensor `(B, H, W, C)` is held
as a list of row bands `(B, rows, W, C)`; a 3x3 SAME convolution of it is computed band by
band, each band reading one row of each neighbour (the halo) and keeping its own rows, which
are exactly the full convolution's. Every function works eagerly and inside a `tf.function`;
in a graph, a `BandOrder` makes each band's inputs wait for the previous band's result, so that
the executor computes one band at a time (as eager execution does) instead of starting every
band at once and holding them all.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import tensorflow as tf


class BandOrder:
    """One band after another in a graph: `gate(x)` passes `x` on (an identity, no copy) only
    once the tensor last passed to `done()` exists, so whatever is computed from it waits.

    The control dependency sits on the gate alone, not on the band's compute ops, which keeps
    them fusable by TensorFlow's remapper (a convolution with a control input is not fused
    with its bias and activation). No-op when executing eagerly (ops run in program order).
    """

    def __init__(self):
        self._last: tf.Tensor | None = None

    def gate(self, tensor: tf.Tensor) -> tf.Tensor:
        if self._last is None or tf.executing_eagerly():
            return tensor
        with tf.control_dependencies([self._last]):
            return tf.identity(tensor)

    def done(self, tensor: tf.Tensor) -> tf.Tensor:
        self._last = tensor
        return tensor


def join_bands(bands: list) -> tf.Tensor:
    """Row bands -> one tensor (the list is emptied as it goes)."""
    if len(bands) == 1:
        return bands.pop()
    joined = tf.concat(bands, axis=1)
    bands.clear()
    return joined


def rows_per_band(features: tf.Tensor, layout: tf.Tensor, band_bytes: int) -> int:
    """Rows per band keeping one band's merged input (batch x rows x width x (d + C)) under
    `band_bytes`; an unknown batch (an exported signature) counts as 1."""
    batch, _, width, channels = layout.shape
    row_bytes = int(batch or 1) * int(width) * (int(features.shape[-1]) + int(channels)) * features.dtype.size
    return max(1, int(band_bytes) // max(1, row_bytes))


def banded_moments(bands: Sequence[tf.Tensor], order: BandOrder) -> tuple[tf.Tensor, tf.Tensor]:
    """Per-sample mean and variance over (H, W, C) of the tensor held as row `bands`, float32,
    (B, 1, 1, 1) each, as `LayerNorm.moments` computes them (the mean, then the mean squared
    deviation from it), with float32 copies one band large."""
    count = float(sum(int(b.shape[1]) for b in bands) * int(bands[0].shape[2]) * int(bands[0].shape[3]))
    sums = []
    for band in bands:
        sums.append(order.done(tf.reduce_sum(tf.cast(order.gate(band), tf.float32), axis=[1, 2, 3], keepdims=True)))
    mean = tf.add_n(sums) / count
    squares = []
    for band in bands:
        deviation = tf.math.squared_difference(tf.cast(order.gate(band), tf.float32), mean)
        squares.append(order.done(tf.reduce_sum(deviation, axis=[1, 2, 3], keepdims=True)))
    return mean, tf.add_n(squares) / count


def map_bands(function: Callable[[tf.Tensor], tf.Tensor], bands: list) -> None:
    """bands[i] = function(bands[i]) for a band-to-band `function`, in place. Not gated: each
    output replaces its input, so whatever order the executor picks holds at most one extra
    band per thread, and `function` (the fused norm conv) stays fusable."""
    for i in range(len(bands)):
        bands[i] = function(bands[i])


def banded_conv1(
    module, conv: Callable[[tf.Tensor], tf.Tensor], features: list, layout: tf.Tensor, band_rows: int, order: BandOrder
) -> list:
    """`conv` (the module's conv1) on [upsample(features), layout], as row bands of `band_rows`.

    `features` is the previous module's output as a list of row bands (one band if it was
    computed whole); each is released (set to None) once no later band needs its rows. Each
    band convolves its rows plus the neighbouring row above and below (SAME padding pads only
    beyond those, at the image edges the true zero rows) and keeps its own rows: exactly the
    full convolution's.
    """
    height, width = int(layout.shape[1]), int(layout.shape[2])
    starts = np.cumsum([0] + [int(b.shape[1]) for b in features])  # first row of each feature band
    lower, upper, _ = interpolation_rows(int(starts[-1]), height, module.align_corners)
    # The row blend holds about 3 float32 copies of the rows it makes: a band's rows are blended
    # a few at a time (in order), so that those copies together stay under a band's size.
    channels = int(features[0].shape[-1])
    blend_rows = max(2, band_rows * (channels + int(layout.shape[-1])) * features[0].dtype.size // (3 * 4 * channels))
    bands = []
    for start in range(0, height, band_rows):
        stop = min(start + band_rows, height)
        low, high = max(start - 1, 0), min(stop + 1, height)  # with the 1-row halo
        first, last = int(lower[low:high].min()), int(upper[low:high].max()) + 1
        source = feature_rows(features, starts, first, last, order.gate)  # (B, last - first, w, d_prev)
        columns = resize_columns(source, width, module.align_corners)  # (B, last - first, W, d_prev) float32
        pieces, piece_order = [], BandOrder()
        for a in range(low, high, blend_rows):
            piece = blend_rows_of(piece_order.gate(columns), first, int(starts[-1]), a, min(a + blend_rows, high),
                                  height, module.align_corners, source.dtype)
            pieces.append(piece_order.done(piece))
        upsampled = join_bands(pieces)  # (B, high - low, W, d_prev)
        merged = tf.concat([upsampled, tf.cast(order.gate(layout)[:, low:high], module.compute_dtype)], axis=-1)
        out = conv(merged)  # (B, high - low, W, d) from (B, high - low, W, d_prev + C)
        bands.append(order.done(out[:, start - low : stop - low]))
        needed = int(lower[max(stop - 1, 0)])  # the first feature row a later band may read
        for j in range(len(features)):
            if starts[j + 1] <= needed:
                features[j] = None
    features.clear()
    return bands


def feature_rows(
    bands: Sequence[tf.Tensor], starts: np.ndarray, first: int, last: int, gate: Callable = lambda band: band
) -> tf.Tensor:
    """Rows [first, last) of the tensor held as row `bands` (band j starts at row starts[j]),
    each band read through `gate` (a `BandOrder.gate`)."""
    parts = []
    for j, band in enumerate(bands):
        a, b = max(first, int(starts[j])), min(last, int(starts[j + 1]))
        if a < b:
            band = gate(band)
            parts.append(band if (a, b) == (starts[j], starts[j + 1]) else band[:, a - int(starts[j]) : b - int(starts[j])])
    return parts[0] if len(parts) == 1 else tf.concat(parts, axis=1)


def banded_conv(conv, bands: list, order: BandOrder) -> list:
    """A 3x3 SAME convolution of the tensor held as row `bands`, band by band: each band is
    convolved with one row of each neighbour and keeps its own rows (exactly the full
    convolution's). Input bands are released as soon as no output band needs them."""
    outputs = []
    for i in range(len(bands)):
        above = [order.gate(bands[i - 1])[:, -1:]] if i > 0 else []
        below = [order.gate(bands[i + 1])[:, :1]] if i + 1 < len(bands) else []
        band = order.gate(bands[i])
        out = conv(tf.concat(above + [band] + below, axis=1) if above or below else band)
        outputs.append(order.done(out[:, len(above) : int(out.shape[1]) - len(below)]))
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
    """Rows [start, stop) of `upsample_bilinear(features, size, align_corners)`, computing only those."""
    in_height = int(features.shape[1])
    lower, upper, _ = interpolation_rows(in_height, int(size[0]), align_corners)
    first, last = int(lower[start:stop].min()), int(upper[start:stop].max()) + 1
    columns = resize_columns(features[:, first:last], int(size[1]), align_corners)
    return blend_rows_of(columns, first, in_height, start, stop, int(size[0]), align_corners, features.dtype)


def resize_columns(source: tf.Tensor, width: int, align_corners: bool) -> tf.Tensor:
    """ResizeBilinear of `source` to `width` columns, its height kept (rows map to themselves):
    the first half of the bilinear upsample, in float32 as ResizeBilinear computes it."""
    return tf.raw_ops.ResizeBilinear(
        images=source, size=(int(source.shape[1]), int(width)), align_corners=align_corners,
        half_pixel_centers=not align_corners,
    )


def blend_rows_of(
    columns: tf.Tensor, first: int, in_height: int, start: int, stop: int, out_height: int, align_corners: bool, dtype
) -> tf.Tensor:
    """Rows [start, stop) of the bilinear upsample of a tensor `in_height` rows high to
    `out_height`, from `columns`: its rows [first, first + rows) already resized to the output
    width (`resize_columns`). Rows are blended with ResizeBilinear's own weights and formula,
    top + (bottom - top) * weight in float32, then cast to `dtype`."""
    lower, upper, weight = interpolation_rows(in_height, out_height, align_corners)
    top = tf.gather(columns, lower[start:stop] - first, axis=1)
    bottom = tf.gather(columns, upper[start:stop] - first, axis=1)
    rows = top + (bottom - top) * tf.constant(weight[start:stop].reshape(1, -1, 1, 1))
    return tf.cast(rows, dtype)
