"""VGG19Features against a NumPy VGG-19, weight files (.h5, .weights.h5, MatConvNet .mat), errors."""
import logging
import sys

import h5py
import keras
import numpy as np
import pytest
import scipy.io
import tensorflow as tf

from crn_tf.loss import vgg
from crn_tf.loss.vgg import FEATURE_NAMES, RGB_MEAN, VGG19Features, VGGWeightsError

BGR_MEAN = (103.939, 116.779, 123.68)  # Keras/Caffe's mean, per BGR channel


# === Fixtures: one random Keras VGG-19 saved in each supported format ===

@pytest.fixture(scope="module")
def keras_vgg():
    keras.utils.set_random_seed(4)
    model = keras.applications.VGG19(include_top=False, weights=None)
    # Random biases too, so a bias that is lost or misplaced shows.
    for layer in model.layers:
        if layer.weights:
            kernel, bias = layer.get_weights()
            layer.set_weights([kernel, np.random.default_rng(1).normal(0, 0.05, bias.shape).astype("float32")])
    return model


@pytest.fixture(scope="module")
def keras_files(keras_vgg, tmp_path_factory):
    directory = tmp_path_factory.mktemp("vgg_weights")
    new_format = str(directory / "vgg19.weights.h5")
    keras_vgg.save_weights(new_format)
    # The legacy layout of the standard download vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5.
    legacy = str(directory / vgg.KERAS_NOTOP_FILENAME)
    with h5py.File(legacy, "w") as handle:
        handle.attrs["layer_names"] = [layer.name.encode() for layer in keras_vgg.layers]
        handle.attrs["backend"] = b"tensorflow"
        handle.attrs["keras_version"] = b"2.2.4"
        for layer in keras_vgg.layers:
            group = handle.create_group(layer.name)
            values = layer.get_weights()
            names = [f"{layer.name}_W_1:0", f"{layer.name}_b_1:0"][: len(values)]
            group.attrs["weight_names"] = [n.encode() for n in names]
            for name, value in zip(names, values):
                group.create_dataset(name, data=value)
    return {"weights.h5": new_format, "h5": legacy}


def write_matconvnet(path, keras_model, bias_shape="row"):
    """A MatConvNet-style imagenet-vgg-verydeep-19.mat (RGB order) from Keras (BGR) weights."""
    cells = []
    for mat_name, keras_name, _ in vgg.CONV_LAYERS:
        kernel, bias = keras_model.get_layer(keras_name).get_weights()
        if mat_name == "conv1_1":
            kernel = kernel[:, :, ::-1, :]  # MatConvNet's conv1_1 reads RGB
        weights = np.empty((1, 2), dtype=object)
        weights[0, 0] = kernel.astype(np.float32)
        weights[0, 1] = bias.reshape(1, -1) if bias_shape == "row" else bias.reshape(-1, 1)
        # Fields in the file's order: name, type, weights, ... (the original indexes [2] = weights).
        cells.append({"name": mat_name, "type": "conv", "weights": weights, "stride": np.ones((1, 2))})
        cells.append({"name": "relu" + mat_name[4:], "type": "relu", "weights": np.empty((1, 0), object)})
    layers = np.empty((1, len(cells)), dtype=object)
    for i, cell in enumerate(cells):
        layers[0, i] = cell
    scipy.io.savemat(path, {"layers": layers, "meta": {"note": "test"}})


@pytest.fixture(scope="module")
def mat_file(keras_vgg, tmp_path_factory):
    path = str(tmp_path_factory.mktemp("vgg_mat") / vgg.MATCONVNET_FILENAME)
    write_matconvnet(path, keras_vgg)
    return path


@pytest.fixture(scope="module")
def image():
    return np.random.default_rng(0).uniform(0, 255, (1, 32, 64, 3)).astype(np.float32)


# === An independent VGG-19 in NumPy, fed the Caffe way (BGR minus the BGR mean) ===

def numpy_conv3x3_relu(x, kernel, bias):
    batch, height, width, channels = x.shape
    padded = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    patches = np.concatenate(
        [padded[:, dy:dy + height, dx:dx + width, :] for dy in range(3) for dx in range(3)], axis=-1
    )
    out = patches.reshape(-1, 9 * channels).astype(np.float64) @ kernel.reshape(9 * channels, -1) + bias
    return np.maximum(out, 0).reshape(batch, height, width, -1)


def numpy_pool(x, pooling):
    b, h, w, c = x.shape
    blocks = x.reshape(b, h // 2, 2, w // 2, 2, c)
    return blocks.mean(axis=(2, 4)) if pooling == "avg" else blocks.max(axis=(2, 4))


def numpy_vgg(keras_model, rgb, pooling):
    x = rgb[..., ::-1].astype(np.float64) - np.asarray(BGR_MEAN)
    out = {"input": (rgb.astype(np.float64) - np.asarray(RGB_MEAN))}
    for mat_name, keras_name, _ in vgg.CONV_LAYERS:
        if mat_name.endswith("_1") and mat_name != "conv1_1":
            x = numpy_pool(x, pooling)
        kernel, bias = keras_model.get_layer(keras_name).get_weights()
        x = numpy_conv3x3_relu(x, kernel, bias)
        out[mat_name] = x
    return {name: out[name] for name in FEATURE_NAMES}


def assert_features_close(actual, expected, rtol=1e-4):
    assert sorted(actual) == sorted(FEATURE_NAMES)
    for name in FEATURE_NAMES:
        a, e = np.asarray(actual[name], np.float64), np.asarray(expected[name], np.float64)
        assert a.shape == e.shape, name
        scale = np.abs(e).max()
        assert scale > 0, name
        np.testing.assert_allclose(a, e, rtol=0, atol=rtol * scale, err_msg=name)


# === Tests ===

@pytest.mark.parametrize("pooling", ["avg", "max"])
def test_features_match_numpy_vgg(keras_vgg, keras_files, image, pooling):
    features = VGG19Features(weights=keras_files["weights.h5"], pooling=pooling)
    out = features(image)
    assert_features_close(out, numpy_vgg(keras_vgg, image, pooling))
    shapes = {name: tuple(out[name].shape) for name in FEATURE_NAMES}
    assert shapes == {
        "input": (1, 32, 64, 3), "conv1_2": (1, 32, 64, 64), "conv2_2": (1, 16, 32, 128),
        "conv3_2": (1, 8, 16, 256), "conv4_2": (1, 4, 8, 512), "conv5_2": (1, 2, 4, 512),
    }


def test_avg_and_max_pooling_differ_only_after_the_first_pool(keras_files, image):
    avg = VGG19Features(weights=keras_files["weights.h5"], pooling="avg")(image)
    mx = VGG19Features(weights=keras_files["weights.h5"], pooling="max")(image)
    np.testing.assert_array_equal(avg["input"], mx["input"])
    np.testing.assert_allclose(avg["conv1_2"], mx["conv1_2"], rtol=1e-6, atol=1e-6)
    difference = np.abs(np.asarray(avg["conv2_2"]) - np.asarray(mx["conv2_2"])).max()
    assert difference > 1e-2 * np.abs(np.asarray(avg["conv2_2"])).max()


def test_legacy_h5_file_loads_the_same_weights(keras_vgg, keras_files, image):
    from_legacy = VGG19Features(weights=keras_files["h5"])(image)
    from_new = VGG19Features(weights=keras_files["weights.h5"])(image)
    for name in FEATURE_NAMES:
        np.testing.assert_array_equal(from_legacy[name], from_new[name])


def test_matconvnet_mat_gives_the_keras_features(keras_vgg, keras_files, mat_file, image):
    # The written file has the real file's nesting, as the original CRN indexes it.
    layers = scipy.io.loadmat(mat_file)["layers"][0]
    first_kernel = keras_vgg.get_layer("block1_conv1").get_weights()[0][:, :, ::-1, :]
    np.testing.assert_array_equal(layers[0][0][0][2][0][0], first_kernel)
    assert layers[0][0][0][0][0] == "conv1_1"
    from_mat = VGG19Features(weights=mat_file)(image)
    from_keras = VGG19Features(weights=keras_files["weights.h5"])(image)
    assert_features_close(from_mat, from_keras, rtol=1e-5)
    # "input" is the original's RGB - RGB mean, whatever the weights' convention.
    np.testing.assert_allclose(from_mat["input"], image - np.asarray(RGB_MEAN, np.float32), atol=1e-4)


def test_matconvnet_column_bias_and_extra_layers(keras_vgg, tmp_path, image, mat_file):
    path = str(tmp_path / "column_bias.mat")
    write_matconvnet(path, keras_vgg, bias_shape="column")
    a = VGG19Features(weights=path)(image)
    b = VGG19Features(weights=mat_file)(image)
    np.testing.assert_array_equal(a["conv5_2"], b["conv5_2"])


def test_bad_weight_files_are_named_in_the_error(tmp_path, keras_vgg):
    missing = str(tmp_path / "nope.mat")
    with pytest.raises(VGGWeightsError, match="nope.mat: no such"):
        VGG19Features(weights=missing)
    no_layers = str(tmp_path / "no_layers.mat")
    scipy.io.savemat(no_layers, {"something": np.ones(3)})
    with pytest.raises(VGGWeightsError, match="no_layers.mat: no 'layers'"):
        VGG19Features(weights=no_layers)
    garbage = tmp_path / "garbage.mat"
    garbage.write_bytes(b"not a mat file at all" * 10)
    with pytest.raises(VGGWeightsError, match="garbage.mat: not a readable MATLAB"):
        VGG19Features(weights=str(garbage))
    truncated = str(tmp_path / "truncated.mat")
    cells = np.empty((1, 1), dtype=object)
    weights = np.empty((1, 2), dtype=object)
    weights[0, 0], weights[0, 1] = np.zeros((3, 3, 3, 64), np.float32), np.zeros((1, 64), np.float32)
    cells[0, 0] = {"name": "conv1_1", "type": "conv", "weights": weights}
    scipy.io.savemat(truncated, {"layers": cells})
    with pytest.raises(VGGWeightsError, match="truncated.mat: no layer named 'conv1_2'"):
        VGG19Features(weights=truncated)
    wrong_h5 = str(tmp_path / "other.h5")
    with h5py.File(wrong_h5, "w") as handle:
        handle.attrs["layer_names"] = [b"dense"]
        handle.create_group("dense").attrs["weight_names"] = []
    with pytest.raises(VGGWeightsError, match="other.h5: not a Keras VGG-19 weights file, layers missing: block1_conv1"):
        VGG19Features(weights=wrong_h5)
    with pytest.raises(VGGWeightsError, match="weights.npz: unknown VGG-19 weights"):
        VGG19Features(weights=str(tmp_path / "weights.npz"))
    with pytest.raises(ValueError, match="pooling must be one of"):
        VGG19Features(weights=None, pooling="min")


def test_imagenet_offline_error_says_how_to_pass_a_file(monkeypatch):
    def offline(*args, **kwargs):
        raise Exception("URL fetch failure on https://storage.googleapis.com/...: None -- [Errno -3]")

    monkeypatch.setattr(keras.utils, "get_file", offline)
    monkeypatch.setenv("KERAS_HOME", "/somewhere/.keras")
    with pytest.raises(VGGWeightsError) as info:
        VGG19Features(weights="imagenet")
    message = str(info.value)
    assert "URL fetch failure" in message
    assert "weights='/path/to/vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5'" in message
    assert "/somewhere/.keras/models" in message
    assert "imagenet-vgg-verydeep-19.mat" in message


def test_imagenet_uses_the_keras_cache(monkeypatch, keras_files, image):
    calls = []

    def cached(fname, origin, **kwargs):
        calls.append((fname, origin, kwargs))
        return keras_files["h5"]

    monkeypatch.setattr(keras.utils, "get_file", cached)
    out = VGG19Features(weights="imagenet")(image)
    assert calls[0][0] == vgg.KERAS_NOTOP_FILENAME and calls[0][2]["cache_subdir"] == "models"
    expected = VGG19Features(weights=keras_files["h5"])(image)
    np.testing.assert_array_equal(out["conv3_2"], expected["conv3_2"])


def test_random_weights_warn_loudly_once(monkeypatch, capsys, caplog):
    from crn_tf.core.logs import cli_logging

    monkeypatch.setattr(vgg, "_random_warning_shown", False)
    with caplog.at_level(logging.WARNING, logger="crn_tf.loss.vgg"):  # an application's logging
        VGG19Features(weights=None)
        VGG19Features(weights=None)
    assert sum("NOT the paper's" in record.getMessage() for record in caplog.records) == 1
    monkeypatch.setattr(vgg, "_random_warning_shown", False)
    capsys.readouterr()
    # A root handler, as TensorFlow's absl logging adds mid-run (logging.basicConfig()): the CLI's
    # line must stay the one copy.
    monkeypatch.setattr(logging.root, "handlers", [logging.StreamHandler(sys.stderr)])
    with cli_logging():  # as in a CLI
        VGG19Features(weights=None)
        VGG19Features(weights=None)
    err = capsys.readouterr().err
    assert err.count("RANDOM weights") == 1 and err.startswith("WARNING: VGG19Features(weights=None)")


def test_random_weights_warning_is_one_stderr_line_without_logging_setup(monkeypatch, capsys):
    monkeypatch.setattr(vgg, "_random_warning_shown", False)
    monkeypatch.setattr(logging.root, "handlers", [])  # a script that configured no logging
    VGG19Features(weights=None)
    VGG19Features(weights=None)
    err = capsys.readouterr().err
    assert err.count("RANDOM weights") == 1 and err.startswith("WARNING: VGG19Features(weights=None)")


def test_frozen_no_gradient_into_weights(image):
    features = VGG19Features(weights=None)
    assert features.trainable_weights == [] and len(features.non_trainable_weights) == 28
    x = tf.Variable(image)
    with tf.GradientTape() as tape:
        total = tf.reduce_sum(features(x)["conv5_2"])
    grads = tape.gradient(total, [x] + [w.value for w in features.weights])
    assert grads[0] is not None and float(tf.reduce_max(tf.abs(grads[0]))) > 0
    assert all(g is None for g in grads[1:])


def test_get_config_round_trip(mat_file):
    features = VGG19Features(weights=mat_file, pooling="max", name="phi")
    config = features.get_config()
    assert config["weights"] == mat_file and config["pooling"] == "max" and config["trainable"] is False
    clone = VGG19Features.from_config(config)
    assert clone.get_config() == config
    for a, b in zip(features.weights, clone.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_mixed_precision_features(keras_files, image):
    full = VGG19Features(weights=keras_files["weights.h5"])(image)
    half = VGG19Features(weights=keras_files["weights.h5"], dtype="mixed_bfloat16")(image)
    assert half["input"].dtype == tf.float32
    np.testing.assert_allclose(half["input"], full["input"], atol=1e-5)
    for name in FEATURE_NAMES[1:]:
        assert half[name].dtype == tf.bfloat16, name
        a, e = np.asarray(tf.cast(half[name], tf.float32)), np.asarray(full[name])
        assert np.abs(a - e).mean() < 0.05 * np.abs(e).mean(), name
