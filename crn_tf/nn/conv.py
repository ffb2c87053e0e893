"""The refinement modules' 3x3 convolution, with a faster weight gradient on bf16 CPUs without AMX.

Forward, and the gradient with respect to the input, are TensorFlow's own ops (Conv2D,
Conv2DBackpropInput): the same convolution as `keras.layers.Conv2D`. The weight gradient of
a 3x3 SAME, stride-1 convolution is, for each of the nine kernel taps (i, j), one matmul over
all pixels: dW[i, j] = x_shifted(i, j)^T @ dy, with x zero-padded by one pixel and shifted by
(i, j). On AVX-512 BF16 CPUs without AMX (AMD EPYC) oneDNN's bfloat16 Conv2DBackpropFilter
runs at a third of the forward convolution's rate (0.37 against 1.05 TFLOP/s at 256x512,
512 -> 512 channels), while the nine matmuls run at 0.8 TFLOP/s and give the same numbers
(both accumulate in float32 and round once: bit-identical where measured). Elsewhere (AMX,
GPUs, float32) TensorFlow's own gradient is kept.
"""
from __future__ import annotations

import functools

import keras
import tensorflow as tf

from crn_tf.core.machine import cpu_flags


@functools.lru_cache(maxsize=1)
def _cpu_without_amx() -> bool:
    flags = cpu_flags()
    return "avx512_bf16" in flags and "amx_bf16" not in flags


def tap_weight_gradient_applies(x: tf.Tensor, kernel: tf.Tensor) -> bool:
    """Whether `conv3x3_same`'s weight gradient is the faster one here: bfloat16 on a CPU with
    AVX-512 BF16 but no AMX, no GPU, a 3x3 kernel."""
    return (
        x.dtype == tf.bfloat16
        and tuple(kernel.shape[:2]) == (3, 3)
        and _cpu_without_amx()
        and not tf.config.list_logical_devices("GPU")
    )


def tap_weight_gradient(x: tf.Tensor, dy: tf.Tensor) -> tf.Tensor:
    """The gradient (3, 3, C, D) of sum(dy * conv2d(x, W, SAME)) with respect to W, for x
    (B, H, W, C) and dy (B, H, W, D): nine matmuls, one per tap.

    x is zero-padded (one column each side, one row above and two below) and flattened to
    pixels; dy is padded with two zero columns to the same row length W + 2. Tap (i, j) is then
    the contiguous run of padded pixels starting at i * (W + 2) + j (a slice of the first axis:
    no copy), times dy: the extra products all meet dy's zero columns. Each tap's matmul waits
    for the previous one, so their temporaries never pile up.
    """
    height, width, channels, filters = int(x.shape[1]), int(x.shape[2]), int(x.shape[3]), int(dy.shape[3])
    row = width + 2
    pixels = height * row
    padded = tf.pad(x, [[0, 0], [1, 2], [1, 1], [0, 0]])  # (B, H + 3, W + 2, C)
    flat_dy = tf.reshape(tf.pad(dy, [[0, 0], [0, 0], [0, 2], [0, 0]]), (-1, filters))  # (B * H * (W + 2), D)
    single = x.shape[0] == 1  # batch 1: 2-D slices of the first axis, which TensorFlow makes without a copy
    flat_x = tf.reshape(padded, (-1, channels) if single else (-1, (height + 3) * row, channels))
    taps, last = [], None
    for i in range(3):
        for j in range(3):
            start = i * row + j
            with tf.control_dependencies([] if last is None or tf.executing_eagerly() else [last]):
                if single:
                    shifted = flat_x[start : start + pixels]  # (H * (W + 2), C)
                else:  # every image's run, one after another: (B * H * (W + 2), C)
                    shifted = tf.reshape(flat_x[:, start : start + pixels], (-1, channels))
                last = tf.matmul(shifted, flat_dy, transpose_a=True)  # (C, D)
            taps.append(last)
    return tf.reshape(tf.stack(taps), (3, 3, channels, -1))


@tf.custom_gradient
def conv3x3_same(x: tf.Tensor, kernel: tf.Tensor):
    """tf.nn.conv2d(x, kernel, 1, "SAME") whose weight gradient is `tap_weight_gradient`."""
    y = tf.nn.conv2d(x, kernel, 1, "SAME")

    def gradient(dy):
        dx = tf.raw_ops.Conv2DBackpropInput(
            input_sizes=tf.shape(x), filter=kernel, out_backprop=dy, strides=[1, 1, 1, 1], padding="SAME"
        )
        return dx, tap_weight_gradient(x, dy)

    return y, gradient


@keras.saving.register_keras_serializable(package="crn_tf")
class Conv3x3(keras.layers.Conv2D):
    """`keras.layers.Conv2D` (3x3, SAME, stride 1, as the refinement modules use it) whose
    weight gradient runs as nine matmuls where `tap_weight_gradient_applies`. Same variables,
    same forward op, same numbers."""

    def convolution_op(self, inputs, kernel):
        if (tuple(self.strides), tuple(self.dilation_rate), self.padding, self.data_format) == (
            (1, 1), (1, 1), "same", "channels_last"
        ) and tap_weight_gradient_applies(inputs, kernel):
            # As tensors: a (Keras) variable read inside a custom gradient would need its own gradient.
            return conv3x3_same(tf.convert_to_tensor(inputs), tf.convert_to_tensor(kernel))
        return super().convolution_op(inputs, kernel)
