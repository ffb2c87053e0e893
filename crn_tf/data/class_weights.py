"""Per-class weights from a dataset's label pixels: the segmenter's loss and train.py's `--class-weights`.

ENet's weighting (Paszke et al. 2016, https://arxiv.org/abs/1606.02147): `w_c = 1 / ln(1.02 + p_c)`,
`p_c` the class's share of the counted pixels, bounded by 1 / ln(1.02) = 50.5 for rare classes.
No TensorFlow at import: the options modules that name the weightings stay light.
"""
from __future__ import annotations

import numpy as np

CLASS_WEIGHTINGS = ("none", "enet")
"""The weightings a run can ask for: none (every pixel counts the same) or enet."""

ENET_C = 1.02
"""ENet's constant c in `1 / ln(c + p)`."""


def class_pixel_counts(examples, size: tuple[int, int], label_set, include_void: bool = False) -> np.ndarray:
    """int64 [C] (or [C + 1], void last, with `include_void`): pixels of each class at `size`.

    `examples`: scanned examples (`crn_tf.data.ScannedExamples`) or a list of `Example`s; their
    labels are read and resized as training reads them.
    """
    from crn_tf.data.pipeline import example_dataset

    counts = np.zeros(label_set.num_classes + 1, np.int64)
    dataset = example_dataset(examples, size, label_set, with_images=False, deterministic=True).batch(64)
    for classes, _ in dataset:
        index = np.minimum(classes.numpy().astype(np.int64), label_set.num_classes)  # void -> the last bin
        counts += np.bincount(index.ravel(), minlength=label_set.num_classes + 1)
    return counts if include_void else counts[:-1]


def enet_class_weights(counts: np.ndarray) -> np.ndarray:
    """float32 [C]: 1 / ln(1.02 + share of each class among the counted pixels) (`ENET_C`)."""
    counts = np.asarray(counts, np.float64)
    share = counts / max(counts.sum(), 1.0)
    return (1.0 / np.log(ENET_C + share)).astype(np.float32)


def layout_class_weights(counts_with_void: np.ndarray) -> np.ndarray:
    """float32 [C + 1]: ENet weights over every layout channel (void too), scaled to a pixel mean of 1.

    The scale keeps the loss of a uniform error where it was (sum_p share_p * w_p = 1), so that
    only the balance between the classes changes, not the loss's size.
    """
    counts = np.asarray(counts_with_void, np.float64)
    if counts.ndim != 1 or counts.sum() <= 0:
        raise ValueError(f"class weights need pixel counts with at least one pixel, got {counts.tolist()}")
    weights = enet_class_weights(counts).astype(np.float64)
    share = counts / counts.sum()
    return (weights / float(np.sum(share * weights))).astype(np.float32)
