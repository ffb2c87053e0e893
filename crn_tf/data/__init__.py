"""Datasets for crn_tf: finding pairs, reading files, checking them, and tf.data pipelines.

Formats (detected from the path): a Cityscapes root, the paired format (`images/` +
`labels/`), a label folder of colour-coded PNGs (the original release's), a label file,
a glob or a list of files. See docs/data.md.

The tf.data functions are imported on first use, so the checker and the readers start
without loading TensorFlow.
"""
import importlib

from crn_tf.data.readers import (
    IMAGE_EXTENSIONS,
    LABEL_FORMATS,
    DataError,
    probe,
    read_image,
    read_label,
)
from crn_tf.data.scan import ScannedExamples, ScanReport, scan_dataset
from crn_tf.data.sources import Example, Problem, discover, find_examples

__all__ = [
    "DataError",
    "Example",
    "IMAGE_EXTENSIONS",
    "LABEL_FORMATS",
    "LayoutBatch",
    "Problem",
    "ScanReport",
    "ScannedExamples",
    "classes_to_layout",
    "discover",
    "example_dataset",
    "find_examples",
    "label_size",
    "label_sizes",
    "layout_batches",
    "make_dataset",
    "make_layout_dataset",
    "probe",
    "read_image",
    "read_label",
    "scan_dataset",
]

_PIPELINE = ("LayoutBatch", "classes_to_layout", "example_dataset", "label_size", "label_sizes", "layout_batches",
             "make_dataset", "make_layout_dataset")


def __getattr__(name):
    if name in _PIPELINE:
        return getattr(importlib.import_module("crn_tf.data.pipeline"), name)
    raise AttributeError(f"module 'crn_tf.data' has no attribute {name!r}")
