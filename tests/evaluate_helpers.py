"""Small stand-ins for the evaluation networks, shared by tests/test_evaluate_*.py.

- `build_tiny_fid_graph`: a TF1 GraphDef with the node names, op types and GraphDef version of
  TTUR's `classify_image_graph_def.pb` around random weights.
- `save_colour_segmenter`: a SavedModel "segmenter" that labels each pixel with the class of the
  nearest palette colour, so colourised layouts segment perfectly.
"""
import io

import numpy as np
import tensorflow as tf
from PIL import Image

SIZE = 299
EPSILON = 0.001
BLOCK = 13  # a 13x13 average pool before the conv keeps activations small: 299 = 23 * 13


def _tiny_jpeg() -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.full((4, 4, 3), 128, np.uint8)).save(buffer, format="JPEG")
    return buffer.getvalue()


def build_tiny_fid_graph(rng, dims=2048):
    """A GraphDef shaped like classify_image_graph_def.pb's head and tail, with random weights.

    DecodeJpeg/contents -> DecodeJpeg -> Cast -> ExpandDims -> ResizeBilinear(299x299) -> Sub -> Mul ->
    pool (13x13 average) -> conv (1x1 Conv2D, BatchNormWithGlobalNormalization, CheckNumerics, Relu)
    -> pool_3 (AvgPool to 1x1, `dims` channels) -> pool_3/_reshape ([1, dims], batch 1 as in the real
    graph). Returns (graph_def, weights).
    """
    weights = {
        "kernel": rng.normal(0, 0.5, (1, 1, 3, dims)).astype(np.float32),
        "mean": rng.normal(0, 0.1, dims).astype(np.float32),
        "variance": rng.uniform(0.5, 2.0, dims).astype(np.float32),
        "beta": rng.normal(0, 0.1, dims).astype(np.float32),
        "gamma": rng.uniform(0.5, 1.5, dims).astype(np.float32),
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
        tf.reshape(pool, [1, dims], name="pool_3/_reshape")
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


def write_tiny_fid_graph(path, rng, dims=2048):
    """Writes `build_tiny_fid_graph` to `path`; returns its weights."""
    graph_def, weights = build_tiny_fid_graph(rng, dims)
    with open(path, "wb") as f:
        f.write(graph_def.SerializeToString())
    return weights


class _ColourSegmenter(tf.Module):
    def __init__(self, palette):
        super().__init__()
        self.palette = tf.Variable(np.asarray(palette, np.float32), trainable=False)

    def _distances(self, images):
        x = tf.cast(images, tf.float32)[..., None, :]  # [B, H, W, 1, 3]
        return tf.reduce_sum(tf.square(x - self.palette), axis=-1)  # [B, H, W, classes]

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8, name="image")])
    def classes(self, image):
        return {"classes": tf.argmin(self._distances(image), axis=-1, output_type=tf.int32)}

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32, name="image")])
    def logits(self, image):
        return {"logits": -self._distances(image)}


def save_colour_segmenter(path, palette, output="classes"):
    """A SavedModel at `path`: uint8 images -> int class ids ("classes") or float images -> logits."""
    module = _ColourSegmenter(palette)
    signature = module.classes if output == "classes" else module.logits
    tf.saved_model.save(module, str(path), signatures={"serving_default": signature})
    return str(path)
