"""CRNLoss: single-image and diversity losses against NumPy, the "virtual image" case, gradients,
"auto" weights (rescale, checkpoint), tf.function / tf.distribute and mixed precision."""
import numpy as np
import pytest
import tensorflow as tf

from crn_tf.loss.perceptual import PRESET_LAYER_WEIGHTS, CRNLoss
from crn_tf.loss.vgg import FEATURE_NAMES, RGB_MEAN, VGG19Features

HEIGHT, WIDTH = 32, 64


@pytest.fixture(scope="module")
def vgg():
    tf.keras.utils.set_random_seed(3)
    return VGG19Features(weights=None)


class PointwiseFeatures:
    """A cheap stand-in for VGG: per-pixel 1x1 maps + ReLU, 2x2 average pools, VGG's layer sizes.

    Features of a block depend only on that block's pixels, so for class regions aligned to
    16x16 blocks, an image assembled from regions of other images has their features there.
    """

    def __init__(self, seed=0, width=4):
        rng = np.random.default_rng(seed)
        self.maps = [rng.normal(0, 0.5, (3 if i == 0 else width, width)).astype(np.float32) for i in range(5)]
        self.calls = []

    def __call__(self, images):
        self.calls.append(tuple(images.shape))
        x = images - tf.constant(RGB_MEAN, tf.float32)
        out = {"input": x}
        for i, name in enumerate(FEATURE_NAMES[1:]):
            if i > 0:
                x = tf.nn.avg_pool2d(x, 2, 2, "VALID")
            x = tf.nn.relu(tf.einsum("bhwc,cd->bhwd", x, self.maps[i]))
            out[name] = x
        return out


def random_images(rng, *shape):
    return rng.uniform(0, 255, shape + (HEIGHT, WIDTH, 3)).astype(np.float32)


def random_layout(rng, batch, channels=5, soft=False):
    if soft:
        layout = rng.uniform(0, 1, (batch, HEIGHT, WIDTH, channels)).astype(np.float32)
        return layout / layout.sum(-1, keepdims=True)
    return np.eye(channels, dtype=np.float32)[rng.integers(0, channels, (batch, HEIGHT, WIDTH))]


def numpy_features(features, images):
    return {k: np.asarray(v, np.float64) for k, v in features(tf.constant(images)).items()}


def numpy_single_loss(features, real, fake, weights):
    """sum_l w_l * mean |Phi_l(I) - Phi_l(g)|, averaged over the batch; fake (B, H, W, 3)."""
    fr, ff = numpy_features(features, real), numpy_features(features, fake)
    per_example = sum(w * np.abs(fr[n] - ff[n]).mean(axis=(1, 2, 3)) for n, w in zip(FEATURE_NAMES, weights))
    return per_example.mean()


def block_mean(x, size):
    b, h, w, c = x.shape
    fh, fw = h // size[0], w // size[1]
    return x.reshape(b, size[0], fh, size[1], fw, c).mean(axis=(2, 4))


def numpy_diversity_loss(features, real, fake, layout, weights, mean_weight=0.001, class_weights=None):
    batch, k = fake.shape[:2]
    class_weights = np.ones(layout.shape[-1]) if class_weights is None else np.asarray(class_weights, np.float64)
    fr = numpy_features(features, real)
    ff = numpy_features(features, fake.reshape((-1,) + fake.shape[2:]))
    energy = 0.0  # E[b, u, p]
    for name, w in zip(FEATURE_NAMES, weights):
        f_fake = ff[name].reshape((batch, k) + ff[name].shape[1:])
        error = np.abs(f_fake - fr[name][:, None]).mean(axis=-1)  # (B, k, h, w)
        mask = block_mean(layout.astype(np.float64), error.shape[2:])  # (B, h, w, P)
        energy = energy + w * np.einsum("bkhw,bhwp->bkp", error, mask) / (error.shape[2] * error.shape[3])
    energy = energy * class_weights
    totals = (1 - mean_weight) * energy.min(axis=1).sum(-1) + mean_weight * energy.mean(axis=1).sum(-1)
    return totals.mean()


# === Values ===

def test_identical_images_give_zero(vgg, rng):
    real = random_images(rng, 2)
    layout = random_layout(rng, 2)
    assert float(CRNLoss(vgg)(real, real[:, None], layout)) == 0.0
    assert float(CRNLoss(vgg, diversity=True)(real, np.repeat(real[:, None], 3, 1), layout)) == 0.0


def test_single_image_loss_matches_numpy(vgg, rng):
    real, fake = random_images(rng, 2), random_images(rng, 2)
    for preset in ("512p", "1024p"):
        loss = CRNLoss(vgg, layer_weights=preset)
        expected = numpy_single_loss(vgg, real, fake, PRESET_LAYER_WEIGHTS[preset])
        np.testing.assert_allclose(float(loss(real, fake[:, None])), expected, rtol=1e-5)
        np.testing.assert_allclose(float(loss(real, fake)), expected, rtol=1e-5)  # (B, H, W, 3) = k 1
    assert PRESET_LAYER_WEIGHTS["512p"] == pytest.approx((1, 1 / 2.6, 1 / 4.8, 1 / 3.7, 1 / 5.6, 10 / 1.5))


@pytest.mark.parametrize("soft", [False, True])
def test_diversity_loss_matches_numpy(rng, soft):
    features = PointwiseFeatures()
    real, fake = random_images(rng, 2), random_images(rng, 2, 3)
    layout = random_layout(rng, 2, soft=soft)
    loss = CRNLoss(features, diversity=True)
    expected = numpy_diversity_loss(features, real, fake, layout, PRESET_LAYER_WEIGHTS["256p"])
    np.testing.assert_allclose(float(loss(real, fake, layout)), expected, rtol=1e-5)
    terms = loss.terms(real, fake, layout)
    np.testing.assert_allclose(sum(float(terms[n]) for n in FEATURE_NAMES), expected, rtol=1e-5)
    np.testing.assert_allclose(float(terms["total"]), expected, rtol=1e-5)
    assert PRESET_LAYER_WEIGHTS["256p"] == pytest.approx((1, 1 / 1.6, 1 / 2.3, 1 / 1.8, 1 / 2.8, 10 / 0.8))


@pytest.mark.parametrize("mean_weight", [0.0, 0.5])
def test_diversity_mean_weight_matches_numpy(rng, mean_weight):
    features = PointwiseFeatures()
    real, fake = random_images(rng, 2), random_images(rng, 2, 3)
    layout = random_layout(rng, 2)
    loss = CRNLoss(features, diversity=True, diversity_mean_weight=mean_weight)
    expected = numpy_diversity_loss(features, real, fake, layout, PRESET_LAYER_WEIGHTS["256p"], mean_weight)
    np.testing.assert_allclose(float(loss(real, fake, layout)), expected, rtol=1e-5)
    assert loss.get_config()["diversity_mean_weight"] == mean_weight


@pytest.mark.parametrize("mean_weight", [0.001, 0.5])
def test_class_weights_match_numpy(rng, mean_weight):
    features = PointwiseFeatures()
    real, fake = random_images(rng, 2), random_images(rng, 2, 3)
    layout = random_layout(rng, 2)
    class_weights = [0.5, 3.0, 1.0, 7.0, 0.25]
    loss = CRNLoss(features, diversity=True, diversity_mean_weight=mean_weight, class_weights=class_weights)
    expected = numpy_diversity_loss(features, real, fake, layout, PRESET_LAYER_WEIGHTS["256p"], mean_weight,
                                    class_weights)
    np.testing.assert_allclose(float(loss(real, fake, layout)), expected, rtol=1e-5)
    unweighted = numpy_diversity_loss(features, real, fake, layout, PRESET_LAYER_WEIGHTS["256p"], mean_weight)
    assert abs(expected - unweighted) > 1e-3 * unweighted  # the weights matter
    assert loss.get_config()["class_weights"] == class_weights


def test_single_image_class_weights_weigh_each_pixel_by_its_class(rng):
    """k = 1: the layout-masked sum, which with one-hot layouts is a per-pixel weighted mean of the errors."""
    features = PointwiseFeatures()
    real, fake = random_images(rng, 2), random_images(rng, 2)
    layout = random_layout(rng, 2)
    class_weights = np.array([2.0, 0.5, 1.0, 4.0, 1.5])
    weights = PRESET_LAYER_WEIGHTS["512p"]
    fr, ff = numpy_features(features, real), numpy_features(features, fake)
    expected = 0.0
    for name, w in zip(FEATURE_NAMES, weights):
        error = np.abs(fr[name] - ff[name]).mean(axis=-1)  # (B, h, w)
        pixel_weights = block_mean(layout.astype(np.float64), error.shape[1:]) @ class_weights  # (B, h, w)
        expected = expected + w * (error * pixel_weights).mean(axis=(1, 2))
    loss = CRNLoss(features, class_weights=class_weights)
    np.testing.assert_allclose(float(loss(real, fake, layout)), expected.mean(), rtol=1e-5)
    # Weights of 1 are the original loss.
    np.testing.assert_allclose(float(CRNLoss(features, class_weights=np.ones(5))(real, fake, layout)),
                               numpy_single_loss(features, real, fake, weights), rtol=1e-5)


def virtual_image_case(rng):
    """Two classes (left / right half, 16-aligned) + an empty void channel; image 0 is close to
    the real image on the left only, image 1 on the right only."""
    real = random_images(rng, 1)
    layout = np.zeros((1, HEIGHT, WIDTH, 3), np.float32)
    layout[:, :, : WIDTH // 2, 0] = 1
    layout[:, :, WIDTH // 2:, 1] = 1
    close = np.clip(real + rng.normal(0, 4, real.shape), 0, 255).astype(np.float32)
    far = random_images(rng, 1)
    left = np.zeros_like(real, dtype=bool)
    left[:, :, : WIDTH // 2] = True
    image0 = np.where(left, close, far)
    image1 = np.where(left, far, close)
    virtual = np.where(left, image0, image1)  # each class region from the image right on it
    return real, np.stack([image0, image1], axis=1), layout, virtual


def test_diversity_of_two_images_is_the_loss_of_the_virtual_image(rng):
    features = PointwiseFeatures()
    real, fake, layout, virtual = virtual_image_case(rng)
    weights = PRESET_LAYER_WEIGHTS["256p"]
    diversity = float(CRNLoss(features, diversity=True)(real, fake, layout))
    single = CRNLoss(features, layer_weights="256p")
    expected = 0.999 * float(single(real, virtual)) + 0.001 * np.mean(
        [float(single(real, fake[:, u])) for u in range(2)]
    )
    np.testing.assert_allclose(diversity, expected, rtol=1e-5)
    # The min part alone is the virtual image's loss; the 0.001 mean part is much larger here.
    assert float(single(real, virtual)) < 0.2 * float(single(real, fake[:, 0]))
    np.testing.assert_allclose(expected, numpy_diversity_loss(features, real, fake, layout, weights), rtol=1e-5)


def test_virtual_image_with_vgg_on_the_pixel_term(vgg, rng):
    real, fake, layout, virtual = virtual_image_case(rng)
    weights = (1.0, 0, 0, 0, 0, 0)  # the "input" layer is per pixel, so the identity is exact with VGG too
    diversity = float(CRNLoss(vgg, layer_weights=weights, diversity=True)(real, fake, layout))
    single = CRNLoss(vgg, layer_weights=weights)
    expected = 0.999 * float(single(real, virtual)) + 0.001 * np.mean([float(single(real, fake[:, u])) for u in range(2)])
    np.testing.assert_allclose(diversity, expected, rtol=1e-5)


def test_diversity_with_one_image_is_the_single_image_loss(vgg, rng):
    real, fake = random_images(rng, 2), random_images(rng, 2, 1)
    layout = random_layout(rng, 2, channels=20)
    diversity = CRNLoss(vgg, layer_weights="256p", diversity=True)(real, fake, layout)
    single = CRNLoss(vgg, layer_weights="256p")(real, fake)
    np.testing.assert_allclose(float(diversity), float(single), rtol=1e-5)


def test_one_batched_vgg_call(rng):
    features = PointwiseFeatures()
    loss = CRNLoss(features, diversity=True)
    loss(random_images(rng, 2), random_images(rng, 2, 3), random_layout(rng, 2))
    assert features.calls == [(8, HEIGHT, WIDTH, 3)]  # 2 real + 2 x 3 fake, one call


# === Gradients ===

@pytest.mark.parametrize("diversity", [False, True])
def test_gradients_reach_fake_only(vgg, rng, diversity):
    k = 2 if diversity else 1
    real = tf.Variable(random_images(rng, 1))
    fake = tf.Variable(random_images(rng, 1, k))
    layout = random_layout(rng, 1)
    loss = CRNLoss(vgg, diversity=diversity)
    with tf.GradientTape() as tape:
        value = loss(real, fake, layout)
    grads = tape.gradient(value, [fake, real] + [w.value for w in vgg.weights])
    assert grads[0] is not None and np.all(np.isfinite(grads[0])) and float(tf.reduce_max(tf.abs(grads[0]))) > 0
    if diversity:
        assert all(float(tf.reduce_max(tf.abs(grads[0][:, u]))) > 0 for u in range(k))
    # Real features are under stop_gradient (real shares the batched VGG call, so its gradient is zeros).
    assert grads[1] is None or float(tf.reduce_max(tf.abs(grads[1]))) == 0
    assert all(g is None for g in grads[2:]) and vgg.trainable_weights == []


# === "auto" layer weights ===

def test_auto_rescale_equalises_the_terms(vgg, rng):
    real, fake = random_images(rng, 2), random_images(rng, 2)
    loss = CRNLoss(vgg, layer_weights="auto")
    np.testing.assert_array_equal(loss.layer_weights.numpy(), np.ones(6))
    with pytest.raises(RuntimeError, match="no statistics collected yet"):
        loss.rescale()
    before = float(loss(real, fake))
    loss(real, fake)
    assert float(loss.stat_count.numpy()) == 4
    terms = loss.terms(real, fake)
    assert max(float(terms[n]) for n in FEATURE_NAMES) > 10 * min(float(terms[n]) for n in FEATURE_NAMES)
    assert not loss.maybe_rescale(99)
    assert loss.maybe_rescale(100)
    assert not loss.maybe_rescale(101)  # once only
    terms = loss.terms(real, fake)
    values = np.array([float(terms[n]) for n in FEATURE_NAMES])
    np.testing.assert_allclose(values, values.mean(), rtol=0.01)
    np.testing.assert_allclose(float(loss(real, fake, update_stats=False)), before, rtol=1e-4)  # total kept
    assert float(loss.stat_count.numpy()) == 0 and int(loss.rescale_count.numpy()) == 1


def test_auto_rescale_from_given_stats_and_errors(vgg):
    loss = CRNLoss(vgg, layer_weights="auto")
    weights = loss.rescale({"input": 2.0, "conv1_2": 1.0, "conv2_2": 4.0, "conv3_2": 1.0, "conv4_2": 1.0, "conv5_2": 1.0})
    assert weights["input"] == pytest.approx(10 / 6 / 2) and weights["conv2_2"] == pytest.approx(10 / 6 / 4)
    with pytest.raises(ValueError, match="positive finite"):
        loss.rescale([1, 2, 0, 1, 1, 1])
    with pytest.raises(ValueError, match="miss layers"):
        loss.rescale({"input": 1.0})


def test_checkpoint_saves_the_loss_state_not_vgg(vgg, rng, tmp_path):
    loss = CRNLoss(vgg, layer_weights="auto")
    loss(random_images(rng, 1), random_images(rng, 1))
    loss.rescale()
    path = tf.train.Checkpoint(loss=loss).write(str(tmp_path / "ckpt"))
    saved = dict(tf.train.list_variables(path))
    assert {k.split("/")[1] for k in saved if k.startswith("loss/")} == {
        "layer_weights", "stat_sum", "stat_count", "rescale_count"
    }
    fresh = CRNLoss(vgg, layer_weights="auto")
    tf.train.Checkpoint(loss=fresh).read(path).assert_consumed()
    np.testing.assert_array_equal(fresh.layer_weights.numpy(), loss.layer_weights.numpy())
    assert not fresh.maybe_rescale(150)  # already rescaled before the checkpoint


def test_fixed_weights_collect_no_stats(vgg, rng):
    loss = CRNLoss(vgg)
    loss(random_images(rng, 1), random_images(rng, 1))
    assert float(loss.stat_count.numpy()) == 0 and not loss.maybe_rescale(100)


# === tf.function, tf.distribute, mixed precision ===

def test_per_example_under_strategy_and_tf_function(rng):
    features = PointwiseFeatures()
    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    with strategy.scope():
        loss = CRNLoss(features, layer_weights="auto", diversity=True)
        fake = tf.Variable(random_images(rng, 2, 3))
    real, layout = tf.constant(random_images(rng, 2)), tf.constant(random_layout(rng, 2))

    @tf.function
    def step():
        def replica_step():
            with tf.GradientTape() as tape:
                per_example = loss.per_example(real, fake, layout)
                scaled = tf.nn.compute_average_loss(per_example, global_batch_size=2)
            return per_example, scaled, tape.gradient(scaled, fake)

        return strategy.run(replica_step)

    per_example, scaled, grad = step()
    assert per_example.shape == (2,) and grad.shape == fake.shape
    eager = CRNLoss(features, layer_weights="auto", diversity=True).per_example(real, fake.numpy(), layout)
    np.testing.assert_allclose(per_example.numpy(), eager.numpy(), rtol=1e-5)
    np.testing.assert_allclose(float(scaled), eager.numpy().mean(), rtol=1e-5)
    assert float(loss.stat_count.numpy()) == 2
    loss.rescale()  # cross-replica, reading the per-replica sums
    assert int(loss.rescale_count.numpy()) == 1


def test_mixed_precision_vgg_float32_loss(vgg, rng):
    half = VGG19Features(weights=None, dtype="mixed_bfloat16")
    for a, b in zip(half.weights, vgg.weights):
        a.assign(b.numpy())
    real, fake = random_images(rng, 1), random_images(rng, 1)
    full_value = CRNLoss(vgg)(real, fake)
    half_loss = CRNLoss(half)
    half_value = half_loss(real, fake)
    assert half_value.dtype == tf.float32
    np.testing.assert_allclose(float(half_value), float(full_value), rtol=0.02)
    terms = half_loss.terms(real, fake)
    assert all(t.dtype == tf.float32 for t in terms.values())


# === Arguments ===

def test_bad_arguments(vgg, rng):
    real, fake = random_images(rng, 1), random_images(rng, 1, 2)
    with pytest.raises(ValueError, match="single-image loss takes one image per layout, got k = 2"):
        CRNLoss(vgg)(real, fake)
    with pytest.raises(ValueError, match="diversity loss needs the layout"):
        CRNLoss(vgg, diversity=True)(real, fake)
    with pytest.raises(ValueError, match="layout must be"):
        CRNLoss(vgg, diversity=True)(real, fake, np.zeros((1, 16, 32, 20), np.float32))
    with pytest.raises(ValueError, match="differ in size"):
        CRNLoss(vgg)(real, np.zeros((1, 1, 16, 32, 3), np.float32))
    with pytest.raises(ValueError, match="layer_weights must be one of"):
        CRNLoss(vgg, layer_weights="2048p")
    with pytest.raises(ValueError, match="6 finite non-negative numbers"):
        CRNLoss(vgg, layer_weights=[1, 2, 3])
    with pytest.raises(ValueError, match=r"diversity_mean_weight must be in \[0, 1\), got 1.0"):
        CRNLoss(vgg, diversity=True, diversity_mean_weight=1.0)
    with pytest.raises(ValueError, match="class_weights must be positive finite numbers"):
        CRNLoss(vgg, class_weights=[1.0, 0.0])
    with pytest.raises(ValueError, match="a loss with class weights needs the layout"):
        CRNLoss(vgg, class_weights=[1.0, 2.0])(real, fake[:, :1])
    with pytest.raises(ValueError, match="2 class weights for a layout of 20 channels"):
        CRNLoss(vgg, diversity=True, class_weights=[1.0, 2.0])(real, fake, np.zeros((1, 32, 64, 20), np.float32))


def test_defaults_and_config(vgg):
    assert CRNLoss(vgg).get_config() == {"layer_weights": "512p", "diversity": False, "rescale_epoch": 100,
                                     "diversity_mean_weight": 0.001, "class_weights": None}
    assert CRNLoss(vgg, diversity=True).get_config()["layer_weights"] == "256p"
    np.testing.assert_allclose(CRNLoss(vgg, diversity=True).layer_weights.numpy(), PRESET_LAYER_WEIGHTS["256p"])
    custom = CRNLoss(vgg, layer_weights=[1, 2, 3, 4, 5, 6], rescale_epoch=7)
    assert custom.get_config() == {"layer_weights": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0], "diversity": False, "rescale_epoch": 7,
                                   "diversity_mean_weight": 0.001, "class_weights": None}
