"""The CRN generator against an independent NumPy implementation of the paper's equations."""
import keras
import numpy as np
import pytest
import reference
import tensorflow as tf

from crn_tf.nn.layers import LayerNorm, RefinementModule
from crn_tf.nn.model import CRN, PRESETS, paper_width
from crn_tf.nn.ops import area_downsample, upsample_bilinear


def random_layout(rng, batch, height, width, channels=20):
    return np.eye(channels, dtype=np.float32)[rng.integers(0, channels, size=(batch, height, width))]


def reference_weights(model):
    modules = [
        {
            "conv1": m.conv1.kernel.numpy().astype(np.float64),
            "gamma1": m.norm1.gamma.numpy(),
            "beta1": m.norm1.beta.numpy(),
            "conv2": m.conv2.kernel.numpy().astype(np.float64),
            "gamma2": m.norm2.gamma.numpy(),
            "beta2": m.norm2.beta.numpy(),
        }
        for m in model.refinement_modules
    ]
    return modules, model.output_conv.kernel.numpy(), model.output_conv.bias.numpy()


def randomize_norms(model, rng):
    """Non-trivial gamma/beta, so the test sees per-channel scale and shift at work."""
    for module in model.refinement_modules:
        for norm in (module.norm1, module.norm2):
            norm.gamma.assign(rng.uniform(0.5, 1.5, norm.gamma.shape).astype(np.float32))
            norm.beta.assign(rng.normal(0, 0.2, norm.beta.shape).astype(np.float32))
    model.output_conv.bias.assign(rng.normal(0, 0.1, model.output_conv.bias.shape).astype(np.float32))


def test_layer_norm_matches_numpy(rng):
    x = rng.normal(3.0, 2.0, size=(2, 5, 7, 6)).astype(np.float32)
    norm = LayerNorm()
    norm.build(x.shape)
    gamma, beta = rng.uniform(0.5, 2, 6).astype(np.float32), rng.normal(size=6).astype(np.float32)
    norm.gamma.assign(gamma)
    norm.beta.assign(beta)
    got = norm(x).numpy()
    for b in range(2):
        np.testing.assert_allclose(got[b], reference.layer_norm(x[b].astype(np.float64), gamma, beta), atol=1e-4)


def test_layer_norm_is_not_keras_layer_normalization():
    """Statistics over (H, W, C) together: every channel of a sample shares one mean."""
    x = np.zeros((1, 2, 2, 2), np.float32)
    x[..., 1] = 10.0  # channel 1 is constant at 10, channel 0 at 0
    norm = LayerNorm()
    out = norm(x).numpy()
    np.testing.assert_allclose(out[..., 0], -1.0, atol=1e-5)
    np.testing.assert_allclose(out[..., 1], 1.0, atol=1e-5)
    assert [tuple(w.shape) for w in norm.weights] == [(2,), (2,)]


def test_area_downsample_is_block_mean(rng):
    layout = random_layout(rng, 2, 16, 32)
    got = area_downsample(tf.constant(layout), (4, 8)).numpy()
    for b in range(2):
        np.testing.assert_allclose(got[b], reference.area_downsample(layout[b], (4, 8)), atol=1e-6)
    halved = area_downsample(area_downsample(tf.constant(layout), (8, 16)), (4, 8)).numpy()
    np.testing.assert_allclose(halved, got, atol=1e-6)  # a chain of halvings equals one area resize
    np.testing.assert_allclose(got.sum(-1), 1.0, atol=1e-6)


def test_upsample_align_corners_matches_numpy(rng):
    x = rng.normal(size=(1, 4, 8, 3)).astype(np.float32)
    got = upsample_bilinear(tf.constant(x), (8, 16), align_corners=True).numpy()[0]
    np.testing.assert_allclose(got, reference.upsample_align_corners(x[0], (8, 16)), atol=1e-5)
    np.testing.assert_allclose(got[[0, 0, -1, -1], [0, -1, 0, -1]], x[0][[0, 0, -1, -1], [0, -1, 0, -1]])
    half_pixel = upsample_bilinear(tf.constant(x), (8, 16), align_corners=False).numpy()[0]
    assert np.abs(half_pixel - got).max() > 1e-3  # the departure is real, not a renamed default


@pytest.mark.parametrize("num_images", [1, 3])
def test_tiny_crn_matches_numpy_reference(rng, num_images):
    keras.utils.set_random_seed(0)  # fixed Glorot draws: the comparison is of maths, not of luck
    model = CRN(output_size=(32, 64), widths=(8, 6, 5, 4), num_images=num_images)
    model.build()
    randomize_norms(model, rng)
    layout = random_layout(rng, 2, 32, 64)
    got = model(layout).numpy()
    assert got.shape == (2, num_images, 32, 64, 3) and got.dtype == np.float32
    modules, kernel, bias = reference_weights(model)
    for b in range(2):
        expected = reference.crn_forward(layout[b].astype(np.float64), modules, kernel, bias, num_images)
        assert np.abs(got[b] - expected).max() < 1e-3


def test_output_channel_order_is_the_originals():
    """Image j is made of the 1x1 conv's channels (j, k + j, 2k + j)."""
    model = CRN(output_size=(8, 16), widths=(4, 4), num_images=3)
    model.build()
    model.output_conv.kernel.assign(np.zeros(model.output_conv.kernel.shape, np.float32))
    bias = np.arange(9, dtype=np.float32) / 10  # channel c -> value c / 10
    model.output_conv.bias.assign(bias)
    images = model(np.zeros((1, 8, 16, 20), np.float32)).numpy()[0]
    for j in range(3):
        expected = (bias[[j, 3 + j, 6 + j]] + 1) / 2 * 255
        np.testing.assert_allclose(images[j, 0, 0], expected, rtol=1e-6)


@pytest.mark.parametrize("preset,count", [("256p", 97_875_483), ("512p", 98_622_851), ("1024p", 98_674_531)])
def test_preset_parameter_counts(preset, count):
    model = CRN.from_preset(preset)
    model.build()
    assert model.count_params() == count
    assert model.num_modules == {"256p": 7, "512p": 8, "1024p": 9}[preset]
    assert model.num_images == (9 if preset == "256p" else 1)
    assert list(model.widths) == [paper_width(h) for h, _ in model.module_sizes]


def test_from_preset_overrides():
    model = CRN.from_preset("256p", num_images=1, output_size=(64, 128), width_multiplier=1 / 16)
    assert model.num_images == 1 and model.num_modules == 5 and model.widths == (64,) * 5
    assert CRN.from_preset("512p", num_images=4).num_images == 4
    with pytest.raises(ValueError, match="unknown preset 'x'"):
        CRN.from_preset("x")


def test_wrong_input_size_is_a_clear_error():
    model = CRN(output_size=(16, 32), widths=(4, 4, 4))
    with pytest.raises(ValueError, match=r"expects a layout of shape \(batch, 16, 32, 20\)"):
        model(np.zeros((1, 16, 16, 20), np.float32))
    with pytest.raises(ValueError, match=r"\(batch, 16, 32, 20\)"):
        model(np.zeros((1, 16, 32, 3), np.float32))


def test_size_not_divisible_is_a_clear_error():
    with pytest.raises(ValueError, match="not 4 times a power of two"):
        CRN(output_size=(100, 200))
    with pytest.raises(ValueError, match="multiples of 8"):
        CRN(output_size=(32, 60), num_modules=4)
    with pytest.raises(ValueError, match="one per module"):
        CRN(output_size=(32, 64), widths=(8, 8))


def test_config_round_trip(rng):
    model = CRN(output_size=(16, 32), widths=(4, 5, 6), num_images=2, align_corners=False)
    layout = random_layout(rng, 1, 16, 32)
    out = model(layout)
    clone = CRN.from_config(model.get_config())
    clone.build()
    clone.set_weights(model.get_weights())
    assert clone.get_config() == model.get_config()
    np.testing.assert_array_equal(clone(layout).numpy(), out.numpy())
    module = model.refinement_modules[1]
    assert RefinementModule.from_config(module.get_config()).get_config() == module.get_config()
    norm = module.norm1
    assert LayerNorm.from_config(norm.get_config()).epsilon == 1e-12


def test_keras_save_and_load(tmp_path, rng):
    model = CRN(output_size=(16, 32), widths=(4, 4, 4))
    layout = random_layout(rng, 1, 16, 32)
    out = model(layout).numpy()
    model.save(tmp_path / "crn.keras")
    loaded = keras.models.load_model(tmp_path / "crn.keras")
    np.testing.assert_allclose(loaded(layout).numpy(), out, atol=1e-5)


def test_mixed_bfloat16_runs_and_returns_float32(rng):
    model = CRN(output_size=(16, 32), widths=(8, 8, 8))
    model.build()
    fast = CRN(output_size=(16, 32), widths=(8, 8, 8), dtype="mixed_bfloat16")
    fast.build()
    fast.set_weights(model.get_weights())
    layout = random_layout(rng, 1, 16, 32)
    exact, approx = model(layout).numpy(), fast(layout).numpy()
    assert approx.dtype == np.float32
    assert fast.refinement_modules[0].conv1.compute_dtype == "bfloat16"
    assert np.abs(exact - approx).mean() < 3.0  # bf16 keeps ~3 significant digits


def test_recompute_gives_the_same_gradients(rng):
    plain = CRN(output_size=(16, 32), widths=(4, 4, 4))
    plain.build()
    recomputed = CRN(output_size=(16, 32), widths=(4, 4, 4), recompute=True)
    recomputed.build()
    recomputed.set_weights(plain.get_weights())
    layout = tf.constant(random_layout(rng, 1, 16, 32))
    grads = []
    for model in (plain, recomputed):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(model(layout) - 100.0))
        grads.append(tape.gradient(loss, model.trainable_variables))
    for a, b in zip(*grads):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-6)


def test_preset_table_is_plain_data():
    for name, args in PRESETS.items():
        model = CRN(**args)
        assert model.output_size == args["output_size"], name


def test_initialisation_is_slims_default():
    """slim.conv2d's defaults, as the original builds every conv: Glorot (Xavier) uniform kernels,
    limit sqrt(6 / (fan_in + fan_out)) with fans kh * kw * channels; zero biases (the 1x1 output conv,
    the only one with a bias: slim drops it under a normaliser); slim.layer_norm's gamma 1, beta 0."""
    keras.utils.set_random_seed(3)
    model = CRN(output_size=(16, 32), widths=(48, 48, 48), num_images=9)
    model.build()
    for kernel in (model.refinement_modules[2].conv2.kernel.numpy(), model.output_conv.kernel.numpy()):
        kh, kw, cin, cout = kernel.shape
        limit = np.sqrt(6.0 / (kh * kw * cin + kh * kw * cout))
        assert -limit <= kernel.min() and kernel.max() <= limit and kernel.max() > 0.95 * limit
        assert kernel.var() == pytest.approx(limit**2 / 3, rel=0.08)  # uniform on [-limit, limit]
    np.testing.assert_array_equal(model.output_conv.bias.numpy(), 0.0)
    for module in model.refinement_modules:
        assert not module.conv1.use_bias and not module.conv2.use_bias
        for norm in (module.norm1, module.norm2):
            np.testing.assert_array_equal(norm.gamma.numpy(), 1.0)
            np.testing.assert_array_equal(norm.beta.numpy(), 0.0)
