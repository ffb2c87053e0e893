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

from crn_tf.machine import cpu_flags


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
    (B, H, W, C) and dy (B, H, W, D): nine matmuls, one tap at a time (each shifted copy of x
    is made only after the previous tap's matmul, so one exists at a time)."""
    height, width, channels = int(x.shape[1]), int(x.shape[2]), int(x.shape[3])
    padded = tf.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]])  # (B, H + 2, W + 2, C)
    dy = tf.reshape(dy, (-1, int(dy.shape[-1])))  # (B*H*W, D)
    taps, last = [], None
    for i in range(3):
        for j in range(3):
            with tf.control_dependencies([] if last is None or tf.executing_eagerly() else [last]):
                shifted = tf.reshape(padded[:, i : i + height, j : j + width, :], (-1, channels))  # (B*H*W, C)
                last = tf.matmul(shifted, dy, transpose_a=True)  # (C, D)
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
