"""Cityscapes classes, label sets and conversions."""
import json
import os

import numpy as np
import pytest

from crn_tf import labels
from crn_tf.labels import CITYSCAPES, VOID, LabelClass, LabelError, LabelSet


def test_cityscapes_facts():
    assert CITYSCAPES.num_classes == 19 and CITYSCAPES.num_channels == 20
    table = CITYSCAPES.id_table()
    expected = {7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9, 23: 10, 24: 11,
                25: 12, 26: 13, 27: 14, 28: 15, 31: 16, 32: 17, 33: 18}
    for label_id in range(34):
        assert table[label_id] == expected.get(label_id, VOID), label_id
    assert table[255] == VOID  # licence plate (-1) as a uint8 PNG stores it
    assert tuple(CITYSCAPES.colors[0]) == (128, 64, 128) and tuple(CITYSCAPES.colors[18]) == (119, 11, 32)


def test_every_class_round_trips_through_ids_colours_and_onehot():
    classes = np.array([list(range(19)) + [VOID]], dtype=np.uint8)  # (1, 20)
    ids = labels.classes_to_ids(classes)
    np.testing.assert_array_equal(labels.ids_to_classes(ids), classes)
    colours = labels.classes_to_colors(classes)
    np.testing.assert_array_equal(labels.colors_to_classes(colours), classes)
    onehot = labels.classes_to_onehot(classes, 19)
    assert onehot.shape == (1, 20, 20) and onehot.dtype == np.float32
    np.testing.assert_array_equal(onehot.sum(-1), 1.0)
    np.testing.assert_array_equal(onehot[0], np.eye(20))  # void lands in channel 19
    np.testing.assert_array_equal(labels.onehot_to_classes(onehot), classes)


@pytest.mark.parametrize("name", ["ground", "parking", "dynamic", "rail track", "trailer"])
def test_cityscapes_void_colours_read_as_void(name):
    image = np.zeros((2, 3, 3), np.uint8)
    image[:] = labels.CITYSCAPES_VOID_COLORS[name]
    image[0, 0] = (70, 130, 180)  # sky
    got = labels.colors_to_classes(image, source="a.png")
    assert got[0, 0] == 10 and (got.ravel()[1:] == VOID).all()


def test_unknown_colour_is_a_clear_error():
    image = np.zeros((4, 4, 3), np.uint8)
    image[:2, :2] = (1, 2, 3)
    image[3, 3] = (9, 9, 9)
    with pytest.raises(LabelError) as error:
        labels.colors_to_classes(image, source="frankfurt_000000_000294.png")
    message = str(error.value)
    assert "frankfurt_000000_000294.png" in message
    assert "(1,2,3) (4 pixels)" in message and "(9,9,9) (1 pixels)" in message
    mapped = labels.colors_to_classes(image, unknown="void")
    assert (mapped == VOID).all()


def test_unknown_id_is_a_clear_error():
    ids = np.full((3, 3), 7, np.uint8)
    ids[0, 0] = 40
    with pytest.raises(LabelError, match=r"x_labelIds.png: ids outside the cityscapes label set: id 40 \(1 pixels\)"):
        labels.ids_to_classes(ids, source="x_labelIds.png")


def test_class_index_maps_are_checked():
    good = np.array([[0, 18, 255]], np.uint8)
    np.testing.assert_array_equal(labels.check_class_indices(good), good)
    with pytest.raises(LabelError, match=r"t.png: class indices outside 0..18 and 255 \(void\): 19 \(1 pixels\)"):
        labels.check_class_indices(np.array([[19, 0]], np.uint8), source="t.png")


def test_rgba_label_images_ignore_alpha():
    rgba = np.zeros((1, 2, 4), np.uint8)
    rgba[0, 0] = (128, 64, 128, 255)
    np.testing.assert_array_equal(labels.colors_to_classes(rgba), [[0, VOID]])


def test_custom_label_set_json_round_trip(tmp_path):
    street = LabelSet(
        "street5",
        (LabelClass("sky", 1, (70, 130, 180)), LabelClass("road", 2, (128, 64, 128)), LabelClass("car", 5, (0, 0, 142))),
        void_ids=(0,),
        void_colors=((0, 0, 0),),
    )
    path = tmp_path / "street.json"
    street.save_json(path)
    assert json.loads(path.read_text())["classes"][2] == {"name": "car", "id": 5, "color": [0, 0, 142]}
    loaded = LabelSet.load_json(path)
    assert loaded == street
    ids = np.array([[0, 1, 2, 5]], np.uint8)
    np.testing.assert_array_equal(labels.ids_to_classes(ids, loaded), [[VOID, 0, 1, 2]])
    with pytest.raises(LabelError, match="id 7"):
        labels.ids_to_classes(np.array([[7]], np.uint8), loaded)
    anything_else = LabelSet("loose", street.classes, void_ids=None, void_colors=None)
    assert labels.ids_to_classes(np.array([[7]], np.uint8), anything_else)[0, 0] == VOID
    assert labels.colors_to_classes(np.full((1, 1, 3), 9, np.uint8), anything_else)[0, 0] == VOID
    assert LabelSet.from_dict(anything_else.to_dict()) == anything_else


def test_bad_label_sets_are_rejected(tmp_path):
    with pytest.raises(ValueError, match="ids repeat"):
        LabelSet("x", (LabelClass("a", 1, (1, 1, 1)), LabelClass("b", 1, (2, 2, 2))))
    with pytest.raises(ValueError, match="both a class and void"):
        LabelSet("x", (LabelClass("a", 1, (1, 1, 1)),), void_ids=(1,))
    path = tmp_path / "bad.json"
    path.write_text('{"classes": [{"name": "a"}]}')
    with pytest.raises(ValueError, match="bad.json: not a valid label set"):
        LabelSet.load_json(path)
    path.write_text("{nope")
    with pytest.raises(ValueError, match="bad.json: not valid JSON"):
        LabelSet.load_json(path)


def test_resolve_label_set(tmp_path):
    assert labels.resolve_label_set(None) is CITYSCAPES
    assert labels.resolve_label_set("cityscapes") is CITYSCAPES
    assert labels.resolve_label_set(CITYSCAPES.to_dict()) == CITYSCAPES


# --- the label-value core ---------------------------------------------------------------------
STREET = LabelSet.load_json(os.path.join(os.path.dirname(__file__), "..", "data", "label_sets", "street5.json"))
LOOSE = LabelSet("loose", STREET.classes, void_ids=None, void_colors=None)  # every other value is void
STRICT = LabelSet("strict", STREET.classes, void_ids=(), void_colors=())  # nothing is void


def _expected_class(value, label_set: LabelSet, label_format: str):
    """One pixel by the label set's definition: a class index, VOID, or None (outside the set)."""
    if label_format == "trainids":
        return value if value < label_set.num_classes or value == VOID else None
    if label_format == "ids":
        names, void = [c.id for c in label_set.classes], label_set.void_ids
    else:
        names, void = [tuple(c.color) for c in label_set.classes], label_set.void_colors
        value = tuple(int(v) for v in value[:3])
    if value in names:
        return names.index(value)
    return VOID if void is None or value in void else None


def _expected(values: np.ndarray, label_set: LabelSet, label_format: str):
    """classify_values by a loop over pixels: (class indices, {unknown value: pixels} in increasing order)."""
    height, width = values.shape[:2]
    classes = np.zeros((height, width), np.uint8)
    unknown = {}
    for y in range(height):
        for x in range(width):
            value = values[y, x] if label_format == "colors" else int(values[y, x])
            found = _expected_class(value, label_set, label_format)
            if found is None:
                key = tuple(int(v) for v in value[:3]) if label_format == "colors" else value
                unknown[key] = unknown.get(key, 0) + 1
            classes[y, x] = VOID if found is None else found
    return classes, dict(sorted(unknown.items()))


def _label_values(rng, label_set: LabelSet, label_format: str, shape=(9, 13)) -> np.ndarray:
    """Values of every kind: classes, void values, others, and colours one step from a class colour."""
    if label_format == "colors":
        palette = [tuple(c.color) for c in label_set.classes] + list(label_set.void_colors or ())
        near = [(r, g, min(b + 1, 255)) for r, g, b in palette] + [(max(r - 1, 0), g, b) for r, g, b in palette]
        palette += near + [tuple(int(v) for v in rng.integers(0, 256, 3)) for _ in range(4)]
        picks = rng.integers(0, len(palette), shape)
        return np.array(palette, np.uint8)[picks]
    choices = list(range(256)) if label_format == "trainids" else [c.id for c in label_set.classes]
    choices += list(label_set.void_ids or ()) + [0, 6, 18, 19, 40, 254, 255]
    return np.array(choices, np.uint8)[rng.integers(0, len(choices), shape)]


@pytest.mark.parametrize("label_set", [CITYSCAPES, STREET, LOOSE, STRICT], ids=lambda s: s.name)
@pytest.mark.parametrize("label_format", labels.LABEL_FORMATS)
def test_classify_values_matches_a_loop_over_pixels(rng, label_set, label_format):
    for _ in range(3):
        values = _label_values(rng, label_set, label_format)
        classes, unknown = labels.classify_values(values, label_set, label_format)
        want_classes, want_unknown = _expected(values, label_set, label_format)
        np.testing.assert_array_equal(classes, want_classes)
        assert classes.dtype == np.uint8
        assert unknown == want_unknown and list(unknown) == list(want_unknown)  # counts and order


def test_classify_values_counts_unknowns_and_takes_any_integer_type():
    ids = np.array([[7, 7, 40, 40, 40], [99, 255, 0, 8, 99]], np.uint8)
    classes, unknown = labels.classify_values(ids, CITYSCAPES, "ids")
    assert unknown == {40: 3, 99: 2}
    np.testing.assert_array_equal(classes, [[0, 0, VOID, VOID, VOID], [VOID, VOID, VOID, 1, VOID]])
    wide = np.array([[0, 18, 255, -1, 300, 19, 300]], np.int64)  # values a uint8 PNG cannot hold
    classes, unknown = labels.classify_values(wide, CITYSCAPES, "trainids")
    assert unknown == {-1: 1, 19: 1, 300: 2}
    np.testing.assert_array_equal(classes, [[0, 18, VOID, VOID, VOID, VOID, VOID]])
    rgba = np.array([[[128, 64, 128, 7], [1, 2, 3, 255], [1, 2, 3, 0]]], np.uint8)  # alpha ignored
    classes, unknown = labels.classify_values(rgba, CITYSCAPES, "colors")
    assert unknown == {(1, 2, 3): 2} and classes.tolist() == [[0, VOID, VOID]]
    with pytest.raises(ValueError, match="label_format must be one of"):
        labels.classify_values(ids, CITYSCAPES, "rgb")


def test_values_to_classes_raises_or_reads_unknowns_as_void():
    ids = np.array([[7, 40]], np.uint8)
    with pytest.raises(LabelError, match=r"^f.png: ids outside the cityscapes label set: id 40 \(1 pixels\)$"):
        labels.values_to_classes(ids, CITYSCAPES, "ids", source="f.png")
    np.testing.assert_array_equal(labels.values_to_classes(ids, CITYSCAPES, "ids", unknown="void"), [[0, VOID]])
    with pytest.raises(LabelError, match="f.png: expected a colour image"):
        labels.values_to_classes(ids, CITYSCAPES, "colors", source="f.png")
    with pytest.raises(LabelError, match="f.png: expected a single-channel class map"):
        labels.values_to_classes(np.zeros((2, 2, 3), np.uint8), CITYSCAPES, "trainids", source="f.png")
    with pytest.raises(ValueError, match="unknown must be"):
        labels.values_to_classes(ids, CITYSCAPES, "ids", unknown="skip")


def test_rgb_packer_round_trips_and_sorts_as_colour_tuples(rng):
    colours = rng.integers(0, 256, (500, 3)).astype(np.uint8)
    keys = labels.pack_rgb(colours)
    want = [r * 65536 + g * 256 + b for r, g, b in colours.tolist()]
    assert keys.dtype == np.int32 and keys.tolist() == want
    assert [labels.unpack_rgb(k) for k in keys.tolist()] == [tuple(c) for c in colours.tolist()]
    assert sorted(map(tuple, colours.tolist())) == [labels.unpack_rgb(k) for k in sorted(keys.tolist())]
    assert labels.pack_rgb((255, 255, 255)) == 0xFFFFFF and labels.pack_rgb(np.zeros((2, 2, 4), np.uint8)).shape == (2, 2)


def test_value_tables_are_what_the_id_table_and_lookups_use():
    table = CITYSCAPES.value_table("colors")
    assert table.other == labels.UNKNOWN and list(table.keys) == sorted(table.keys)
    assert len(table.keys) == 19 + len(set(labels.CITYSCAPES_VOID_COLORS.values()))
    assert LOOSE.value_table("colors").other == VOID and STRICT.value_table("ids").other == labels.UNKNOWN
    np.testing.assert_array_equal(CITYSCAPES.value_table("ids").dense(), CITYSCAPES.id_table())
    trainids = CITYSCAPES.value_table("trainids").dense()
    assert trainids[:19].tolist() == list(range(19)) and trainids[VOID] == VOID and (trainids[19:255] == -1).all()
    with pytest.raises(ValueError, match="no dense form"):
        table.dense()


def _reads_back_as_void(written, label_set: LabelSet, label_format: str) -> bool:
    values = np.full((1, 1, 3) if label_format == "colors" else (1, 1), written, np.uint8)
    classes, unknown = labels.classify_values(values, label_set, label_format)
    return not unknown and classes[0, 0] == VOID


def test_void_id_rule_reads_back_as_void_as_ids_and_as_class_indices():
    assert labels.void_id_for(CITYSCAPES) == 0 and labels.void_id_for(STREET) == 0  # the first declared
    assert labels.void_id_for(LOOSE) == VOID  # every other id is void: 255 ...
    assert _reads_back_as_void(VOID, LOOSE, "ids") and _reads_back_as_void(VOID, LOOSE, "trainids")
    assert not _reads_back_as_void(0, LOOSE, "trainids")  # ... since 0 would read as class 0 there
    owns_255 = LabelSet("owns255", (LabelClass("a", 255, (1, 1, 1)), LabelClass("b", 0, (2, 2, 2))), void_ids=None)
    assert labels.void_id_for(owns_255) == 1 and _reads_back_as_void(1, owns_255, "ids")
    assert labels.void_id_for(STRICT) is None
    for label_set in (CITYSCAPES, STREET, LOOSE, owns_255):
        assert _reads_back_as_void(labels.void_id_for(label_set), label_set, "ids")


def test_void_colour_rule_reads_back_as_void():
    assert labels.void_color_for(CITYSCAPES) == (0, 0, 0) and labels.void_color_for(LOOSE) == (0, 0, 0)
    black = LabelSet("black", (LabelClass("a", 1, (0, 0, 0)),), void_colors=None)
    black_white = LabelSet("bw", (LabelClass("a", 1, (0, 0, 0)), LabelClass("b", 2, (255, 255, 255)),
                                  LabelClass("c", 3, (1, 1, 1))), void_colors=None)
    assert labels.void_color_for(black) == (255, 255, 255) and labels.void_color_for(black_white) == (2, 2, 2)
    assert labels.void_color_for(STRICT) is None
    for label_set in (CITYSCAPES, STREET, LOOSE, black, black_white):
        assert _reads_back_as_void(labels.void_color_for(label_set), label_set, "colors")


def test_classes_to_ids_writes_void_by_the_rule():
    classes = np.array([[0, 1, VOID]], np.uint8)
    assert labels.classes_to_ids(classes, LOOSE).tolist() == [[1, 2, VOID]]
    assert labels.classes_to_ids(classes, STREET).tolist() == [[1, 2, 0]]
    assert labels.classes_to_ids(classes[:, :2], STRICT).tolist() == [[1, 2]]
    with pytest.raises(LabelError, match="'strict' has no void id, but the class map has void pixels"):
        labels.classes_to_ids(classes, STRICT)
