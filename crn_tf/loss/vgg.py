"""Frozen VGG-19 feature extractor for the CRN perceptual loss, as the original computes it.

The original (Chen & Koltun's TF1 release) feeds VGG-19 the RGB image in 0..255 minus the RGB
mean (123.68, 116.779, 103.939), with the MatConvNet weights `imagenet-vgg-verydeep-19.mat`
(RGB order), average pooling instead of max, and compares the image itself ("input") and
conv1_2, conv2_2, conv3_2, conv4_2, conv5_2 after ReLU.

Keras' VGG-19 weights are the same network in Caffe order: they expect BGR minus the BGR mean
(103.939, 116.779, 123.68). Flipping RGB -> BGR and subtracting the BGR mean gives exactly the
channel-reversed `RGB - RGB mean`, so a conv1_1 kernel with its input-channel axis reversed
sees the same numbers. `VGG19Features` keeps ONE network in the original's RGB convention:
Keras weights get conv1_1's input channels reversed once at load time, MatConvNet weights are
used as they are, and `"input"` is `RGB - RGB mean`, the very tensor the original compares.
"""
from __future__ import annotations

import logging
import os

import keras
import tensorflow as tf

from crn_tf.loss import vgg_weights
from crn_tf.loss.vgg_weights import (
    KERAS_NOTOP_FILENAME,
    MATCONVNET_FILENAME,
    resolve_vgg_weights,
)

logger = logging.getLogger(__name__)

# The original's mean, per RGB channel (the Keras/Caffe mean is the same numbers in BGR order).
RGB_MEAN = (123.68, 116.779, 103.939)

# Returned features, in the order the loss weights refer to them.
FEATURE_NAMES = ("input", "conv1_2", "conv2_2", "conv3_2", "conv4_2", "conv5_2")

# The weights' names and loaders live in `crn_tf.loss.vgg_weights`; still importable from here.
_ARCHITECTURE = vgg_weights.ARCHITECTURE
CONV_LAYERS = vgg_weights.CONV_LAYERS
VGGWeightsError = vgg_weights.VGGWeightsError
keras_cache_dir = vgg_weights.keras_cache_dir
load_keras_weights = vgg_weights.load_keras_weights
load_imagenet_weights = vgg_weights.load_imagenet_weights
load_matconvnet_weights = vgg_weights.load_matconvnet_weights

POOLINGS = ("avg", "max")

_random_warning_shown = False


def _warn_random_weights() -> None:
    """One loud `WARNING: ...` record per process: on stderr in the CLIs, and through Python's last-resort
    handler where nobody configured logging."""
    global _random_warning_shown
    if _random_warning_shown:
        return
    _random_warning_shown = True
    message = (
        "VGG19Features(weights=None): VGG-19 has RANDOM weights, so the perceptual loss is NOT "
        "the paper's; use only for tests and smoke runs. Pass weights='imagenet', a "
        f"{KERAS_NOTOP_FILENAME} or an {MATCONVNET_FILENAME} path for real training."
    )
    logger.warning("WARNING: %s", message)


def _frozen_variable_creator(next_creator, **kwargs):
    """Creates the backing tf.Variables as non-trainable, so no tape watches (or differentiates) them."""
    kwargs["trainable"] = False
    return next_creator(**kwargs)


@keras.saving.register_keras_serializable(package="crn_tf")
class VGG19Features(keras.layers.Layer):
    """Frozen VGG-19 up to conv5_2, returning the features the CRN loss compares.

    Call on RGB images `(batch, height, width, 3)` in 0..255. Returns a dict:
    `"input"`: the RGB image minus the RGB mean (float32, as the original compares it);
    `"conv1_2"` ... `"conv5_2"`: ReLU outputs in the layer's compute dtype (bfloat16/float16
    under a mixed policy), at full, 1/2, 1/4, 1/8 and 1/16 resolution.

    Args:
        weights: str, path or None. `"imagenet"` (Keras' download and cache), a Keras
            `.h5`/`.weights.h5` file, MatConvNet's `imagenet-vgg-verydeep-19.mat`, or None
            for random weights (loud warning: the loss is then not the paper's).
            Defaults to `"imagenet"`.
        pooling: str. `"avg"` (the original: 2x2 average pooling, SAME padding) or `"max"`
            (Keras' VGG-19: 2x2 max pooling, VALID padding). Same weights either way.
            Defaults to `"avg"`.
    """

    def __init__(self, weights: str | os.PathLike | None = "imagenet", pooling: str = "avg", **kwargs):
        kwargs.pop("trainable", None)  # always frozen; get_config carries it
        kwargs.setdefault("autocast", False)  # keep 0..255 inputs in float32 until the mean is off
        super().__init__(trainable=False, **kwargs)
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
        self.weights_source = None if weights is None else os.fspath(weights)
        self.pooling = pooling

        # === Layers ===
        self.vgg_layers = []  # conv1_1 ... conv5_2 and the pools between blocks, in order
        in_channels = 3
        for index, entry in enumerate(_ARCHITECTURE):
            if entry == "pool":
                pool_class = keras.layers.AveragePooling2D if pooling == "avg" else keras.layers.MaxPooling2D
                padding = "same" if pooling == "avg" else "valid"
                layer = pool_class(2, 2, padding=padding, name=f"pool{index}", dtype=self.dtype_policy)
                self.vgg_layers.append(layer)
                continue
            mat_name, _, filters = entry
            layer = keras.layers.Conv2D(
                filters, 3, padding="same", activation="relu", name=mat_name,
                dtype=self.dtype_policy, trainable=False,
            )
            with tf.variable_creator_scope(_frozen_variable_creator):
                layer.build((None, None, None, in_channels))
            self.vgg_layers.append(layer)
            in_channels = filters
        self.built = True

        # === Weights ===
        loaded = resolve_vgg_weights(self.weights_source)
        if loaded is None:
            _warn_random_weights()
        else:
            for layer in self.vgg_layers:
                if layer.name in loaded:
                    kernel, bias = loaded[layer.name]
                    layer.kernel.assign(kernel)
                    layer.bias.assign(bias)

    def build(self, input_shape):
        if input_shape[-1] is not None and input_shape[-1] != 3:
            raise ValueError(f"VGG19Features expects RGB images (..., 3), got shape {input_shape}")

    def call(self, images):
        # images: (batch, height, width, 3) RGB in 0..255
        centred = tf.cast(images, "float32") - tf.constant(RGB_MEAN, "float32")
        features = {"input": centred}
        x = tf.cast(centred, self.compute_dtype)
        for layer in self.vgg_layers:
            x = layer(x)
            if layer.name in FEATURE_NAMES:
                features[layer.name] = x
        return features

    def get_config(self):
        config = super().get_config()
        config.update({"weights": self.weights_source, "pooling": self.pooling})
        return config
