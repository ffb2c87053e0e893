"""Shared test set-up: quiet TensorFlow, a fixed seed, the `slow` marker, call counters of the data path, SHAPES5."""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest

from crn_tf.labels import LabelClass, LabelSet

# A five-class label set with ids 1..5 and void 0, other than Cityscapes' (the readers' and the
# pipeline's tests of "any label set").
SHAPES5 = LabelSet("shapes5", tuple(LabelClass(n, i + 1, c) for i, (n, c) in enumerate(
    [("a", (10, 20, 30)), ("b", (40, 50, 60)), ("c", (70, 80, 90)), ("d", (100, 110, 120)), ("e", (130, 140, 150))])),
    void_ids=(0,), void_colors=((0, 0, 0),))


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: builds full-size models or runs subprocesses (still run in CI)")


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def write_city(tmp_path_factory, num_train: int, num_val: int, size, seed: int) -> str:
    """A small synthetic Cityscapes tree (no instance maps) in a fresh temporary folder."""
    from crn_tf.synthetic import write_synthetic_city

    root = tmp_path_factory.mktemp("city")
    write_synthetic_city(root, num_train, num_val, size=size, seed=seed, instances=False)
    return str(root)


@pytest.fixture(scope="session")
def vgg():
    """One random-weight VGG-19 for the tests' losses: it is frozen, so sharing it is safe."""
    from crn_tf.loss.vgg import VGG19Features

    return VGG19Features(None)


def count_calls(monkeypatch, counts, module, name, key=None):
    """Replaces `module.name` by a wrapper that counts its calls under `key` (default: name)."""
    original = getattr(module, name)

    def counted(*args, **kwargs):
        counts[key or name] += 1
        return original(*args, **kwargs)

    monkeypatch.setattr(module, name, counted)


def data_path_counters(monkeypatch):
    """Counts, over every module of the data path, the scans, discoveries, header probes (cache hits
    included) and label-set resolutions."""
    import collections

    import crn_tf.data.pipeline
    import crn_tf.data.readers
    import crn_tf.data.scan
    import crn_tf.data.sources
    import crn_tf.training.data

    counts = collections.Counter()
    count_calls(monkeypatch, counts, crn_tf.data.readers, "_probe_cached", "probe")
    for module in (crn_tf.data.scan, crn_tf.data.sources):
        count_calls(monkeypatch, counts, module, "discover")
    for module in (crn_tf.training.data, crn_tf.data.pipeline):
        count_calls(monkeypatch, counts, module, "scan_dataset")
    for module in (crn_tf.data.scan, crn_tf.data.pipeline):
        count_calls(monkeypatch, counts, module, "resolve_label_set")
    return counts
