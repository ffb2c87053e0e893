"""The segmenter network: a compact U-Net from photos to per-pixel class logits, and its loss.

Encoder levels l = 0..depth-1 work at 1/2^l of the input size with width base_width * 2^l:
two (conv3x3 -> norm -> ReLU) blocks each, a 2x2 max pool between levels. The decoder walks
back up: bilinear upsampling of the deeper features to the skip's size, concatenation with
the skip, two blocks at that level's width. A 1x1 convolution gives the logits. Tensors are
`(batch, height, width, channels)`; any height and width work (the upsampling goes to each
skip's own size, so odd sizes are fine).
"""
from __future__ import annotations

import keras
import tensorflow as tf

NORMS = ("batch", "group")


@keras.saving.register_keras_serializable(package="crn_tf")
class ConvNormReLU(keras.layers.Layer):
    """conv3x3 (no bias) -> BatchNorm or GroupNorm -> ReLU.

    Args:
        filters: int. Output channels.
        norm: str. "batch" (BatchNormalization; fastest on CPU) or "group" (GroupNormalization,
            independent of the batch). Defaults to "batch".
        groups: int. Groups of the GroupNorm (capped at `filters`). Defaults to 8.
    """

    def __init__(self, filters: int, norm: str = "batch", groups: int = 8, **kwargs):
        super().__init__(**kwargs)
        if norm not in NORMS:
            raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")
        self.filters = int(filters)
        self.norm = norm
        self.groups = int(groups)
        self.conv = keras.layers.Conv2D(self.filters, 3, padding="same", use_bias=False, name="conv",
                                        dtype=self.dtype_policy)
        if norm == "batch":
            self.normalization = keras.layers.BatchNormalization(momentum=0.9, name="norm", dtype=self.dtype_policy)
        else:
            self.normalization = keras.layers.GroupNormalization(min(self.groups, self.filters), name="norm",
                                                                 dtype=self.dtype_policy)

    def build(self, input_shape):
        self.conv.build(input_shape)
        self.normalization.build(tuple(input_shape[:-1]) + (self.filters,))
        super().build(input_shape)

    def call(self, x, training=None):
        return tf.nn.relu(self.normalization(self.conv(x), training=training))  # (B, H, W, filters)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.filters,)

    def get_config(self):
        config = super().get_config()
        config.update({"filters": self.filters, "norm": self.norm, "groups": self.groups})
        return config


@keras.saving.register_keras_serializable(package="crn_tf")
class SegmentationUNet(keras.Model):
    """Photo -> class logits: a small U-Net (see the module docstring).

    Args:
        num_classes: int. Classes of the label set (void is not a class: it is ignored by the loss).
        base_width: int. Width of the first level; level l has base_width * 2^l. Defaults to 32.
        depth: int. Levels, the deepest at 1/2^(depth-1) of the input size. Defaults to 4.
        norm: str. "batch" or "group" (see `ConvNormReLU`). Defaults to "batch".

    Input: images float `(batch, height, width, 3)`, RGB 0..255 (the network scales them to -1..1).
    Output: float32 logits `(batch, height, width, num_classes)`.

    Example:
        model = SegmentationUNet(num_classes=19)
        logits = model(tf.zeros([1, 128, 256, 3]))  # (1, 128, 256, 19)
    """

    def __init__(self, num_classes: int, base_width: int = 32, depth: int = 4, norm: str = "batch", **kwargs):
        super().__init__(**kwargs)
        if int(num_classes) < 1 or int(base_width) < 1 or int(depth) < 1:
            raise ValueError(f"num_classes, base_width and depth must be >= 1, got {num_classes}, {base_width}, {depth}")
        if norm not in NORMS:
            raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")
        self.num_classes = int(num_classes)
        self.base_width = int(base_width)
        self.depth = int(depth)
        self.norm = norm
        widths = self.widths
        block = dict(norm=norm, dtype=self.dtype_policy)
        # One attribute per block (down0_1, ..., up0_2): tf.train.Checkpoint follows layer attributes,
        # but not the Keras-tracked lists of Keras 3.
        for level, width in enumerate(widths):
            for i in (1, 2):
                setattr(self, f"down{level}_{i}", ConvNormReLU(width, name=f"down{level}_{i}", **block))
                if level < self.depth - 1:
                    setattr(self, f"up{level}_{i}", ConvNormReLU(width, name=f"up{level}_{i}", **block))
        self.pool = keras.layers.MaxPooling2D(2, name="pool", dtype=self.dtype_policy)
        self.head = keras.layers.Conv2D(self.num_classes, 1, name="logits", dtype=self.dtype_policy)

    def encoder_blocks(self, level: int) -> list[ConvNormReLU]:
        """The two blocks of encoder level `level`."""
        return [getattr(self, f"down{level}_{i}") for i in (1, 2)]

    def decoder_blocks(self, level: int) -> list[ConvNormReLU]:
        """The two blocks of decoder level `level` (0..depth-2)."""
        return [getattr(self, f"up{level}_{i}") for i in (1, 2)]

    @property
    def widths(self) -> list[int]:
        """Feature width of each level, the full-size level first."""
        return [self.base_width * 2**level for level in range(self.depth)]

    def build(self, input_shape=(None, None, None, 3)):
        shape = (None, None, None, 3)
        for level in range(self.depth):
            for block in self.encoder_blocks(level):
                block.build(shape)
                shape = block.compute_output_shape(shape)
        for level in reversed(range(self.depth - 1)):
            shape = (None, None, None, self.widths[level] + self.widths[level + 1])
            for block in self.decoder_blocks(level):
                block.build(shape)
                shape = block.compute_output_shape(shape)
        self.head.build(shape)
        self.built = True

    def call(self, images, training=None):
        x = tf.cast(images, self.compute_dtype) / 127.5 - 1.0  # (B, H, W, 3) in -1..1
        skips = []
        for level in range(self.depth):
            if level:
                x = self.pool(x)  # (B, H / 2^level, W / 2^level, .)
            for block in self.encoder_blocks(level):
                x = block(x, training=training)
            skips.append(x)  # (B, H / 2^level, W / 2^level, widths[level])
        for level in reversed(range(self.depth - 1)):
            skip = skips[level]
            x = tf.cast(tf.image.resize(x, tf.shape(skip)[1:3], method="bilinear"), skip.dtype)
            x = tf.concat([x, skip], axis=-1)  # (B, h, w, widths[level + 1] + widths[level])
            for block in self.decoder_blocks(level):
                x = block(x, training=training)
        return tf.cast(self.head(x), tf.float32)  # (B, H, W, num_classes)

    def get_config(self):
        config = super().get_config()
        config.update({"num_classes": self.num_classes, "base_width": self.base_width, "depth": self.depth,
                       "norm": self.norm})
        return config


def masked_cross_entropy(logits: tf.Tensor, layout: tf.Tensor, class_weights: tf.Tensor | None = None) -> tf.Tensor:
    """Mean softmax cross-entropy over the non-void pixels of a batch (a scalar, float32).

    `layout` is the data pipeline's one-hot `(B, H, W, C + 1)` with void last: a void pixel has
    no class channel set, so its cross-entropy term is zero and it is left out of the count.
    With `class_weights` [C] each pixel's term is weighted by its class's weight and the sum is
    divided by the sum of the weights (a weighted mean).
    """
    num_classes = logits.shape[-1]
    target = tf.cast(layout[..., :num_classes], tf.float32)  # (B, H, W, C), all zero on void
    log_probabilities = tf.nn.log_softmax(tf.cast(logits, tf.float32), axis=-1)
    per_pixel = -tf.reduce_sum(target * log_probabilities, axis=-1)  # (B, H, W)
    if class_weights is None:
        weight = tf.reduce_sum(target, axis=-1)  # 1 on class pixels, 0 on void
    else:
        weight = tf.reduce_sum(target * tf.cast(class_weights, tf.float32), axis=-1)
    return tf.reduce_sum(per_pixel * weight) / tf.maximum(tf.reduce_sum(weight), 1e-6)
