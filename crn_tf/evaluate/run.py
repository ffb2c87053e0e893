"""One evaluation run: synthesize (or read) the images of a split, score them, write the report."""
from __future__ import annotations

import dataclasses
import logging
import os
import time
from typing import Callable

import numpy as np

from crn_tf.core.progress import Progress
from crn_tf.labels import LabelSet, class_names, resolve_label_set

logger = logging.getLogger(__name__)

DEFAULT_CACHE_DIR = os.path.join(os.path.expanduser("~"), ".cache", "crn_tf", "features")


@dataclasses.dataclass
class EvaluationOptions:
    """What `evaluate` does; the CLI flags of `crn-evaluate` map one to one onto these fields.

    Exactly one of `checkpoint` (synthesize with it) and `synthesized` (an existing folder of
    `<stem>.png`) is given. `inception` is a path to the TF1 graph (.pb/.tgz/folder), "keras",
    or None (no FID/KID). `segmenter` is a SavedModel directory or None (no segmentation score).
    """

    data: str
    out: str = os.path.join("results", "evaluate")
    split: str = "val"
    images_dir: str | None = None
    checkpoint: str | None = None
    synthesized: str | None = None
    real: str | None = None
    label_set: str | None = None
    batch_size: int = 4
    low_memory: bool | str = "auto"  # auto / on / off: crn_tf.nn.inference's banded pass
    image_index: int | str = 0
    limit: int | None = None
    inception: str | None = None
    keras_weights: str | None = "imagenet"
    fid_batch_size: int = 50
    kid_subsets: int = 100
    kid_subset_size: int = 1000
    cache_dir: str | None = DEFAULT_CACHE_DIR
    real_resize: str = "bicubic"
    segmenter: str | None = None
    segmenter_size: tuple[int, int] | None = None
    segment_real: bool = False
    name: str | None = None
    progress: bool = True


def _log(options: EvaluationOptions, message: str) -> None:
    """What the evaluation is doing, shown beside the progress bars (not with --no-progress)."""
    if options.progress:
        logger.info(message)


def segmentation_score(
    segmenter,
    image_paths: list[str],
    label_examples: list,
    label_set: LabelSet,
    batch_size: int = 4,
    progress: bool = True,
    label: str = "segmenting",
    read_image: Callable[[str], np.ndarray] | None = None,
) -> dict:
    """Runs `segmenter` on the images and scores it against the examples' labels (one matrix).

    `label_examples[i]` is the layout of `image_paths[i]`. Labels are read at their own size and
    resized to each image's size by nearest neighbour. `read_image` turns a path into uint8 RGB
    [H, W, 3] (default: the file as it is), so a caller can score changed photos without
    writing them.
    """
    from crn_tf.data import read_label
    from crn_tf.evaluate.features import load_rgb
    from crn_tf.evaluate.segmentation import (
        confusion_matrix,
        resize_nearest,
        scores_from_confusion,
    )

    num_classes = label_set.num_classes
    matrix = np.zeros((num_classes, num_classes + 1), dtype=np.int64)
    read_image = read_image or load_rgb
    bar = Progress(len(image_paths), label, enabled=progress)
    for start in range(0, len(image_paths), batch_size):
        images = [read_image(p) for p in image_paths[start : start + batch_size]]
        groups: dict[tuple, list[int]] = {}
        for i, image in enumerate(images):
            groups.setdefault(image.shape, []).append(i)
        for indices in groups.values():
            predictions = segmenter.segment(np.stack([images[i] for i in indices]))
            for prediction, i in zip(predictions, indices):
                example = label_examples[start + i]
                classes = read_label(example.label_path, label_set, example.label_format)
                classes = resize_nearest(classes, images[i].shape[:2])
                matrix += confusion_matrix(classes, prediction, num_classes)
        bar.update(len(images))
    bar.close()
    scores = scores_from_confusion(matrix)
    scores["confusion_matrix"] = matrix.tolist()
    return scores


def evaluate(options: EvaluationOptions) -> dict:
    """Runs the evaluation described by `options`, writes `report.json`/`report.md` into `options.out`.

    Returns the report dict. Raises ValueError subclasses (DataError, CheckpointError,
    InceptionError, SegmenterError) and FileNotFoundError with messages naming the file.
    """
    from crn_tf.data import scan_dataset
    from crn_tf.evaluate.report import write_report
    from crn_tf.evaluate.synthesize import existing_synthesized, image_size, synthesize_split

    start = time.time()
    _check(options)
    out = os.fspath(options.out)
    os.makedirs(out, exist_ok=True)
    model, label_set, weights = _generator(options)

    need_photos = (options.inception is not None or options.segment_real) and options.real is None
    # One scan: the layouts with their sizes; photos are found, not probed (they are resized to the
    # evaluation size whatever their own).
    scan = scan_dataset(options.data, split=options.split, label_set=label_set,
                        images="required" if need_photos else "optional", images_dir=options.images_dir,
                        check_photos=False)
    layouts = scan.usable()
    if options.limit is not None:
        layouts = layouts.take(range(min(options.limit, len(layouts))))
    examples = list(layouts.examples)

    # --- the synthesized images ---
    if model is not None:
        synthesized_dir = os.path.join(out, "synthesized")
        _log(options, f"synthesizing {len(examples)} layouts into {synthesized_dir}")
        synthesized = synthesize_split(model, layouts, synthesized_dir, label_set, options.batch_size,
                                       options.image_index, options.progress, options.low_memory)
        size, per_layout = tuple(model.output_size), int(model.num_images)
        del model  # free the generator before the scoring networks are loaded
    else:
        synthesized_dir = os.fspath(options.synthesized)
        synthesized = existing_synthesized(examples, synthesized_dir)
        size, per_layout = image_size(synthesized[0]), 1

    report: dict = {
        "name": options.name or (os.path.basename(os.path.normpath(options.checkpoint)) if options.checkpoint
                                 else os.path.basename(os.path.normpath(synthesized_dir))),
        "dataset": {"source": os.path.abspath(options.data) if isinstance(options.data, str) else str(options.data),
                    "format": scan.kind, "split": options.split, "label_set": label_set.name},
        "size": list(size),
        "num_layouts": len(examples),
        "num_images": len(synthesized),
        "num_images_per_layout": per_layout,
        "image_index": options.image_index,
        "weights": weights,
        "synthesized_dir": os.path.abspath(synthesized_dir),
    }
    real = _RealPhotos(options, examples, os.path.join(out, "real"), size)
    if options.inception is not None or options.segment_real:  # the real photos are read: say how
        report["real_resize"] = real.how
    if options.inception is not None:
        report["fid"] = _fid_section(options, synthesized, real)
    if options.segmenter is not None:
        report["segmentation"] = _segmentation_section(options, synthesized, examples, label_set, size, real)

    report["seconds"] = round(time.time() - start, 1)
    json_path, md_path = write_report(report, out)
    report["report_files"] = [json_path, md_path]
    return report


def _check(options: EvaluationOptions) -> None:
    """The option combinations evaluate refuses before it loads anything."""
    if (options.checkpoint is None) == (options.synthesized is None):
        raise ValueError("give exactly one of --checkpoint (synthesize) and --synthesized DIR (score a folder)")
    if options.inception is None and options.segmenter is None:
        raise ValueError("nothing to measure: pass --inception PATH|keras (FID/KID) and/or --segmenter DIR")
    if options.batch_size < 1 or options.fid_batch_size < 1:
        raise ValueError("batch sizes must be >= 1")


def _generator(options: EvaluationOptions) -> tuple:
    """(model or None, label set, the report's "weights" line): the checkpoint's, or none for --synthesized."""
    if options.checkpoint is None:
        label_set = resolve_label_set(options.label_set)
        return None, label_set, f"unknown (images read from {os.path.abspath(options.synthesized)})"
    from crn_tf.weights.checkpoint import load_model, resolve_checkpoint_dir
    from crn_tf.weights.download import resolve_checkpoint

    checkpoint = resolve_checkpoint(options.checkpoint)  # authors-256p ... -> the cache, downloaded if missing
    model = load_model(checkpoint)
    label_set = resolve_label_set(options.label_set) if options.label_set else model.label_set
    info = getattr(model, "checkpoint_info", {}) or {}
    weights = os.path.abspath(resolve_checkpoint_dir(checkpoint))
    if info.get("source"):
        weights += f" ({info['source']})"
    if info.get("step") is not None:
        weights += f", step {info['step']}"
    return model, label_set, weights


class _RealPhotos:
    """The real photos at the evaluation size, made (or found with --real) once, when first asked for."""

    def __init__(self, options: EvaluationOptions, examples: list, folder: str, size: tuple[int, int]):
        self.options, self.examples, self.folder, self.size = options, examples, folder, size
        self._paths: list[str] | None = None

    @property
    def paths(self) -> list[str]:
        from crn_tf.evaluate.synthesize import existing_synthesized, prepare_real

        if self._paths is None:
            if self.options.real is not None:
                self._paths = existing_synthesized(self.examples, self.options.real)
            else:
                self._paths = prepare_real(self.examples, self.folder, self.size, self.options.real_resize,
                                           self.options.progress)
        return self._paths

    @property
    def how(self) -> str:
        if self.options.real is not None:
            return f"read from {os.path.abspath(self.options.real)}"
        resize = self.options.real_resize
        how = "MATLAB's bicubic imresize" if resize == "matlab-bicubic" else f"PIL {resize}"
        return f"resized to {self.size[0]}x{self.size[1]} with {how}"


def _fid_section(options: EvaluationOptions, synthesized: list[str], real: _RealPhotos) -> dict:
    """FID and KID of the synthesized images against the real photos, with the extractor that made them."""
    from crn_tf.evaluate.features import folder_features
    from crn_tf.evaluate.fid import fid_from_features, kernel_inception_distance
    from crn_tf.evaluate.inception import load_extractor

    extractor = load_extractor(options.inception, options.keras_weights)
    real_paths = real.paths
    cache = options.cache_dir
    fake_features = folder_features(synthesized, extractor, cache, options.fid_batch_size, "features (synthesized)")
    real_features = folder_features(real_paths, extractor, cache, options.fid_batch_size, "features (real)")
    kid, kid_std = kernel_inception_distance(fake_features, real_features, options.kid_subsets, options.kid_subset_size)
    section = {
        "fid": fid_from_features(fake_features, real_features),
        "kid": kid,
        "kid_std": kid_std,
        "kid_subsets": options.kid_subsets,
        "kid_subset_size": min(options.kid_subset_size, len(fake_features), len(real_features)),
        "num_synthesized": len(fake_features),
        "num_real": len(real_features),
        "extractor": extractor.name,
        "description": extractor.description,
        "comparable": extractor.comparable,
    }
    if len(fake_features) < extractor.dims:
        section["warning"] = (f"{len(fake_features)} images < {extractor.dims} feature dimensions: the covariance "
                              "is rank-deficient and FID is biased upwards; compare only runs of equal size")
    return section


def _segmentation_section(options: EvaluationOptions, synthesized: list[str], examples: list, label_set: LabelSet,
                          size: tuple[int, int], real: _RealPhotos) -> dict:
    """The segmenter's scores on the synthesized images (and on the real photos with --segment-real)."""
    from crn_tf.evaluate.segmentation import load_segmenter

    segmenter = load_segmenter(options.segmenter, options.segmenter_size)
    segmenter.check_label_set(label_set)  # a crn_tf-trained segmenter records its classes
    per_example = len(synthesized) // len(examples)
    synthesized_examples = [e for e in examples for _ in range(per_example)]
    scores = segmentation_score(segmenter, synthesized, synthesized_examples, label_set, options.batch_size,
                                options.progress)
    run_at = (f"{options.segmenter_size[0]}x{options.segmenter_size[1]} (images resized bilinear, antialiased; "
              "predictions resized back by nearest neighbour)") if options.segmenter_size else \
        f"{size[0]}x{size[1]} (the synthesized images as written)"
    scores.update(
        segmenter=segmenter.describe(),
        class_names=class_names(label_set)[:-1],
        protocol=(f"segmenter run at {run_at}; ground-truth labels read at full resolution and resized to "
                  f"{size[0]}x{size[1]} by nearest neighbour; void pixels ignored; IoU per class over the "
                  f"{label_set.num_classes} classes, mIoU = their mean over the classes present in ground truth or "
                  "prediction, and pixel accuracy, both from one confusion matrix accumulated over the split"),
    )
    if options.segment_real:
        real_scores = segmentation_score(segmenter, real.paths, examples, label_set, options.batch_size,
                                         options.progress, "segmenting (real)")
        scores["real"] = {k: real_scores[k] for k in ("miou", "pixel_accuracy", "per_class_iou", "pixels_scored")}
    return scores
