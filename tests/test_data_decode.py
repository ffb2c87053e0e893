"""The tf.data per-example ops: their label lookup is the NumPy core's (`crn_tf.labels`)."""
import numpy as np
import pytest
import tensorflow as tf

from crn_tf.data import decode
from crn_tf.labels import (
    CITYSCAPES,
    LABEL_FORMATS,
    UNKNOWN,
    LabelClass,
    LabelSet,
    classify_values,
    pack_rgb,
)

OWN = LabelSet("own", (LabelClass("a", 3, (10, 20, 30)), LabelClass("b", 9, (10, 20, 31)), LabelClass("c", 4, (0, 0, 0))),
               void_ids=(0, 200, 0), void_colors=((10, 21, 30), (10, 21, 30)))  # a void value listed twice
LOOSE = LabelSet("loose", OWN.classes, void_ids=None, void_colors=None)


def _values(rng, label_set: LabelSet, label_format: str) -> np.ndarray:
    """Class, void and other values; colours also one step away from a class or void colour."""
    if label_format == "colors":
        palette = [c.color for c in label_set.classes] + list(label_set.void_colors or ())
        palette += [(r, g, b + 1) for r, g, b in palette] + [(r, g, max(b - 1, 0)) for r, g, b in palette]
        palette += [tuple(rng.integers(0, 256, 3)) for _ in range(3)]
        return np.array(palette, np.uint8)[rng.integers(0, len(palette), (11, 7))]
    return rng.integers(0, 256, (11, 7, 1)).astype(np.uint8)


@pytest.mark.parametrize("label_set", [CITYSCAPES, OWN, LOOSE], ids=lambda s: s.name)
@pytest.mark.parametrize("label_format", LABEL_FORMATS)
def test_tensorflow_lookup_is_the_numpy_core(rng, label_set, label_format):
    tables = decode._Tables(label_set)
    for _ in range(3):
        values = _values(rng, label_set, label_format)
        got = decode._lookup(tf.constant(values), label_format, tables).numpy()
        classes, unknown = classify_values(values if label_format == "colors" else values[..., 0], label_set, label_format)
        outside = got == UNKNOWN
        np.testing.assert_array_equal(np.where(outside, 255, got), classes)
        found = values[outside] if label_format == "colors" else values[..., 0][outside]
        keys = [tuple(v) for v in found.tolist()] if label_format == "colors" else found.tolist()
        assert sorted(set(keys)) == list(unknown) and len(keys) == sum(unknown.values())


def test_colour_keys_are_the_numpy_packer(rng):
    colours = rng.integers(0, 256, (4, 64, 3)).astype(np.uint8)
    np.testing.assert_array_equal(decode.pack_rgb_tensor(tf.constant(colours)).numpy(), pack_rgb(colours))
