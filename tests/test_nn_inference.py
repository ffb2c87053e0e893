"""The low-memory (banded) inference path equals the plain forward pass."""
import numpy as np
import pytest
import tensorflow as tf

from crn_tf.nn import inference
from crn_tf.nn.model import CRN
from crn_tf.nn.ops import upsample_bilinear


@pytest.mark.parametrize("align_corners", [True, False])
@pytest.mark.parametrize("in_size,out_size", [((4, 8), (8, 16)), ((5, 7), (10, 14)), ((16, 32), (32, 64))])
def test_upsample_rows_are_rows_of_the_full_upsample(rng, align_corners, in_size, out_size):
    features = tf.constant(rng.normal(size=(2, *in_size, 3)).astype(np.float32))
    full = upsample_bilinear(features, out_size, align_corners=align_corners).numpy()
    height = out_size[0]
    for start, stop in [(0, height), (0, 1), (0, 3), (height - 3, height), (2, 7), (height - 1, height)]:
        part = inference.upsample_rows(features, start, stop, out_size, align_corners).numpy()
        np.testing.assert_allclose(part, full[:, start:stop], rtol=0, atol=1e-6)


def test_interpolation_rows_match_hand_computation():
    # align_corners: 3 -> 5 rows, source step (3-1)/(5-1) = 0.5: rows 0, 0.5, 1, 1.5, 2.
    lower, upper, weight = inference.interpolation_rows(3, 5, align_corners=True)
    np.testing.assert_array_equal(lower, [0, 0, 1, 1, 2])
    np.testing.assert_array_equal(upper, [0, 1, 1, 2, 2])
    np.testing.assert_allclose(weight, [0, 0.5, 0, 0.5, 0])
    # half-pixel: 2 -> 4 rows, source (y + 0.5) / 2 - 0.5: -0.25, 0.25, 0.75, 1.25.
    lower, upper, weight = inference.interpolation_rows(2, 4, align_corners=False)
    np.testing.assert_array_equal(lower, [0, 0, 0, 1])
    np.testing.assert_array_equal(upper, [0, 1, 1, 1])
    np.testing.assert_allclose(weight[1:], [0.25, 0.75, 0.25])


@pytest.fixture(scope="module")
def small_model():
    model = CRN(output_size=(64, 128), widths=(8, 8, 8, 6, 4), num_images=2)
    model.build()
    return model


@pytest.fixture(scope="module")
def layout():
    classes = np.random.default_rng(1).integers(0, 20, size=(2, 64, 128))
    return tf.one_hot(classes, 20)


@pytest.mark.parametrize("band_rows", [1, 3, 7, 64])
def test_low_memory_equals_plain_forward(small_model, layout, band_rows):
    plain = small_model(layout).numpy()
    banded = inference.synthesize(small_model, layout, low_memory=True, band_rows=band_rows).numpy()
    assert banded.shape == (2, 2, 64, 128, 3)
    np.testing.assert_allclose(banded, plain, rtol=0, atol=1e-3)


def test_banding_chosen_by_size(small_model, layout):
    # A tiny band budget bands every module after the first, with 1-row bands where needed.
    plain = small_model(layout).numpy()
    banded = inference.synthesize(small_model, layout, low_memory=True, band_bytes=4096).numpy()
    np.testing.assert_allclose(banded, plain, rtol=0, atol=1e-3)
    features = tf.zeros((2, 32, 64, 8))
    assert inference.rows_per_band(features, layout, band_bytes=4096) == 1
    assert inference.rows_per_band(features, layout, band_bytes=2 * 128 * 28 * 4 * 5) == 5


def test_low_memory_bf16_matches_plain_bf16(layout):
    model = CRN(output_size=(64, 128), widths=(8, 8, 8, 6, 4), dtype="mixed_bfloat16")
    plain = model(layout).numpy()
    banded = inference.synthesize(model, layout, low_memory=True, band_rows=5).numpy()
    np.testing.assert_allclose(banded, plain, rtol=0, atol=1e-3)  # same bf16 ops, same rows


def test_synthesize_plain_and_errors(small_model, layout):
    np.testing.assert_allclose(inference.synthesize(small_model, layout).numpy(), small_model(layout).numpy(), atol=1e-4)
    with pytest.raises(ValueError, match="layout of shape"):
        inference.synthesize(small_model, tf.zeros((1, 32, 64, 20)), low_memory=True)
    with pytest.raises(ValueError, match="band_rows"):
        inference.synthesize(small_model, layout, low_memory=True, band_rows=0)


@pytest.mark.parametrize("channels", [5, 128])  # one diagonal block; two 64-channel groups
def test_fused_affine_leaky_relu_matches_numpy(rng, channels):
    # The bf16 inference form of norm + LReLU (a fused block-diagonal 1x1 conv) is
    # x * scale + shift, then max(0.2 y, y), rounded once to bfloat16.
    from crn_tf.nn.inference import affine_leaky_relu_1x1

    x = tf.cast(rng.normal(size=(1, 6, 10, channels)).astype(np.float32), tf.bfloat16)
    scale = rng.uniform(-1.5, 1.5, size=(1, 1, 1, channels)).astype(np.float32)
    shift = rng.normal(size=(1, 1, 1, channels)).astype(np.float32)
    got = tf.function(lambda v: affine_leaky_relu_1x1(v, scale, shift, 0.2)(v))(x)
    assert got.dtype == tf.bfloat16
    s16 = tf.cast(tf.cast(scale, tf.bfloat16), tf.float32).numpy()
    t16 = tf.cast(tf.cast(shift, tf.bfloat16), tf.float32).numpy()
    y = tf.cast(x, tf.float32).numpy() * s16 + t16
    expected = np.maximum(0.2 * y, y)
    np.testing.assert_allclose(tf.cast(got, tf.float32).numpy(), expected, rtol=2**-7, atol=1e-6)


def test_banded_graph_holds_one_band_at_a_time():
    # Traced as one tf.function (bands in order by control dependencies), the banded pass
    # still allocates a fraction of the plain graph's peak, whose last module holds the
    # full-size upsampled 64-channel features (measured: 3.4 MiB against 24 MiB).
    try:
        tf.config.experimental.reset_memory_stats("CPU:0")
        tf.config.experimental.get_memory_info("CPU:0")
    except ValueError:
        pytest.skip("this TensorFlow build keeps no CPU allocator statistics")
    model = CRN(output_size=(128, 256), widths=(8, 8, 8, 8, 64, 4))
    model.build()
    layout = tf.one_hot(np.random.default_rng(2).integers(0, 20, (1, 128, 256)), 20)
    peaks = {}
    for banded in (False, True):
        function = inference.forward_function(model, banded, band_bytes=256 * 1024)
        function(layout)  # trace and warm up first
        tf.config.experimental.reset_memory_stats("CPU:0")
        before = tf.config.experimental.get_memory_info("CPU:0")["current"]
        function(layout).numpy()
        peaks[banded] = tf.config.experimental.get_memory_info("CPU:0")["peak"] - before
    # Plain: 128 x 256 x 64 float32 upsample (8 MB) + merged input (11 MB) + ...; banded: the
    # 64 x 128 x 64 features (2 MB) + the last module's 4-channel output (0.5 MB) + bands.
    assert peaks[True] < peaks[False] / 4, peaks


def test_forward_function_is_one_cached_trace_per_pass(small_model, layout):
    # demo, evaluate, the trainer's samples and bench share this one wrapper of the model call.
    plain = inference.forward_function(small_model, False)
    assert inference.forward_function(small_model, banded=False) is plain
    before = plain.experimental_get_tracing_count()
    for _ in range(2):
        np.testing.assert_allclose(plain(layout).numpy(), small_model(layout).numpy(), rtol=0, atol=1e-4)
    assert plain.experimental_get_tracing_count() - before <= 1  # traced at most once here (maybe earlier)
    # bench's --xla and the banded pass are their own cached functions (XLA compiling is not run here).
    xla = inference.forward_function(small_model, False, jit_compile=True)
    assert xla is inference.forward_function(small_model, False, jit_compile=True)
    assert len({id(xla), id(plain), id(inference.forward_function(small_model, True))}) == 3


def test_fused_norm_is_chosen_by_inference_not_by_the_layer():
    # The paper's layer norm + LReLU stay elementwise in the model (training); only inference's
    # bf16 batch-1 graph writes each as a 1x1 conv (two per module), with the same output.
    model = CRN(output_size=(16, 32), widths=(8, 8, 4), dtype="mixed_bfloat16")
    model.build()
    layout = tf.one_hot(np.random.default_rng(3).integers(0, 20, size=(2, 16, 32)), 20)

    def convolutions(function, x):
        return sum(op.type == "Conv2D" for op in tf.function(function).get_concrete_function(x).graph.get_operations())

    one, two = layout[:1], layout
    layer = convolutions(lambda x: model(x), one)
    assert layer == 2 * model.num_modules + 1 and convolutions(lambda x: model(x), two) == layer  # + the output conv
    assert convolutions(lambda x: inference.forward(model, x), one) == layer + 2 * model.num_modules
    assert convolutions(lambda x: inference.forward(model, x), two) == layer  # batch 2: elementwise
    difference = np.abs(inference.synthesize(model, one).numpy() - model(one).numpy())
    assert difference.mean() < 1.5  # bf16 rounding (0.68 of 255 at 64x128)
