"""The segmenter on a split's real photos, scored exactly as `crn_tf.evaluate --segment-real` scores it.

Photos are resized to the evaluation size with PIL bicubic (`prepare_real`), the SavedModel is
loaded and checked by `load_segmenter`, and `segmentation_score` accumulates one confusion
matrix against the labels read at full resolution and resized by nearest neighbour: the one
implementation of the protocol, shared with the evaluation run.
"""
from __future__ import annotations

import os
import tempfile
from typing import Callable

import numpy as np

from crn_tf.labels import LabelSet, class_names, resolve_label_set


def segmenter_label_set(segmenter, label_set: LabelSet | str | None = None) -> LabelSet:
    """The label set to score in: the one given, else the segmenter's own (its note), else Cityscapes."""
    if label_set is not None:
        return resolve_label_set(label_set)
    if segmenter.label_set is not None:
        return segmenter.label_set
    return resolve_label_set("cityscapes")


def score_real_photos(
    data: str,
    segmenter_dir: str,
    split: str = "val",
    size: tuple[int, int] | None = None,
    label_set: LabelSet | str | None = None,
    batch_size: int = 8,
    limit: int | None = None,
    resize_dir: str | None = None,
    progress: bool = True,
    blur: float = 0.0,
) -> dict:
    """mIoU, pixel accuracy and per-class IoU of the segmenter on the real photos of `data`'s `split`.

    `size` is the evaluation size (default: the size the segmenter was trained at, from its
    note; else each photo's own size). Resized photos go to `resize_dir` (kept; existing files
    reused) or a temporary folder. `blur` > 0 scores the photos after a Gaussian blur of that
    sigma in pixels (PIL): how much of its score the segmenter keeps on soft images. Raises
    SegmenterError / DataError with one-line messages.
    """
    if not blur >= 0:
        raise ValueError(f"--blur must be a sigma >= 0 in pixels, got {blur}")
    from crn_tf.data import find_examples
    from crn_tf.evaluate.run import segmentation_score
    from crn_tf.evaluate.segmentation import load_segmenter
    from crn_tf.evaluate.synthesize import prepare_real

    segmenter = load_segmenter(segmenter_dir)
    label_set = segmenter_label_set(segmenter, label_set)
    segmenter.check_label_set(label_set)
    if size is None and segmenter.info and segmenter.info.get("size"):
        size = tuple(int(v) for v in segmenter.info["size"])
    examples = find_examples(data, split=split, label_set=label_set, images="required")
    if limit is not None:
        examples = examples[:limit]
    with tempfile.TemporaryDirectory(prefix="crn-segmenter-score-") as scratch:
        if size is None:
            photos = [e.image_path for e in examples]
        else:
            photos = prepare_real(examples, resize_dir or scratch, size, "bicubic", progress)
        read_image = _gaussian_blurred_reader(blur) if blur > 0 else None
        scores = segmentation_score(segmenter, photos, examples, label_set, batch_size, progress, "segmenting (real)",
                                    read_image=read_image)
    scores.update(
        segmenter=segmenter.describe(), data=os.path.abspath(data), split=split, num_images=len(examples),
        size=list(size) if size else None, label_set=label_set.name, class_names=class_names(label_set)[:-1],
        blur=float(blur),
    )
    return scores


def _gaussian_blurred_reader(sigma: float) -> Callable[[str], np.ndarray]:
    """A photo reader for `segmentation_score` that Gaussian-blurs (sigma in pixels, PIL) in memory."""
    from PIL import Image, ImageFilter

    from crn_tf.evaluate.features import load_rgb

    def read(path: str) -> np.ndarray:
        return np.asarray(Image.fromarray(load_rgb(path)).filter(ImageFilter.GaussianBlur(sigma)))

    return read


def format_scores(scores: dict) -> str:
    """The score as a few lines of text: mIoU, pixel accuracy, then one line per class."""
    size = f"{scores['size'][0]}x{scores['size'][1]}" if scores.get("size") else "their own size"
    blurred = f", Gaussian blur sigma {scores['blur']:g} px" if scores.get("blur") else ""
    lines = [f"{scores['num_images']} real photos of {scores['data']} ({scores['split']}) at {size}{blurred}, "
             f"label set {scores['label_set']}",
             f"mIoU            {scores['miou']:.4f}" if scores["miou"] is not None else "mIoU            -",
             f"pixel accuracy  {scores['pixel_accuracy']:.4f}" if scores["pixel_accuracy"] is not None
             else "pixel accuracy  -",
             "per-class IoU:"]
    for name, iou in zip(scores["class_names"], scores["per_class_iou"]):
        lines.append(f"  {name:<16} {'-' if iou is None else f'{iou:.4f}'}")
    return "\n".join(lines)
