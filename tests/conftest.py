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
