"""Gradient checkpointing for the perceptual loss: VGG-19 segment by segment under `tf.recompute_grad`.

`CRN(recompute=True)` recomputes each refinement module in the backward pass, but in a 1024p
training step the VGG-19 activations of the loss (every ReLU output of the real and the fake
image, at up to 1024x2048x64) are as large as the generator's: recomputing the generator
alone cuts the step's peak RSS only from 18.7 to 10.7 GB. `RecomputedVGGFeatures` runs the
same frozen VGG in five segments, each ending at a compared layer (conv1_2, conv2_2, ...,
conv5_2), and keeps only the segment outputs; the backward pass recomputes one segment at a
time. Same features, same gradients.
"""
from __future__ import annotations

import tensorflow as tf

from crn_tf.loss.vgg import FEATURE_NAMES, RGB_MEAN


def vgg_segments(vgg) -> list[list]:
    """The layers of a `VGG19Features`, cut after each compared layer: [[conv1_1, conv1_2],
    [pool, conv2_1, conv2_2], ...]."""
    segments, current = [], []
    for layer in vgg.vgg_layers:
        current.append(layer)
        if layer.name in FEATURE_NAMES:
            segments.append(current)
            current = []
    return segments


class RecomputedVGGFeatures:
    """A drop-in for a `crn_tf.loss.vgg.VGG19Features` in `CRNLoss`: the same call (RGB images in
    0..255 -> dict of "input", "conv1_2" ... "conv5_2"), with each segment's inner activations
    recomputed in the backward pass instead of kept.

    Args:
        features: the `VGG19Features` whose layers and weights are used.
    """

    def __init__(self, features):
        self.features = features
        self._segments = [tf.recompute_grad(self._segment_fn(layers)) for layers in vgg_segments(features)]
        self._names = [layers[-1].name for layers in vgg_segments(features)]

    @staticmethod
    def _segment_fn(layers):
        def run(x):
            for layer in layers:
                x = layer(x)
            return x

        return run

    def __call__(self, images):
        # As VGG19Features.call: the RGB image minus the mean, in float32, then the network.
        centred = tf.cast(images, "float32") - tf.constant(RGB_MEAN, "float32")
        features = {"input": centred}
        x = tf.cast(centred, self.features.compute_dtype)
        for name, segment in zip(self._names, self._segments):
            x = segment(x)
            features[name] = x
        return features
