"""Segmentation score: a user-supplied segmenter on synthesized images, scored against the layouts.

mIoU and pixel accuracy come from ONE confusion matrix accumulated over the whole split (not an
average of per-image scores), with void ground-truth pixels ignored, as the Cityscapes scripts
and the DRN code used for the published CRN / pix2pixHD / SPADE figures do.

The segmenter is a TensorFlow SavedModel whose `serving_default` signature takes one image
batch [B, H, W, 3] (uint8, or float32 holding the same 0..255 values; the model does its own
normalisation) and returns either class indices [B, H', W'] (integer; values outside
0..num_classes-1 count as "no class") or logits/probabilities [B, H', W', num_classes].
A segmenter trained by `python -m crn_tf.evaluate.segmenter train` also carries a note of its
label set (`assets.extra/crn_segmenter.json`), so a mismatch with the layouts' classes is an error.
"""
from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

import numpy as np

SEGMENTER_NOTE = "crn_segmenter.json"
"""The note `crn_tf.evaluate.segmenter` writes into a SavedModel's `assets.extra/`: label set, size, scores."""
SEGMENTER_NOTE_FORMAT = "crn_tf-segmenter"
SAVED_MODEL_SUBDIR = "saved_model"
"""Where `crn_tf.evaluate.segmenter train` puts the SavedModel inside its output folder."""


class SegmenterError(ValueError):
    """The segmenter SavedModel is missing or has a signature this tool cannot use."""


# --- scoring -------------------------------------------------------------------------------------
def confusion_matrix(labels: np.ndarray, predictions: np.ndarray, num_classes: int) -> np.ndarray:
    """int64 [num_classes, num_classes + 1]: rows = ground truth, columns = prediction.

    Ground-truth void (255, or anything >= num_classes) is ignored. Predictions outside
    0..num_classes-1 land in the last column ("no class"): a miss for the true class that is
    not a false positive of any class.
    """
    labels = np.asarray(labels).astype(np.int64).ravel()
    predictions = np.asarray(predictions).astype(np.int64).ravel()
    if labels.shape != predictions.shape:
        raise ValueError(f"labels and predictions differ in size: {labels.size} vs {predictions.size}")
    valid = (labels >= 0) & (labels < num_classes)
    predicted = np.where((predictions >= 0) & (predictions < num_classes), predictions, num_classes)
    index = labels[valid] * (num_classes + 1) + predicted[valid]
    counts = np.bincount(index, minlength=num_classes * (num_classes + 1))
    return counts.reshape(num_classes, num_classes + 1)


def scores_from_confusion(matrix: np.ndarray) -> dict:
    """mIoU, pixel accuracy and per-class IoU from a confusion matrix of `confusion_matrix`.

    IoU_c = TP / (TP + FP + FN). A class absent from both ground truth and predictions has no
    IoU (None) and is left out of the mean, as DRN's `np.nanmean` and the Cityscapes scripts do.
    """
    matrix = np.asarray(matrix, dtype=np.int64)
    num_classes = matrix.shape[0]
    true_positive = np.diag(matrix[:, :num_classes]).astype(np.float64)
    ground_truth = matrix.sum(axis=1).astype(np.float64)  # TP + FN (FN includes "no class")
    predicted = matrix[:, :num_classes].sum(axis=0).astype(np.float64)  # TP + FP
    union = ground_truth + predicted - true_positive
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(union > 0, true_positive / union, np.nan)
    total = ground_truth.sum()
    return {
        "miou": float(np.nanmean(iou)) if np.isfinite(iou).any() else None,
        "pixel_accuracy": float(true_positive.sum() / total) if total else None,
        "per_class_iou": [None if np.isnan(v) else float(v) for v in iou],
        "classes_scored": int(np.isfinite(iou).sum()),
        "pixels_scored": int(total),
    }


def resize_nearest(classes: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Class map [H, W] -> [h, w] by nearest neighbour (TF's `resize(method="nearest")`)."""
    import tensorflow as tf

    classes = np.asarray(classes)
    if classes.shape[:2] == tuple(size):
        return classes
    resized = tf.image.resize(classes[..., None], size, method="nearest")
    return resized.numpy()[..., 0].astype(classes.dtype)


# --- the segmenter -------------------------------------------------------------------------------
@dataclasses.dataclass
class Segmenter:
    """A loaded segmentation SavedModel: `segment(images uint8 [B, H, W, 3]) -> int [B, H, W]`."""

    path: str
    input_dtype: str
    input_name: str
    output_name: str
    run_size: tuple[int, int] | None
    function: object
    owner: object = None  # the loaded SavedModel; its signature function uses its variables
    info: dict[str, Any] | None = None  # the crn_tf segmenter note, if the SavedModel has one

    @property
    def label_set(self):
        """The label set the segmenter was trained on (from its note), or None if unknown."""
        from crn_tf.labels import LabelSet

        if not self.info or "label_set" not in self.info:
            return None
        return LabelSet.from_dict(self.info["label_set"], source=os.path.join(self.path, "assets.extra", SEGMENTER_NOTE))

    def check_label_set(self, label_set) -> None:
        """Raises SegmenterError when the segmenter's recorded classes are not `label_set`'s (same order)."""
        own = self.label_set
        if own is not None and list(own.names) != list(label_set.names):
            raise SegmenterError(
                f"{self.path}: the segmenter predicts the {own.num_classes} classes of label set {own.name!r} "
                f"({', '.join(own.names[:4])}, ...) but the layouts use the {label_set.num_classes} classes of "
                f"{label_set.name!r} ({', '.join(label_set.names[:4])}, ...)"
            )

    def segment(self, images: np.ndarray) -> np.ndarray:
        """Class indices at the images' own size (predictions resized back by nearest neighbour)."""
        import tensorflow as tf

        images = np.asarray(images)
        height, width = images.shape[1:3]
        batch = tf.constant(images, dtype=tf.float32)
        if self.run_size is not None and tuple(self.run_size) != (height, width):
            batch = tf.image.resize(batch, self.run_size, method="bilinear", antialias=True)
        if self.input_dtype == "uint8":
            batch = tf.cast(tf.clip_by_value(tf.round(batch), 0, 255), tf.uint8)
        else:
            batch = tf.cast(batch, self.input_dtype)
        outputs = self.function(**{self.input_name: batch})
        output = outputs[self.output_name]
        if output.shape.rank == 4 and output.shape[-1] != 1:
            classes = tf.argmax(output, axis=-1, output_type=tf.int32)
        elif output.shape.rank == 4:
            classes = tf.cast(tf.round(tf.cast(output[..., 0], tf.float32)), tf.int32)
        elif output.shape.rank == 3:
            classes = tf.cast(output, tf.int32) if output.dtype.is_integer else tf.cast(tf.round(output), tf.int32)
        else:
            raise SegmenterError(
                f"{self.path}: output {self.output_name!r} has shape {output.shape}; expected class indices "
                "[B, H, W] or logits [B, H, W, classes]"
            )
        if tuple(classes.shape[1:3]) != (height, width):
            classes = tf.image.resize(classes[..., None], (height, width), method="nearest")[..., 0]
        return classes.numpy()

    def describe(self) -> str:
        size = f"{self.run_size[0]}x{self.run_size[1]}" if self.run_size else "the synthesized images' size"
        return (
            f"SavedModel {self.path} (input {self.input_name!r} {self.input_dtype} 0..255, output "
            f"{self.output_name!r}), run at {size}"
        )


_PREFERRED_OUTPUTS = ("classes", "class_ids", "predictions", "labels", "logits", "output_0")


def load_segmenter(path: str | os.PathLike, run_size: tuple[int, int] | None = None) -> Segmenter:
    """Loads the SavedModel at `path` and checks its `serving_default` signature (see module doc)."""
    import tensorflow as tf

    path = os.path.abspath(os.fspath(path))
    if not os.path.exists(os.path.join(path, "saved_model.pb")) and \
            os.path.exists(os.path.join(path, SAVED_MODEL_SUBDIR, "saved_model.pb")):
        path = os.path.join(path, SAVED_MODEL_SUBDIR)  # the output folder of `crn_tf.evaluate.segmenter train`
    if not os.path.exists(os.path.join(path, "saved_model.pb")):
        raise SegmenterError(f"{path}: not a SavedModel directory (no saved_model.pb)")
    info = read_segmenter_note(path)
    try:
        loaded = tf.saved_model.load(path)
    except Exception as error:  # TF raises many types for broken SavedModels
        raise SegmenterError(f"{path}: cannot load SavedModel ({type(error).__name__}: {error})") from error
    if "serving_default" not in loaded.signatures:
        raise SegmenterError(
            f"{path}: SavedModel has no 'serving_default' signature (has {sorted(loaded.signatures)}); save it "
            "with signatures={'serving_default': fn} or model.export(path)"
        )
    function = loaded.signatures["serving_default"]
    _, inputs = function.structured_input_signature
    if len(inputs) != 1:
        raise SegmenterError(f"{path}: serving_default takes {len(inputs)} inputs {sorted(inputs)}; expected one image")
    input_name, spec = next(iter(inputs.items()))
    if spec.shape.rank not in (None, 4) or (spec.shape.rank == 4 and spec.shape[-1] not in (None, 3)):
        raise SegmenterError(f"{path}: input {input_name!r} has shape {spec.shape}; expected [B, H, W, 3]")
    if spec.dtype not in (tf.uint8, tf.float32, tf.float16, tf.float64):
        raise SegmenterError(f"{path}: input {input_name!r} is {spec.dtype.name}; expected uint8 or float")
    outputs = function.structured_outputs
    names = sorted(outputs)
    if len(names) == 1:
        output_name = names[0]
    else:
        chosen = [n for n in _PREFERRED_OUTPUTS if n in outputs]
        if not chosen:
            raise SegmenterError(f"{path}: serving_default has outputs {names}; name the one to use 'classes' or 'logits'")
        output_name = chosen[0]
    return Segmenter(path, spec.dtype.name, input_name, output_name, run_size, function, loaded, info)


def read_segmenter_note(path: str | os.PathLike) -> dict[str, Any] | None:
    """The `assets.extra/crn_segmenter.json` note of a SavedModel directory, or None if it has none."""
    note = os.path.join(os.fspath(path), "assets.extra", SEGMENTER_NOTE)
    if not os.path.isfile(note):
        return None
    try:
        with open(note) as f:
            info = json.load(f)
    except (OSError, ValueError) as error:
        raise SegmenterError(f"{note}: unreadable segmenter note ({error})") from error
    if not isinstance(info, dict) or info.get("format") != SEGMENTER_NOTE_FORMAT:
        raise SegmenterError(f"{note}: not a crn_tf segmenter note (expected format {SEGMENTER_NOTE_FORMAT!r})")
    return info
