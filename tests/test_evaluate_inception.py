"""The Inception loaders: a tiny TF1 GraphDef with the FID graph's node names, and Keras InceptionV3."""
import os
import tarfile

import numpy as np
import pytest
import tensorflow as tf
from evaluate_helpers import BLOCK, EPSILON, SIZE, build_tiny_fid_graph
from PIL import Image

from crn_tf.evaluate import inception
from crn_tf.evaluate.features import folder_features, list_images

DIMS = 2048


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
