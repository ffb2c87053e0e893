"""The 3x3 convolution's nine-matmul weight gradient equals the convolution's own (NumPy, TF)."""
import numpy as np
import pytest
import tensorflow as tf

from crn_tf.nn import conv


def numpy_weight_gradient(x, dy):
    """dW[i, j, c, d] = sum over b, h, w of x_padded[b, h + i, w + j, c] * dy[b, h, w, d]."""
    padded = np.pad(x, [(0, 0), (1, 1), (1, 1), (0, 0)])
    height, width = x.shape[1:3]
    return np.stack([
        np.stack([np.einsum("bhwc,bhwd->cd", padded[:, i : i + height, j : j + width], dy) for j in range(3)])
        for i in range(3)
    ])


def test_tap_weight_gradient_matches_numpy(rng):
    x = rng.normal(size=(2, 5, 7, 3)).astype(np.float32)
    dy = rng.normal(size=(2, 5, 7, 4)).astype(np.float32)
    got = conv.tap_weight_gradient(tf.constant(x), tf.constant(dy)).numpy()
    np.testing.assert_allclose(got, numpy_weight_gradient(x, dy), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dtype", [tf.float32, tf.bfloat16])
def test_custom_gradient_equals_tensorflows(rng, dtype):
    x = tf.cast(rng.normal(size=(1, 6, 9, 5)), dtype)
    kernel = tf.cast(rng.normal(size=(3, 3, 5, 4)), dtype)
    gradients = []
    for function in (lambda a, b: tf.nn.conv2d(a, b, 1, "SAME"), conv.conv3x3_same):
        with tf.GradientTape() as tape:
            tape.watch([x, kernel])
            y = function(x, kernel)
            loss = tf.reduce_sum(tf.cast(y, tf.float32) ** 2)
        gradients.append([tf.cast(g, tf.float32).numpy() for g in tape.gradient(loss, [x, kernel])] + [y])
    (dx, dk, y), (dx2, dk2, y2) = gradients
    np.testing.assert_array_equal(tf.cast(y, tf.float32).numpy(), tf.cast(y2, tf.float32).numpy())
    np.testing.assert_array_equal(dx, dx2)
    tolerance = 1e-5 if dtype == tf.float32 else 2**-7  # bf16: one rounding of a float32 sum
    np.testing.assert_allclose(dk2, dk, rtol=tolerance, atol=tolerance * np.abs(dk).max())


def test_layer_uses_it_only_where_it_applies(monkeypatch, rng):
    layer = conv.Conv3x3(4, 3, padding="same", use_bias=False, dtype="mixed_bfloat16")
    x = tf.constant(rng.normal(size=(1, 6, 8, 3)).astype(np.float32))
    layer.build(x.shape)
    assert [v.path.split("/")[-1] for v in layer.weights] == ["kernel"]  # the checkpoints' variable name

    def loss_and_grad():
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(tf.cast(layer(x), tf.float32) ** 2)
        return tape.gradient(loss, layer.kernel)

    monkeypatch.setattr(conv, "_cpu_without_amx", lambda: False)
    reference = loss_and_grad().numpy()
    monkeypatch.setattr(conv, "_cpu_without_amx", lambda: True)
    assert conv.tap_weight_gradient_applies(tf.cast(x, tf.bfloat16), layer.kernel)
    np.testing.assert_allclose(loss_and_grad().numpy(), reference, rtol=2**-7, atol=2**-7 * np.abs(reference).max())
    assert not conv.tap_weight_gradient_applies(x, layer.kernel)  # float32 keeps TensorFlow's gradient
