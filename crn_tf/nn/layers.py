"""The building blocks of a refinement module: CRN's layer norm and the module itself."""
from __future__ import annotations

import keras
import tensorflow as tf

from crn_tf.nn.conv import Conv3x3
from crn_tf.nn.ops import upsample_bilinear


@keras.saving.register_keras_serializable(package="crn_tf")
class LayerNorm(keras.layers.Layer):
    """Layer norm as in the original (TF1 slim `layer_norm` on NHWC): per sample, mean and
    variance over (H, W, C) together, then a per-channel scale `gamma` and shift `beta`.

    Not Keras' `LayerNormalization(axis=[1, 2, 3])`, whose gamma would be H x W x C. The
    statistics are one whole-tensor reduction per sample, computed in float32 even under a
    mixed-precision policy; the normalisation is then a single per-channel multiply-add.

    Args:
        epsilon: float. Added to the variance. Defaults to 1e-12, as the original.
    """

    def __init__(self, epsilon: float = 1e-12, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = epsilon

    def build(self, input_shape):
        channels = int(input_shape[-1])
        # float32 and autocast=False: gamma and beta are kept and read in float32 like the
        # statistics under every policy (Keras would otherwise round them to bfloat16/float16).
        self.gamma = self.add_weight(name="gamma", shape=(channels,), initializer="ones", dtype="float32", autocast=False)
        self.beta = self.add_weight(name="beta", shape=(channels,), initializer="zeros", dtype="float32", autocast=False)
        super().build(input_shape)

    def call(self, x):
        return self.normalize(x, *self.moments(x))  # x: (batch, height, width, channels)

    @staticmethod
    def moments(x):
        """Per-sample mean and variance over (H, W, C), float32, each (B, 1, 1, 1)."""
        return tf.nn.moments(tf.cast(x, tf.float32), axes=[1, 2, 3], keepdims=True)

    def affine(self, mean, variance):
        """The normalisation as a per-channel (scale, shift), float32, (B, 1, 1, C) each:
        (x - mean) / sqrt(variance + epsilon) * gamma + beta = x * scale + shift."""
        scale = tf.cast(self.gamma, tf.float32) * tf.math.rsqrt(variance + self.epsilon)  # (B, 1, 1, C)
        return scale, tf.cast(self.beta, tf.float32) - mean * scale

    def normalize(self, x, mean, variance):
        """x normalised with the given statistics, as one per-channel multiply-add in x's dtype.

        Separate from `moments` so that a caller may compute the statistics another way (in
        bands, `crn_tf.nn.inference`) and still apply exactly this layer's normalisation.
        """
        scale, shift = self.affine(mean, variance)
        return x * tf.cast(scale, x.dtype) + tf.cast(shift, x.dtype)

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
        self.conv1 = Conv3x3(self.filters, 3, name="conv1", **conv_args)
        self.norm1 = LayerNorm(name="norm1", dtype=self.dtype_policy)
        self.conv2 = Conv3x3(self.filters, 3, name="conv2", **conv_args)
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
        x = tf.nn.leaky_relu(self.norm1(self.conv1(x)), alpha=self.leak)  # LReLU(norm(conv(x))): (B, H, W, d)
        return tf.nn.leaky_relu(self.norm2(self.conv2(x)), alpha=self.leak)  # (B, H, W, d)

    def get_config(self):
        config = super().get_config()
        config.update({"filters": self.filters, "align_corners": self.align_corners, "leak": self.leak})
        return config
