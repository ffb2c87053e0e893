"""The segmenter's SavedModel: the signature `crn_tf.evaluate --segmenter` takes, plus a note of its classes.

`serving_default` takes `images` float32 `[batch, height, width, 3]` (RGB 0..255, any size; the
network scales them itself) and returns `classes` int32 `[batch, height, width]` (the argmax) and
`logits` float32 `[batch, height, width, num_classes]`; `crn_tf.evaluate` reads `classes`. The
network runs in float32 whatever precision it was trained in. `assets.extra/crn_segmenter.json`
records the label set, the training size and step and the validation scores (TF ignores it).
"""
from __future__ import annotations

import json
import os
from typing import Any

import tensorflow as tf

from crn_tf.core.files import atomic_directory
from crn_tf.evaluate.segmentation import SEGMENTER_NOTE, SEGMENTER_NOTE_FORMAT
from crn_tf.evaluate.segmenter.network import SegmentationUNet
from crn_tf.labels import LabelSet


def float32_copy(model: SegmentationUNet) -> SegmentationUNet:
    """The same network and weights under the float32 policy (for export after bf16 training)."""
    config = {k: v for k, v in model.get_config().items() if k not in ("dtype", "trainable", "name")}
    copy = SegmentationUNet(**config, name=model.name)
    copy.build()
    copy.set_weights(model.get_weights())
    return copy


class _Serving(tf.Module):
    """The exported object: the float32 network and its one signature.

    A plain `tf.Module` rather than `keras.export.ExportArchive`, whose archive stores every
    variable twice (a 16 MB instead of an 8 MB SavedModel for the default network).
    """

    def __init__(self, network: SegmentationUNet):
        super().__init__(name="segmenter")
        self.network = network

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32, name="images")])
    def serve(self, images):
        logits = self.network(images, training=False)  # (B, H, W, C) float32
        return {"classes": tf.argmax(logits, axis=-1, output_type=tf.int32), "logits": logits}


def export_segmenter(model: SegmentationUNet, directory: str | os.PathLike, label_set: LabelSet,
                     info: dict[str, Any] | None = None) -> str:
    """Writes `model` as a SavedModel at `directory`, atomically (a killed export leaves the old one).

    `info` (size, step, scores, ...) goes into `assets.extra/crn_segmenter.json` beside the label set.
    Returns the directory.
    """
    if label_set.num_classes != model.num_classes:
        raise ValueError(f"label set {label_set.name!r} has {label_set.num_classes} classes but the segmenter "
                         f"predicts {model.num_classes}")
    serving = _Serving(float32_copy(model))
    network = serving.network
    with atomic_directory(directory) as staging:
        tf.saved_model.save(serving, staging, signatures={"serving_default": serving.serve})
        note = {"format": SEGMENTER_NOTE_FORMAT, "label_set": label_set.to_dict(), "class_names": list(label_set.names),
                "network": {k: v for k, v in network.get_config().items() if k not in ("dtype", "trainable")},
                "parameters": int(network.count_params()),
                "signature": {"inputs": {"images": "float32 [batch, height, width, 3], RGB 0..255"},
                              "outputs": {"classes": "int32 [batch, height, width]",
                                          "logits": f"float32 [batch, height, width, {model.num_classes}]"}},
                **(info or {})}
        os.makedirs(os.path.join(staging, "assets.extra"), exist_ok=True)
        with open(os.path.join(staging, "assets.extra", SEGMENTER_NOTE), "w") as f:
            json.dump(note, f, indent=2)
    return os.path.abspath(os.fspath(directory))
