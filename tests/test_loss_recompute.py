"""RecomputedVGGFeatures: the same VGG features and gradients as VGG19Features, segment by segment."""
import numpy as np
import tensorflow as tf

from crn_tf.loss.recompute import RecomputedVGGFeatures, vgg_segments
from crn_tf.loss.vgg import FEATURE_NAMES, VGG19Features


def test_segments_end_at_the_compared_layers():
    vgg = VGG19Features(None)
    segments = vgg_segments(vgg)
    assert [s[-1].name for s in segments] == list(FEATURE_NAMES[1:])
    assert sum(len(s) for s in segments) == len(vgg.vgg_layers)


def test_same_features_and_gradients(rng):
    vgg = VGG19Features(None)
    recomputed = RecomputedVGGFeatures(vgg)
    images = tf.constant(rng.uniform(0, 255, size=(2, 32, 48, 3)).astype(np.float32))

    def gradient(features, x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            values = features(x)
            loss = tf.add_n([tf.reduce_mean(tf.abs(v)) for v in values.values()])
        return values, tape.gradient(loss, x)

    plain_values, plain_grad = tf.function(gradient)(vgg, images)
    values, grad = tf.function(gradient)(recomputed, images)
    for name in FEATURE_NAMES:
        np.testing.assert_allclose(values[name].numpy(), plain_values[name].numpy(), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(grad.numpy(), plain_grad.numpy(), rtol=1e-5, atol=1e-9)
