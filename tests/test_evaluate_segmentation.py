"""crn_tf.evaluate.segmentation: the confusion matrix, mIoU and accuracy against hand-made matrices."""

import numpy as np
import pytest

from crn_tf.evaluate.segmentation import confusion_matrix, scores_from_confusion
from crn_tf.labels import VOID


def test_confusion_matrix_and_scores_by_hand():
    labels = np.array([[0, 0, 1], [1, VOID, 2]], np.uint8)
    predictions = np.array([[0, 1, 1], [1, 0, 200]], np.int64)  # 200: not a class ("no class" column)
    matrix = confusion_matrix(labels, predictions, num_classes=3)
    expected = np.array([[1, 1, 0, 0], [0, 2, 0, 0], [0, 0, 0, 1]])
    np.testing.assert_array_equal(matrix, expected)
    scores = scores_from_confusion(matrix)
    # IoU: class 0 = 1 / (2 + 1 - 1), class 1 = 2 / (2 + 3 - 2), class 2 = 0 / 1.
    assert scores["per_class_iou"] == pytest.approx([0.5, 2 / 3, 0.0])
    assert scores["miou"] == pytest.approx((0.5 + 2 / 3) / 3)
    assert scores["pixel_accuracy"] == pytest.approx(3 / 5)  # the void pixel is not counted
    assert scores["pixels_scored"] == 5


def test_absent_classes_leave_the_mean_and_matrices_accumulate(rng):
    num_classes = 4  # class 3 never appears: no IoU, not averaged
    labels = [rng.integers(0, 3, (5, 6)) for _ in range(3)]
    labels[0][0, :] = VOID
    predictions = [np.where(rng.random((5, 6)) < 0.7, l, rng.integers(0, 3, (5, 6))) for l in labels]
    total = sum(confusion_matrix(l, p, num_classes) for l, p in zip(labels, predictions))
    np.testing.assert_array_equal(total, confusion_matrix(np.stack(labels), np.stack(predictions), num_classes))
    scores = scores_from_confusion(total)
    assert scores["per_class_iou"][3] is None and scores["classes_scored"] == 3
    flat_l, flat_p = np.concatenate([l.ravel() for l in labels]), np.concatenate([p.ravel() for p in predictions])
    keep = flat_l != VOID
    ious = [np.sum((flat_l == c) & (flat_p == c) & keep) / np.sum(((flat_l == c) | (flat_p == c)) & keep) for c in range(3)]
    assert scores["miou"] == pytest.approx(np.mean(ious))
    assert scores["pixel_accuracy"] == pytest.approx(np.mean(flat_l[keep] == flat_p[keep]))
