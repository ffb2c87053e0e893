"""The building blocks of a refinement module: CRN's layer norm and the module itself."""
from __future__ import annotations

import keras
import tensorflow as tf

from crn_tf.ops import upsample_bilinear


def fused_affine_leaky_relu_applies(x: tf.Tensor) -> bool:
    """Whether `affine_leaky_relu_1x1` is the faster way here: bfloat16, batch 1, inside a
    tf.function (where TensorFlow's remapper fuses it), on a machine without GPUs."""
    return (
        x.dtype == tf.bfloat16
        and x.shape.rank == 4
        and x.shape[0] == 1
        and not tf.executing_eagerly()
        and not tf.config.list_logical_devices("GPU")
    )


GROUP_SIZE = 64
"""Channels per group of the fused affine + LReLU convolution."""


def affine_leaky_relu_1x1(x: tf.Tensor, scale: tf.Tensor, shift: tf.Tensor, leak: float) -> tf.Tensor:
    """max(leak * y, y) for y = x * scale + shift (per channel, batch 1), as ONE oneDNN primitive.

    On CPUs TensorFlow's bfloat16 elementwise kernels take three slow passes for the multiply,
    the add and the LReLU; written as a 1x1 convolution with the diagonal kernel diag(scale)
    plus a bias, the remapper fuses all three into one AMX/AVX-512 convolution (the extra C^2
    multiply-adds per pixel are mostly by zero and cost less than the passes they replace). The
    result is x * scale + shift accumulated in float32 and rounded once: the same maths.
    """
    channels = int(x.shape[-1])
    # A grouped conv of 64-channel groups (block-diagonal; each block diagonal) does 64 instead
    # of C multiply-adds per output: output channel o reads input o % n of its group.
    n = GROUP_SIZE if channels % GROUP_SIZE == 0 else channels
    kernel = tf.tile(tf.eye(n, dtype=x.dtype), (1, channels // n)) * tf.cast(tf.reshape(scale, (1, channels)), x.dtype)
    y = tf.nn.conv2d(x, kernel[tf.newaxis, tf.newaxis], 1, "VALID")  # kernel (1, 1, n, C)
    y = tf.nn.bias_add(y, tf.cast(tf.reshape(shift, [-1]), x.dtype))
    return tf.nn.leaky_relu(y, alpha=leak)


@keras.saving.register_keras_serializable(package="crn_tf")
class LayerNorm(keras.layers.Layer):
    """Layer norm as in the original (TF1 slim `layer_norm` on NHWC): per sample, mean and
    variance over (H, W, C) together, then a per-channel scale `gamma` and shift `beta`.

    Not Keras' `LayerNormalization(axis=[1, 2, 3])`, whose gamma would be H x W x C. The
    statistics are one whole-tensor reduction per sample, computed in float32 even under a
    mixed-precision policy; the normalisation is then a single per-channel multiply-add.

    Args:
        epsilon: float. Added to the variance. Defaults to 1e-12, as the original.

    Call with `leak=a` to also apply LReLU max(a * y, y) (the refinement module's order: conv,
    norm, LReLU); for inference in bfloat16 graphs on CPU the two then run as one fused op.
    """

    def __init__(self, epsilon: float = 1e-12, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = epsilon

    def build(self, input_shape):
        channels = int(input_shape[-1])
        # autocast=False: under a mixed policy gamma and beta are read in float32 like the
        # statistics (Keras would otherwise round them to bfloat16/float16 first).
        self.gamma = self.add_weight(name="gamma", shape=(channels,), initializer="ones", autocast=False)
        self.beta = self.add_weight(name="beta", shape=(channels,), initializer="zeros", autocast=False)
        super().build(input_shape)

    def call(self, x, leak=None, training=None):
        # x: (batch, height, width, channels). The fused LReLU form is for inference only: in a
        # training step its backward pass (two 1x1 convolutions) costs more than it saves.
        return self.normalize(x, *self.moments(x), leak=leak, fuse=not training)

    @staticmethod
    def moments(x):
        """Per-sample mean and variance over (H, W, C), float32, each (B, 1, 1, 1)."""
        return tf.nn.moments(tf.cast(x, tf.float32), axes=[1, 2, 3], keepdims=True)

    def normalize(self, x, mean, variance, leak=None, fuse: bool = False):
        """(x - mean) / sqrt(variance + epsilon) * gamma + beta, as one per-channel multiply-add,
        then LReLU max(leak * y, y) if `leak` is given (with `fuse`, as one fused op where
        `fused_affine_leaky_relu_applies`).

        Separate from `moments` so that a caller may compute the statistics another way (in
        bands, `crn_tf.inference`) and still apply exactly this layer's normalisation.
        """
        scale = tf.cast(self.gamma, tf.float32) * tf.math.rsqrt(variance + self.epsilon)  # (B, 1, 1, C)
        shift = tf.cast(self.beta, tf.float32) - mean * scale
        if leak is not None and fuse and fused_affine_leaky_relu_applies(x):
            return affine_leaky_relu_1x1(x, scale, shift, leak)
        y = x * tf.cast(scale, x.dtype) + tf.cast(shift, x.dtype)
        return y if leak is None else tf.nn.leaky_relu(y, alpha=leak)

    def get_config(self):
        config = super().get_config()
        config.update({"epsilon": self.epsilon})
        return config


@keras.saving.register_keras_serializable(package="crn_tf")
class RefinementModule(keras.layers.Layer):
    """One CRN refinement module: [upsample(features), layout] -> (conv3x3 -> layer norm -> LReLU) x 2.

    The first module of the cascade takes the layout alone. Otherwise the previous module's
    features are upsampled bilinearly (x2) to the layout's size and concatenated before it,
    features first, as in the original. Convolutions have no bias (the norm carries the shift).

    Args:
        filters: int. Feature width d_i of this module.
        align_corners: bool. Bilinear upsampling with corners aligned, as the original.
            `False` uses half-pixel centres (a documented departure). Defaults to True.
        leak: float. LReLU slope, max(leak * x, x). Defaults to 0.2.
    """

    def __init__(self, filters: int, align_corners: bool = True, leak: float = 0.2, **kwargs):
        super().__init__(**kwargs)
        self.filters = int(filters)
        self.align_corners = bool(align_corners)
        self.leak = float(leak)
        conv_args = dict(padding="same", use_bias=False, kernel_initializer="glorot_uniform", dtype=self.dtype_policy)
        self.conv1 = keras.layers.Conv2D(self.filters, 3, name="conv1", **conv_args)
        self.norm1 = LayerNorm(name="norm1", dtype=self.dtype_policy)
        self.conv2 = keras.layers.Conv2D(self.filters, 3, name="conv2", **conv_args)
        self.norm2 = LayerNorm(name="norm2", dtype=self.dtype_policy)

    def build(self, input_shape):
        if isinstance(input_shape, (list, tuple)) and isinstance(input_shape[0], (list, tuple)):
            features_shape, layout_shape = input_shape
            in_channels = int(features_shape[-1]) + int(layout_shape[-1])
            shape = tuple(layout_shape[:-1]) + (in_channels,)
        else:
            shape = tuple(input_shape)
        self.conv1.build(shape)
        self.norm1.build(shape[:-1] + (self.filters,))
        self.conv2.build(shape[:-1] + (self.filters,))
        self.norm2.build(shape[:-1] + (self.filters,))
        super().build(input_shape)

    def merge_inputs(self, inputs):
        """The module's input tensor: the layout, or [upsampled features, layout] concatenated."""
        if not isinstance(inputs, (list, tuple)):
            return inputs
        features, layout = inputs
        # features: (B, h, w, d_prev) -> (B, 2h, 2w, d_prev); layout: (B, 2h, 2w, C)
        size = tuple(layout.shape[1:3]) if None not in layout.shape[1:3] else tf.shape(layout)[1:3]
        upsampled = upsample_bilinear(features, size, align_corners=self.align_corners)
        return tf.concat([upsampled, tf.cast(layout, upsampled.dtype)], axis=-1)

    def call(self, inputs):
        x = self.merge_inputs(inputs)  # (B, H, W, d_prev + C)
        x = self.norm1(self.conv1(x), leak=self.leak)  # LReLU(norm(conv(x))): (B, H, W, d)
        return self.norm2(self.conv2(x), leak=self.leak)  # (B, H, W, d)

    def get_config(self):
        config = super().get_config()
        config.update({"filters": self.filters, "align_corners": self.align_corners, "leak": self.leak})
        return config
