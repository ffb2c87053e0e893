"""Where VGG-19's weights come from: Keras' ImageNet file (downloaded into and read from the Keras
cache), a Keras .h5 / .weights.h5 file, or MatConvNet's imagenet-vgg-verydeep-19.mat, all returned
as {MatConvNet layer name: (kernel, bias)} in the original's RGB convention (`crn_tf.loss.vgg`
explains the channel order). The VGG layer itself lives in `crn_tf.loss.vgg`.
"""
from __future__ import annotations

import logging
import os
from typing import Any

import keras
import numpy as np

logger = logging.getLogger(__name__)

# VGG-19 up to conv5_2: (MatConvNet name, Keras name, output channels); "pool" between blocks.
ARCHITECTURE = (
    ("conv1_1", "block1_conv1", 64), ("conv1_2", "block1_conv2", 64), "pool",
    ("conv2_1", "block2_conv1", 128), ("conv2_2", "block2_conv2", 128), "pool",
    ("conv3_1", "block3_conv1", 256), ("conv3_2", "block3_conv2", 256),
    ("conv3_3", "block3_conv3", 256), ("conv3_4", "block3_conv4", 256), "pool",
    ("conv4_1", "block4_conv1", 512), ("conv4_2", "block4_conv2", 512),
    ("conv4_3", "block4_conv3", 512), ("conv4_4", "block4_conv4", 512), "pool",
    ("conv5_1", "block5_conv1", 512), ("conv5_2", "block5_conv2", 512),
)
CONV_LAYERS = tuple(entry for entry in ARCHITECTURE if entry != "pool")

KERAS_NOTOP_FILENAME = "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5"
KERAS_NOTOP_URL = (
    "https://storage.googleapis.com/tensorflow/keras-applications/vgg19/" + KERAS_NOTOP_FILENAME
)
KERAS_NOTOP_MD5 = "253f8cb515780f3b799900260a226db6"
MATCONVNET_FILENAME = "imagenet-vgg-verydeep-19.mat"
MATCONVNET_URL = "https://www.vlfeat.org/matconvnet/models/" + MATCONVNET_FILENAME


class VGGWeightsError(ValueError):
    """VGG-19 weights could not be found or read; the message names the file and the problem."""


def keras_cache_dir() -> str:
    """Where Keras caches downloaded application weights (`$KERAS_HOME/models`, else ~/.keras/models)."""
    home = os.environ.get("KERAS_HOME", os.path.join(os.path.expanduser("~"), ".keras"))
    return os.path.join(home, "models")


# === Weight loading: each returns {matconvnet name: (kernel [3,3,in,out], bias [out])} in RGB order ===

def _keras_to_rgb(weights: dict[str, tuple[np.ndarray, np.ndarray]]) -> dict:
    """Keras/Caffe conv1_1 reads BGR: reverse its input-channel axis so it reads RGB."""
    kernel, bias = weights["conv1_1"]
    weights["conv1_1"] = (np.ascontiguousarray(kernel[:, :, ::-1, :]), bias)
    return weights


def _weights_from_keras_model(model: keras.Model) -> dict:
    weights = {}
    for mat_name, keras_name, _ in CONV_LAYERS:
        kernel, bias = model.get_layer(keras_name).get_weights()
        weights[mat_name] = (np.asarray(kernel, np.float32), np.asarray(bias, np.float32))
    return _keras_to_rgb(weights)


def _legacy_h5_layer_names(path: str) -> set[str]:
    import h5py

    with h5py.File(path, "r") as handle:
        group = handle
        if "layer_names" not in group.attrs and "model_weights" in group:
            group = group["model_weights"]
        names = group.attrs.get("layer_names")
        if names is None:
            return set(group.keys())
        return {n.decode("utf8") if isinstance(n, bytes) else str(n) for n in names}


def load_keras_weights(path: str) -> dict:
    """Reads a Keras VGG-19 weights file (legacy `.h5`, with or without the top, or `.weights.h5`)."""
    if not os.path.isfile(path):
        raise VGGWeightsError(f"{path}: no such VGG-19 weights file")
    model = keras.applications.VGG19(include_top=False, weights=None)
    try:
        if path.endswith(".weights.h5"):
            model.load_weights(path)
        else:
            # Legacy files (the standard download) are matched by layer name, so the
            # with-top file works too; check the names first since by-name loading skips absent ones.
            present = _legacy_h5_layer_names(path)
            missing = [k for _, k, _ in CONV_LAYERS if k not in present]
            if missing:
                raise VGGWeightsError(
                    f"{path}: not a Keras VGG-19 weights file, layers missing: {', '.join(missing)}"
                )
            model.load_weights(path, by_name=True)
    except VGGWeightsError:
        raise
    except Exception as error:  # h5py / Keras raise many kinds for a wrong or corrupt file
        raise VGGWeightsError(
            f"{path}: could not load Keras VGG-19 weights ({type(error).__name__}: {error})"
        ) from error
    return _weights_from_keras_model(model)


def _download_imagenet_weights() -> str:
    """Keras' own download-and-cache of the notop ImageNet file (cached in `keras_cache_dir()`)."""
    return keras.utils.get_file(
        KERAS_NOTOP_FILENAME, KERAS_NOTOP_URL, cache_subdir="models", file_hash=KERAS_NOTOP_MD5
    )


def load_imagenet_weights() -> dict:
    """The Keras ImageNet weights, downloaded once; offline, an error saying how to pass a file."""
    try:
        path = _download_imagenet_weights()
    except Exception as error:
        raise VGGWeightsError(
            f"could not fetch the ImageNet VGG-19 weights ({type(error).__name__}: {error}). "
            f"Without internet, pass a local file instead: weights='/path/to/{KERAS_NOTOP_FILENAME}' "
            f"(Keras' file, from {KERAS_NOTOP_URL}; placing it in {keras_cache_dir()}/ makes "
            f"weights='imagenet' work offline), or weights='/path/to/{MATCONVNET_FILENAME}' "
            f"(the MatConvNet file the original CRN used, from {MATCONVNET_URL})."
        ) from error
    return load_keras_weights(path)


def _mat_string(value: Any) -> str:
    """A MATLAB char array as loadmat returns it (nested 1x1 arrays) -> str."""
    while isinstance(value, np.ndarray):
        if value.size == 0:
            return ""
        value = value.ravel()[0]
    return str(value)


def _mat_cell_items(value: Any) -> list:
    if isinstance(value, np.ndarray) and value.dtype == object:
        return [item for item in value.ravel()]
    return [value]


def _mat_layer_records(data: dict, path: str) -> list:
    """`layers` is a 1xN cell of 1x1 structs; loadmat gives an object array of record arrays."""
    if "layers" not in data:
        raise VGGWeightsError(
            f"{path}: no 'layers' variable; expected MatConvNet's {MATCONVNET_FILENAME}"
        )
    records = []
    for cell in np.asarray(data["layers"]).ravel():
        record = cell
        while isinstance(record, np.ndarray) and record.dtype.names is None and record.size == 1:
            record = record.ravel()[0]
        if isinstance(record, np.ndarray) and record.dtype.names is not None:
            record = record.ravel()[0]
        if not hasattr(record, "dtype") or record.dtype.names is None:
            raise VGGWeightsError(f"{path}: 'layers' holds a {type(record).__name__}, not structs")
        records.append(record)
    return records


def load_matconvnet_weights(path: str) -> dict:
    """Reads MatConvNet's `imagenet-vgg-verydeep-19.mat` (RGB order, as the original CRN used it).

    Layers are found by their `name` field (conv1_1 ... conv5_2); `weights` is a 1x2 cell
    {kernel [kh, kw, in, out], bias}, used as the original does (no transposition). Older
    versions of the file, with separate `filters` / `biases` fields, are read too.
    """
    import scipy.io

    if not os.path.isfile(path):
        raise VGGWeightsError(f"{path}: no such VGG-19 weights file")
    try:
        data = scipy.io.loadmat(path, variable_names=["layers"])  # skip meta/classes
    except Exception as error:
        raise VGGWeightsError(
            f"{path}: not a readable MATLAB .mat file ({type(error).__name__}: {error})"
        ) from error
    by_name = {}
    for record in _mat_layer_records(data, path):
        fields = record.dtype.names
        if "name" in fields:
            by_name[_mat_string(record["name"])] = record
    weights = {}
    in_channels = 3
    for mat_name, _, out_channels in CONV_LAYERS:
        if mat_name not in by_name:
            raise VGGWeightsError(f"{path}: no layer named '{mat_name}' in 'layers'")
        record = by_name[mat_name]
        fields = record.dtype.names
        if "weights" in fields:
            items = _mat_cell_items(record["weights"])
            if len(items) == 1 and isinstance(items[0], np.ndarray) and items[0].dtype == object:
                items = _mat_cell_items(items[0])
        elif "filters" in fields and "biases" in fields:
            items = [record["filters"], record["biases"]]
        else:
            raise VGGWeightsError(f"{path}: layer '{mat_name}' has no 'weights' field (fields: {fields})")
        if len(items) != 2:
            raise VGGWeightsError(
                f"{path}: layer '{mat_name}': 'weights' should be {{kernel, bias}}, found {len(items)} items"
            )
        kernel = np.asarray(items[0], np.float32)
        bias = np.asarray(items[1], np.float32).reshape(-1)
        expected = (3, 3, in_channels, out_channels)
        if kernel.shape != expected or bias.shape != (out_channels,):
            raise VGGWeightsError(
                f"{path}: layer '{mat_name}': kernel {kernel.shape} / bias {bias.shape}, "
                f"expected {expected} / ({out_channels},)"
            )
        weights[mat_name] = (kernel, bias)
        in_channels = out_channels
    return weights


def resolve_vgg_weights(weights: str | os.PathLike | None) -> dict | None:
    """`"imagenet"`, a `.h5`/`.weights.h5`/`.mat` path, or None -> RGB-order weights (None = random)."""
    if weights is None:
        return None
    weights = os.fspath(weights)
    if weights == "imagenet":
        return load_imagenet_weights()
    lower = weights.lower()
    if lower.endswith(".mat"):
        return load_matconvnet_weights(weights)
    if lower.endswith(".h5") or lower.endswith(".hdf5"):
        return load_keras_weights(weights)
    raise VGGWeightsError(
        f"{weights}: unknown VGG-19 weights; expected 'imagenet', None, a Keras .h5/.weights.h5 "
        f"file (e.g. {KERAS_NOTOP_FILENAME}) or MatConvNet's {MATCONVNET_FILENAME}"
    )
