"""Evaluation: FID/KID, segmentation score and a human-study kit (docs/evaluate.md).

- `python -m crn_tf.evaluate` / `crn-evaluate`: synthesize a split and score it (`run.evaluate`).
- `python -m crn_tf.evaluate.study`: an HTML page for pairwise "which is more realistic" judgements.
- `python -m crn_tf.evaluate.tally`: preference rates with binomial confidence intervals.

The maths (`fid`, `segmentation`) import only NumPy/SciPy; TensorFlow loads when a network is asked for.
"""
from crn_tf.evaluate.fid import (
           fid_from_features,
           frechet_distance,
           kernel_inception_distance,
)
from crn_tf.evaluate.segmentation import confusion_matrix, scores_from_confusion

__all__ = ["confusion_matrix", "fid_from_features", "frechet_distance", "kernel_inception_distance",
           "scores_from_confusion"]
