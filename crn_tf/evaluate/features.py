"""Inception features of a folder of images, batched, with an on-disk cache.

The cache is one .npz per (file list, sizes, modification times, extractor) under a cache
folder, so re-scoring the same real images or re-running an evaluation costs nothing, and
any change to a file or to the network gives a new entry.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from typing import Sequence

import numpy as np

from crn_tf.core.files import atomic_path
from crn_tf.core.progress import Progress
from crn_tf.evaluate.inception import FeatureExtractor

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")

logger = logging.getLogger(__name__)


def list_images(folder: str | os.PathLike) -> list[str]:
    """Sorted paths of the PNG/JPEG files directly inside `folder`."""
    folder = os.fspath(folder)
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"{folder}: image folder not found")
    return sorted(
        os.path.join(folder, name) for name in os.listdir(folder) if name.lower().endswith(IMAGE_EXTENSIONS)
    )


def load_rgb(path: str) -> np.ndarray:
    """uint8 RGB [H, W, 3] (grey and RGBA are converted), with an error naming the file."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"))
    except (OSError, ValueError) as error:
        raise ValueError(f"{path}: cannot read image ({error})") from error


def cache_key(paths: Sequence[str], extractor: FeatureExtractor) -> str:
    """sha1 over the extractor key and each file's absolute path, size and mtime."""
    entries = []
    for path in paths:
        stat = os.stat(path)
        entries.append([os.path.abspath(path), stat.st_size, stat.st_mtime_ns])
    blob = json.dumps({"extractor": extractor.key, "files": entries}, sort_keys=True).encode()
    return hashlib.sha1(blob).hexdigest()


def compute_features(
    paths: Sequence[str], extractor: FeatureExtractor, batch_size: int = 50, label: str = "features"
) -> np.ndarray:
    """Features [len(paths), dims] of the images, fed in batches of equal-sized images."""
    features = np.zeros((len(paths), extractor.dims), dtype=np.float64)
    progress = Progress(len(paths), label)
    batch: list[np.ndarray] = []
    done = 0

    def flush() -> None:
        nonlocal batch, done
        features[done : done + len(batch)] = extractor(np.stack(batch))
        done += len(batch)
        progress.update(len(batch))
        batch = []

    for path in paths:
        image = load_rgb(path)
        if batch and (image.shape != batch[0].shape or len(batch) == batch_size):
            flush()
        batch.append(image)
    if batch:
        flush()
    progress.close()
    return features


def read_cache_entry(cache_path: str, paths: Sequence[str], extractor: FeatureExtractor) -> np.ndarray | None:
    """The cached features of `paths`, or None when the entry is missing or not whole.

    An entry that does not read back (truncated, a bad zip CRC), holds another file list or
    extractor, or features of the wrong shape or with NaN/Inf is logged and recomputed, never used.
    """
    if not os.path.exists(cache_path):
        return None
    try:
        with np.load(cache_path, allow_pickle=False) as data:
            features = np.array(data["features"])
            files = [str(f) for f in data["files"]]
            key = str(data["extractor"])
    except Exception as error:  # zipfile.BadZipFile, EOFError, OSError, ValueError, KeyError ...
        logger.warning("feature cache entry %s cannot be read (%s); computing the features again", cache_path, error)
        return None
    expected = [os.path.abspath(p) for p in paths]
    if (files != expected or key != extractor.key or features.shape != (len(paths), extractor.dims)
            or not np.isfinite(features).all()):
        logger.warning("feature cache entry %s does not hold these images' features; computing them again",
                       cache_path)
        return None
    return features


def folder_features(
    paths: Sequence[str],
    extractor: FeatureExtractor,
    cache_dir: str | os.PathLike | None = None,
    batch_size: int = 50,
    label: str = "features",
) -> np.ndarray:
    """`compute_features`, read from / written to `cache_dir` when given."""
    paths = list(paths)
    if not paths:
        raise ValueError(f"{label}: no images to compute features of")
    if cache_dir is None:
        return compute_features(paths, extractor, batch_size, label)
    key = cache_key(paths, extractor)
    cache_path = os.path.join(os.fspath(cache_dir), f"{key}.npz")
    cached = read_cache_entry(cache_path, paths, extractor)
    if cached is not None:
        return cached
    features = compute_features(paths, extractor, batch_size, label)
    with atomic_path(cache_path) as temporary:
        np.savez(temporary, features=features, files=np.array([os.path.abspath(p) for p in paths]), extractor=extractor.key)
    return features
