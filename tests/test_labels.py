"""Cityscapes classes, label sets and conversions."""
import json

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
