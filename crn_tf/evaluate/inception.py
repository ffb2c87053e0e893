"""Inception feature extractors for FID/KID.

The default is the network of the reference TensorFlow FID code (bioinf-jku/TTUR `fid.py`):
the TF1 graph `classify_image_graph_def.pb` from `inception-2015-12-05.tgz`, imported as a
GraphDef into a TF2 function. As TTUR does, float RGB images in 0..255 are fed, at their own
size, to the tensor `ExpandDims:0`; the graph itself then resizes them to 299x299 (its
`ResizeBilinear` op: TF1 bilinear, no corner alignment, no half-pixel centres, no antialiasing),
scales them (`Sub`, `Mul`), and the 2048-d features are read from `pool_3:0`.
pytorch-fid's default weights are a port of the same graph.

`keras` selects `keras.applications.InceptionV3` instead: a different network and
preprocessing, so its FID is NOT comparable with published figures.
"""
from __future__ import annotations

import dataclasses
import hashlib
import os
import tarfile
from typing import Callable

import numpy as np

INCEPTION_URL = "http://download.tensorflow.org/models/image/imagenet/inception-2015-12-05.tgz"
GRAPH_FILENAME = "classify_image_graph_def.pb"
INPUT_TENSOR = "ExpandDims:0"
FEATURE_TENSOR = "pool_3:0"


class InceptionError(ValueError):
    """The Inception network cannot be loaded; the message says which file and where to get it."""


@dataclasses.dataclass
class FeatureExtractor:
    """Maps RGB images [B, H, W, 3] (uint8 or float, 0..255) to features [B, dims] (float64).

    Attributes:
        name: short name for reports, e.g. "tf1-inception-2015-12-05 pool_3".
        key: identifies network + weights for feature caches.
        comparable: whether FID from these features compares with published figures.
        description: one sentence on network, input size and preprocessing, for the report.
    """

    name: str
    key: str
    comparable: bool
    description: str
    dims: int
    function: Callable[[np.ndarray], np.ndarray]

    def __call__(self, images: np.ndarray) -> np.ndarray:
        images = np.asarray(images)
        if images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(f"expected RGB images [batch, height, width, 3], got shape {images.shape}")
        features = np.asarray(self.function(images.astype(np.float32)), dtype=np.float64)
        return features.reshape(images.shape[0], -1)


# --- the TF1 graph (TTUR) -----------------------------------------------------------------------
def _missing_message(path: str) -> str:
    return (
        f"{path}: Inception graph not found. FID comparable with published figures needs "
        f"{GRAPH_FILENAME} from {INCEPTION_URL} (the file TTUR's fid.py uses); download it on a machine "
        f"with internet access and pass --inception /path/to/inception-2015-12-05.tgz (or the extracted "
        f".pb), or use --inception keras for a non-comparable estimate"
    )


def find_graph_file(path: str | os.PathLike) -> str:
    """The .pb or .tgz to read: `path` itself, or the one inside the folder `path`."""
    path = os.fspath(path)
    if os.path.isdir(path):
        for name in (GRAPH_FILENAME, "inception-2015-12-05.tgz"):
            if os.path.exists(os.path.join(path, name)):
                return os.path.join(path, name)
        raise InceptionError(_missing_message(os.path.join(path, GRAPH_FILENAME)))
    if not os.path.exists(path):
        raise InceptionError(_missing_message(path))
    return path


def read_graph_def(path: str | os.PathLike):
    """Reads `classify_image_graph_def.pb` from the .pb itself, the .tgz, or a folder holding either."""
    import tensorflow as tf

    path = find_graph_file(path)
    if path.endswith((".tgz", ".tar.gz", ".tar")):
        try:
            with tarfile.open(path) as archive:
                members = [m for m in archive.getmembers() if os.path.basename(m.name) == GRAPH_FILENAME]
                if not members:
                    raise InceptionError(f"{path}: archive holds no {GRAPH_FILENAME} (expected {INCEPTION_URL})")
                data = archive.extractfile(members[0]).read()
        except tarfile.TarError as error:
            raise InceptionError(f"{path}: not a readable tar archive ({error})") from error
    else:
        with open(path, "rb") as f:
            data = f.read()
    graph_def = tf.compat.v1.GraphDef()
    try:
        graph_def.ParseFromString(data)
    except Exception as error:  # protobuf raises DecodeError, a plain Exception subclass
        raise InceptionError(f"{path}: not a TensorFlow GraphDef ({error})") from error
    names = {node.name for node in graph_def.node}
    for tensor in (INPUT_TENSOR, FEATURE_TENSOR):
        if tensor.split(":")[0] not in names:
            raise InceptionError(f"{path}: graph has no node {tensor.split(':')[0]!r}; is it {GRAPH_FILENAME}?")
    return graph_def


def _node(name: str, op: str, inputs: list[str], attrs: dict):
    import tensorflow as tf

    node = tf.compat.v1.NodeDef(name=name, op=op, input=inputs)
    for key, value in attrs.items():
        node.attr[key].CopyFrom(value)
    return node


def upgrade_graph_def(graph_def):
    """Rewrites ops that TF 2 no longer runs inside a function into the same arithmetic.

    The 2015 graph normalises with `BatchNormWithGlobalNormalization` (removed in GraphDef version 9,
    so a TF2 function refuses it); each such node becomes
    `(t - mean) * (rsqrt(variance + eps) * gamma) + beta`, the kernel's own formula, under the same
    output name. Any other op this TensorFlow cannot run raises InceptionError.
    """
    import tensorflow as tf
    from tensorflow.python.framework import op_def_registry, versions

    upgraded = tf.compat.v1.GraphDef()
    upgraded.versions.CopyFrom(graph_def.versions)
    upgraded.library.CopyFrom(graph_def.library)
    for node in graph_def.node:
        if node.op != "BatchNormWithGlobalNormalization":
            upgraded.node.append(node)
            continue
        t, mean, variance, beta, gamma = node.input[:5]
        dtype = tf.dtypes.as_dtype(node.attr["T"].type or tf.float32.as_datatype_enum)
        typed = {"T": tf.compat.v1.AttrValue(type=dtype.as_datatype_enum)}
        epsilon = {
            "dtype": tf.compat.v1.AttrValue(type=dtype.as_datatype_enum),
            "value": tf.compat.v1.AttrValue(tensor=tf.make_tensor_proto(node.attr["variance_epsilon"].f, dtype=dtype)),
        }
        name = node.name
        if node.attr["scale_after_normalization"].b:
            scale = _node(f"{name}/scale", "Mul", [f"{name}/rsqrt", gamma], typed)
        else:
            scale = _node(f"{name}/scale", "Identity", [f"{name}/rsqrt"], typed)
        upgraded.node.extend(
            [
                _node(f"{name}/epsilon", "Const", [], epsilon),
                _node(f"{name}/variance_eps", "AddV2", [variance, f"{name}/epsilon"], typed),
                _node(f"{name}/rsqrt", "Rsqrt", [f"{name}/variance_eps"], typed),
                scale,
                _node(f"{name}/centred", "Sub", [t, mean], typed),
                _node(f"{name}/scaled", "Mul", [f"{name}/centred", f"{name}/scale"], typed),
                _node(name, "AddV2", [f"{name}/scaled", beta], typed),
            ]
        )
    for node in upgraded.node:
        op_def = op_def_registry.get(node.op)
        if op_def is None:
            raise InceptionError(f"Inception graph: op {node.op!r} (node {node.name!r}) is unknown to this TensorFlow")
        if op_def.deprecation.version and versions.GRAPH_DEF_VERSION >= op_def.deprecation.version:
            raise InceptionError(f"Inception graph: op {node.op!r} (node {node.name!r}) no longer runs in TensorFlow 2")
    return upgraded


def graph_preprocessing(graph_def) -> dict:
    """The graph's own input handling: resize size and the Sub/Mul constants (for the report)."""
    import tensorflow as tf

    consts = {n.name: n for n in graph_def.node if n.op == "Const"}
    facts = {}
    for key, name in (("resize_to", "ResizeBilinear/size"), ("subtract", "Sub/y"), ("multiply", "Mul/y")):
        if name in consts:
            value = tf.make_ndarray(consts[name].attr["value"].tensor)
            facts[key] = value.tolist()
    return facts


def tf1_graph_extractor(path: str | os.PathLike) -> FeatureExtractor:
    """The TTUR FID network: `pool_3` of the imported TF1 graph, fed through `ExpandDims:0`."""
    import tensorflow as tf

    path = find_graph_file(path)
    graph_def = upgrade_graph_def(read_graph_def(path))
    facts = graph_preprocessing(graph_def)

    def import_graph(images):
        (pool3,) = tf.compat.v1.import_graph_def(
            graph_def, input_map={INPUT_TENSOR: images}, return_elements=[FEATURE_TENSOR], name="FID_Inception_Net"
        )
        return pool3

    wrapped = tf.compat.v1.wrap_function(import_graph, [tf.TensorSpec([None, None, None, 3], tf.float32)])
    dims = int(np.prod(wrapped.structured_outputs.shape[1:])) if wrapped.structured_outputs.shape.rank else 2048

    def run(images: np.ndarray) -> np.ndarray:
        return wrapped(tf.constant(images)).numpy()

    size = os.path.getsize(path)
    digest = hashlib.sha1(graph_def.SerializeToString(deterministic=True)).hexdigest()[:16]
    resize = facts.get("resize_to", "?")
    return FeatureExtractor(
        name=f"tf1-graph:{os.path.basename(path)} pool_3",
        key=f"tf1-graph-{digest}",
        comparable=True,
        description=(
            f"TTUR's FID Inception graph ({os.path.basename(path)}, {size} bytes): float RGB 0..255 "
            f"fed to {INPUT_TENSOR} at native size; the graph resizes to {resize} (TF1 ResizeBilinear) and scales "
            f"(x - {facts.get('subtract', '?')}) * {facts.get('multiply', '?')}; features = {FEATURE_TENSOR}"
        ),
        dims=dims,
        function=run,
    )


# --- Keras InceptionV3 (not comparable) -------------------------------------------------------------
def keras_extractor(weights: str | None = "imagenet") -> FeatureExtractor:
    """`keras.applications.InceptionV3(include_top=False, pooling="avg")`: 2048-d, input 299x299.

    Images are resized to 299x299 (bilinear, `tf.image.resize`) and scaled to [-1, 1] as
    `keras.applications.inception_v3.preprocess_input` does. `weights` is "imagenet" (Keras
    downloads it to ~/.keras/models once), a path to an .h5/.weights.h5 file, or None (random,
    for tests only).
    """
    import keras
    import tensorflow as tf

    if weights not in (None, "imagenet") and not os.path.exists(weights):
        raise InceptionError(f"{weights}: Keras InceptionV3 weights file not found")
    try:
        model = keras.applications.InceptionV3(
            include_top=False, pooling="avg", weights=weights, input_shape=(299, 299, 3)
        )
    except Exception as error:  # the download fails offline with an URL/OS error
        raise InceptionError(
            f"cannot load Keras InceptionV3 weights {weights!r} ({type(error).__name__}: {error}); offline, pass "
            "--keras-weights PATH to inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5"
        ) from error

    @tf.function(reduce_retracing=True)
    def features(images):
        resized = tf.image.resize(images, (299, 299), method="bilinear")
        return model(resized / 127.5 - 1.0, training=False)

    def run(images: np.ndarray) -> np.ndarray:
        return features(tf.constant(images)).numpy()

    label = "random" if weights is None else os.path.basename(str(weights))
    return FeatureExtractor(
        name=f"keras-inception_v3:{label} avg_pool",
        key=f"keras-inception-v3-{label}",
        comparable=False,
        description=(
            f"keras.applications.InceptionV3 (weights {label}), resized to 299x299 bilinear, scaled x/127.5 - 1, "
            "global average pool; NOT the FID network, so its FID is not comparable with published figures"
        ),
        dims=2048,
        function=run,
    )


def load_extractor(spec: str, keras_weights: str | None = "imagenet") -> FeatureExtractor:
    """`spec` = a path to the .pb / .tgz (or a folder with it), or "keras"."""
    if spec == "keras":
        return keras_extractor(keras_weights)
    return tf1_graph_extractor(spec)
