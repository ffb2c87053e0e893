"""The Inception loaders: a tiny TF1 GraphDef with the FID graph's node names, and Keras InceptionV3."""
import io
import os
import tarfile

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from crn_tf.evaluate import inception
from crn_tf.evaluate.features import folder_features, list_images

DIMS = 2048
SIZE = 299
EPSILON = 0.001
BLOCK = 13  # a 13x13 average pool before the conv keeps activations small: 299 = 23 * 13


def _tiny_jpeg() -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.full((4, 4, 3), 128, np.uint8)).save(buffer, format="JPEG")
    return buffer.getvalue()


def build_tiny_fid_graph(rng):
    """A GraphDef shaped like classify_image_graph_def.pb's head and tail, with random weights.

    DecodeJpeg/contents -> DecodeJpeg -> Cast -> ExpandDims -> ResizeBilinear(299x299) -> Sub -> Mul ->
    pool (13x13 average) -> conv (1x1 Conv2D, BatchNormWithGlobalNormalization, CheckNumerics, Relu) -> pool_3 (AvgPool to 1x1,
    2048 channels) -> pool_3/_reshape ([1, 2048], as in the real graph). Returns (graph_def, weights).
    """
    weights = {
        "kernel": rng.normal(0, 0.5, (1, 1, 3, DIMS)).astype(np.float32),
        "mean": rng.normal(0, 0.1, DIMS).astype(np.float32),
        "variance": rng.uniform(0.5, 2.0, DIMS).astype(np.float32),
        "beta": rng.normal(0, 0.1, DIMS).astype(np.float32),
        "gamma": rng.uniform(0.5, 1.5, DIMS).astype(np.float32),
        "subtract": np.float32(128.0),
        "multiply": np.float32(1.0 / 128.0),
    }
    graph = tf.Graph()
    with graph.as_default():
        contents = tf.constant(_tiny_jpeg(), name="DecodeJpeg/contents")
        decoded = tf.raw_ops.DecodeJpeg(contents=contents, channels=3, name="DecodeJpeg")
        cast = tf.cast(decoded, tf.float32, name="Cast")
        expanded = tf.expand_dims(cast, 0, name="ExpandDims")
        size = tf.constant([SIZE, SIZE], name="ResizeBilinear/size")
        resized = tf.raw_ops.ResizeBilinear(images=expanded, size=size, name="ResizeBilinear")
        centred = tf.subtract(resized, tf.constant(weights["subtract"], name="Sub/y"), name="Sub")
        scaled = tf.multiply(centred, tf.constant(weights["multiply"], name="Mul/y"), name="Mul")
        pooled = tf.nn.avg_pool2d(scaled, BLOCK, BLOCK, "VALID", name="pool")
        conv = tf.nn.conv2d(pooled, tf.constant(weights["kernel"], name="conv/conv2d_params"), 1, "SAME", name="conv/Conv2D")
        statistics = [
            tf.constant(weights[key], name=f"conv/batchnorm/{name}")
            for key, name in (("mean", "moving_mean"), ("variance", "moving_variance"), ("beta", "beta"), ("gamma", "gamma"))
        ]
        normed = tf.identity(conv, name="conv/batchnorm")  # replaced below by the 2015 batch-norm op
        checked = tf.debugging.check_numerics(normed, "conv", name="conv/CheckNumerics")
        relu = tf.nn.relu(checked, name="conv")
        pool = tf.nn.avg_pool2d(relu, SIZE // BLOCK, SIZE // BLOCK, "VALID", name="pool_3")
        tf.reshape(pool, [1, DIMS], name="pool_3/_reshape")
    graph_def = graph.as_graph_def()
    for node in graph_def.node:
        if node.op == "ResizeBilinear":  # the 2015 graph predates this attribute (it defaults to False)
            node.attr.pop("half_pixel_centers", None)
        if node.name == "conv/batchnorm":  # TF refuses to build this deprecated op today, so write it
            node.op = "BatchNormWithGlobalNormalization"
            node.input.extend([s.op.name for s in statistics])
            node.attr["variance_epsilon"].f = EPSILON
            node.attr["scale_after_normalization"].b = True
    graph_def.versions.producer = 5  # as old as the real file, so its deprecated ops are allowed
    return graph_def, weights


def _legacy_resize(image: np.ndarray, size: int) -> np.ndarray:
    """TF1 ResizeBilinear, align_corners=False, no half-pixel centres: source = dest * in / out."""
    def axis(n_in):
        source = np.arange(size) * (n_in / size)
        low = np.floor(source).astype(int)
        return low, np.minimum(low + 1, n_in - 1), source - low

    y0, y1, fy = axis(image.shape[0])
    x0, x1, fx = axis(image.shape[1])
    top = image[y0][:, x0] * (1 - fx)[None, :, None] + image[y0][:, x1] * fx[None, :, None]
    bottom = image[y1][:, x0] * (1 - fx)[None, :, None] + image[y1][:, x1] * fx[None, :, None]
    return top * (1 - fy)[:, None, None] + bottom * fy[:, None, None]


def _numpy_features(image: np.ndarray, w) -> np.ndarray:
    x = (_legacy_resize(image.astype(np.float64), SIZE) - w["subtract"]) * w["multiply"]
    cells = SIZE // BLOCK
    x = x.reshape(cells, BLOCK, cells, BLOCK, 3).mean(axis=(1, 3))
    f = x.reshape(-1, 3) @ w["kernel"][0, 0].astype(np.float64)
    f = (f - w["mean"]) / np.sqrt(w["variance"] + EPSILON) * w["gamma"] + w["beta"]
    return np.maximum(f, 0).mean(axis=0)


@pytest.fixture(scope="module")
def tiny_graph(tmp_path_factory):
    rng = np.random.default_rng(0)
    graph_def, weights = build_tiny_fid_graph(rng)
    folder = tmp_path_factory.mktemp("inception")
    pb = folder / inception.GRAPH_FILENAME
    pb.write_bytes(graph_def.SerializeToString())
    return pb, weights


def test_graph_loader_matches_numpy_on_a_batch(tiny_graph, rng):
    pb, weights = tiny_graph
    extractor = inception.load_extractor(str(pb))
    images = rng.integers(0, 256, (3, 24, 40, 3)).astype(np.uint8)  # a batch: the graph's ExpandDims has batch 1
    features = extractor(images)
    assert features.shape == (3, DIMS) and extractor.dims == DIMS
    expected = np.stack([_numpy_features(image, weights) for image in images])
    np.testing.assert_allclose(features, expected, rtol=2e-4, atol=2e-4)
    assert extractor.comparable
    assert "ExpandDims:0" in extractor.description and "[299, 299]" in extractor.description
    assert "0.0078125" in extractor.description and "128.0" in extractor.description


def test_graph_loader_reads_the_tgz_and_folder(tiny_graph, tmp_path, rng):
    pb, _ = tiny_graph
    archive = tmp_path / "inception-2015-12-05.tgz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(pb, arcname=inception.GRAPH_FILENAME)
    images = rng.integers(0, 256, (2, 16, 32, 3)).astype(np.uint8)
    from_pb = inception.load_extractor(str(pb))(images)
    from_tgz = inception.load_extractor(str(archive))(images)
    from_folder = inception.load_extractor(str(tmp_path))(images)
    np.testing.assert_array_equal(from_pb, from_tgz)
    np.testing.assert_array_equal(from_pb, from_folder)


def test_missing_graph_says_where_to_get_it(tmp_path):
    with pytest.raises(inception.InceptionError) as error:
        inception.load_extractor(str(tmp_path / "nothing.pb"))
    message = str(error.value)
    assert "nothing.pb" in message and inception.INCEPTION_URL in message and "--inception" in message


def test_wrong_file_is_rejected(tmp_path):
    bad = tmp_path / "bad.pb"
    bad.write_bytes(b"this is not a protobuf \xff\xfe")
    with pytest.raises(inception.InceptionError, match="bad.pb"):
        inception.read_graph_def(bad)
    empty_graph = tmp_path / "other.pb"
    empty_graph.write_bytes(tf.Graph().as_graph_def().SerializeToString())
    with pytest.raises(inception.InceptionError, match="ExpandDims"):
        inception.read_graph_def(empty_graph)


def test_features_are_cached_per_file_list(tiny_graph, tmp_path, rng):
    pb, _ = tiny_graph
    folder = tmp_path / "images"
    folder.mkdir()
    for index in range(3):
        Image.fromarray(rng.integers(0, 256, (16, 32, 3)).astype(np.uint8)).save(folder / f"{index}.png")
    Image.fromarray(rng.integers(0, 256, (20, 20, 3)).astype(np.uint8)).save(folder / "odd_size.png")
    calls = []
    extractor = inception.load_extractor(str(pb))
    original = extractor.function
    extractor.function = lambda images: calls.append(images.shape) or original(images)
    cache = tmp_path / "cache"
    paths = list_images(folder)
    first = folder_features(paths, extractor, cache_dir=cache, batch_size=2)
    assert sorted(calls) == sorted([(2, 16, 32, 3), (1, 16, 32, 3), (1, 20, 20, 3)])
    calls.clear()
    second = folder_features(paths, extractor, cache_dir=cache, batch_size=2)
    assert calls == [] and np.array_equal(first, second)
    os.utime(paths[0], ns=(1, 1))  # a changed file invalidates the entry
    folder_features(paths, extractor, cache_dir=cache, batch_size=2)
    assert calls


def test_keras_inception_is_flagged_not_comparable(rng):
    extractor = inception.load_extractor("keras", keras_weights=None)
    features = extractor(rng.integers(0, 256, (2, 32, 64, 3)).astype(np.uint8))
    assert features.shape == (2, 2048) and np.isfinite(features).all()
    assert not extractor.comparable and "not comparable" in extractor.description


def test_keras_missing_weights_file(tmp_path):
    with pytest.raises(inception.InceptionError, match="missing.h5"):
        inception.load_extractor("keras", keras_weights=str(tmp_path / "missing.h5"))
