"""Resampling ops shared by the generator and the diversity loss, as the original computes them.

Tensors are NHWC: `(batch, height, width, channels)`.
"""
from __future__ import annotations

import tensorflow as tf


def _static_hw(x: tf.Tensor) -> tuple[int, int]:
    height, width = x.shape[1], x.shape[2]
    if height is None or width is None:
        shape = tf.shape(x)
        return shape[1], shape[2]
    return int(height), int(width)


def area_downsample(x: tf.Tensor, size: tuple[int, int]) -> tf.Tensor:
    """Area-averages `x` [B, H, W, C] down to `size` = (h, w).

    For integer factors this is the mean of each f x f block (an average pool with stride f),
    so a chain of halvings equals one direct resize, as in the original. Other ratios fall
    back to `tf.image.resize(method="area")`.
    """
    height, width = _static_hw(x)
    out_h, out_w = int(size[0]), int(size[1])
    if isinstance(height, int) and (height, width) == (out_h, out_w):
        return x
    if isinstance(height, int) and height % out_h == 0 and width % out_w == 0:
        factor_h, factor_w = height // out_h, width // out_w
        return tf.nn.avg_pool2d(x, (factor_h, factor_w), (factor_h, factor_w), "VALID")
    return tf.cast(tf.image.resize(x, (out_h, out_w), method="area"), x.dtype)


def upsample_bilinear(x: tf.Tensor, size: tuple[int, int], align_corners: bool = True) -> tf.Tensor:
    """Bilinear resize of `x` [B, H, W, C] to `size`, keeping the dtype.

    `align_corners=True` is the original's `tf.image.resize_bilinear(..., align_corners=True)`:
    corner pixels map to corner pixels, a source step of (H-1)/(h-1). `False` uses
    half-pixel centres (today's `tf.image.resize` default), a documented departure.
    """
    if all(isinstance(v, int) for v in size):
        size = (int(size[0]), int(size[1]))
    if align_corners:
        resized = tf.raw_ops.ResizeBilinear(images=x, size=size, align_corners=True, half_pixel_centers=False)
    else:
        resized = tf.raw_ops.ResizeBilinear(images=x, size=size, align_corners=False, half_pixel_centers=True)
    return tf.cast(resized, x.dtype)
