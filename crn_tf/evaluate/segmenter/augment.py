"""Training-time augmentation of the segmenter: seeded flips, and photometric jitter (blur, gain, contrast).

A segmenter that has seen only sharp, clean photos does not transfer to soft or tinted images (on
the synthetic city, real photos shrunk 2x and enlarged again lose three quarters of its mIoU), so
it would under-read synthesized images for reasons other than their layout. `--augment
photometric` trains it on photos that are blurred by a random factor and jittered in brightness,
per-channel gain and contrast. Every draw is stateless: the same seed and step give the same batch.
"""
from __future__ import annotations

import tensorflow as tf

from crn_tf.evaluate.segmenter.options import MAX_BLUR_FACTOR

AUGMENTATIONS = ("none", "photometric")

GAIN_RANGE = (0.75, 1.25)  # brightness, per image
CHANNEL_GAIN_RANGE = (0.85, 1.15)  # tint, per image and channel
CONTRAST_RANGE = (0.7, 1.3)  # about the image's mean, per image


def flip_half(images: tf.Tensor, layouts: tf.Tensor, seed: tf.Tensor, step: tf.Tensor):
    """Mirrors a seeded random half of the batch left-right (the same draw for a given seed and step)."""
    coin = tf.random.stateless_uniform(tf.shape(images)[:1], seed=tf.stack([seed, step])) < 0.5  # (B,)
    flip = coin[:, None, None, None]
    return (tf.where(flip, tf.reverse(images, axis=[2]), images),
            tf.where(flip, tf.reverse(layouts, axis=[2]), layouts))


def soften(images: tf.Tensor, factor: tf.Tensor) -> tf.Tensor:
    """Area-shrinks (B, H, W, 3) images by `factor` (>= 1) and enlarges them back bilinearly."""
    size = tf.shape(images)[1:3]
    small = tf.maximum(tf.cast(tf.round(tf.cast(size, tf.float32) / factor), tf.int32), 1)
    return tf.image.resize(tf.image.resize(images, small, method="area"), size, method="bilinear")


def photometric(images: tf.Tensor, gain: tf.Tensor, contrast: tf.Tensor) -> tf.Tensor:
    """`clip(mean + contrast * (gain * x - mean), 0, 255)` per image; gain (B, 3), contrast (B,), x 0..255.

    `mean` is each gained image's mean over pixels and channels."""
    gained = images * gain[:, None, None, :]
    mean = tf.reduce_mean(gained, axis=[1, 2, 3], keepdims=True)
    return tf.clip_by_value(mean + contrast[:, None, None, None] * (gained - mean), 0.0, 255.0)


def photometric_jitter(images: tf.Tensor, seed: tf.Tensor, step: tf.Tensor,
                       max_blur: float = MAX_BLUR_FACTOR) -> tf.Tensor:
    """Seeded random blur (one factor in [1, max_blur] per batch, half of the batches), per-image gain and contrast."""
    batch = tf.shape(images)[:1]
    key = tf.stack([seed, step + (1 << 40)])  # a stream apart from the flips'
    draws = tf.random.stateless_uniform([2], seed=key)  # whether to blur, and by how much
    factor = 1.0 + draws[1] * (max_blur - 1.0)
    images = tf.cond(draws[0] < 0.5, lambda: soften(images, factor), lambda: images)
    keys = tf.random.experimental.stateless_split(key, 3)
    brightness = tf.random.stateless_uniform(batch, keys[0], *GAIN_RANGE)
    tint = tf.random.stateless_uniform(tf.concat([batch, [3]], 0), keys[1], *CHANNEL_GAIN_RANGE)
    contrast = tf.random.stateless_uniform(batch, keys[2], *CONTRAST_RANGE)
    return photometric(images, brightness[:, None] * tint, contrast)
