"""Shared test set-up: quiet TensorFlow, a fixed seed, and the `slow` marker."""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest


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
