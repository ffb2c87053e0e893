"""crn_tf.data.readers: photos and labels from disk, header probes, errors naming the file."""
import numpy as np
import pytest
from conftest import SHAPES5
from PIL import Image

from crn_tf.data.readers import (
    DataError,
    label_format_for,
    probe,
    read_image,
    read_label,
    read_label_values,
)
from crn_tf.labels import (
    classes_to_colors,
    classes_to_ids,
    classify_values,
)


@pytest.fixture
def classes(rng):
    c = rng.integers(0, 19, (12, 20)).astype(np.uint8)
    c[0, :5] = 255
    return c


def save(path, array, **kw):
    Image.fromarray(array).save(path, **kw)
    return str(path)


def test_ids_trainids_and_colors_agree(tmp_path, classes):
    ids = save(tmp_path / "a_gtFine_labelIds.png", classes_to_ids(classes))
    trainids = save(tmp_path / "a_gtFine_labelTrainIds.png", classes)
    colors = save(tmp_path / "a_gtFine_color.png", classes_to_colors(classes))
    rgba = np.concatenate([classes_to_colors(classes), np.full(classes.shape + (1,), 255, np.uint8)], -1)
    colors_rgba = save(tmp_path / "b.png", rgba)
    np.testing.assert_array_equal(read_label(ids), classes)
    np.testing.assert_array_equal(read_label(ids, label_format="ids"), classes)
    np.testing.assert_array_equal(read_label(trainids, label_format="trainids"), classes)
    np.testing.assert_array_equal(read_label(colors), classes)
    np.testing.assert_array_equal(read_label(colors_rgba), classes)


def test_custom_label_set_ids_and_colors(tmp_path, rng):
    classes = rng.integers(0, 5, (8, 8)).astype(np.uint8)
    classes[0, 0] = 255
    ids = save(tmp_path / "ids.png", classes_to_ids(classes, SHAPES5))
    colors = save(tmp_path / "colors.png", classes_to_colors(classes, SHAPES5))
    np.testing.assert_array_equal(read_label(ids, SHAPES5), classes)
    np.testing.assert_array_equal(read_label(colors, SHAPES5), classes)


def test_unknown_values_name_file_value_and_count(tmp_path, classes):
    ids = classes_to_ids(classes)
    ids[3, :7] = 200
    path = save(tmp_path / "bad_ids.png", ids)
    with pytest.raises(DataError, match=r"bad_ids\.png.*id 200 \(7 pixels\)"):
        read_label(path)
    colors = classes_to_colors(classes)
    colors[5, :2] = (1, 2, 3)
    path = save(tmp_path / "bad_colors.png", colors)
    with pytest.raises(DataError, match=r"bad_colors\.png.*\(1,2,3\) \(2 pixels\)"):
        read_label(path)
    assert (read_label(path, unknown="void")[5, :2] == 255).all()
    trainids = classes.copy()
    trainids[0, 0] = 19
    path = save(tmp_path / "bad_train.png", trainids)
    with pytest.raises(DataError, match=r"bad_train\.png.*19 \(1 pixels\)"):
        read_label(path, label_format="trainids")


def test_unknown_void_reads_every_format_as_the_core_classifies_it(tmp_path, classes):
    ids = classes_to_ids(classes)
    ids[3, :7] = 200
    colors = classes_to_colors(classes)
    colors[5, :2] = (1, 2, 3)
    trainids = classes.copy()
    trainids[0, 0] = 19
    for name, array, label_format in (("i.png", ids, "ids"), ("c.png", colors, "colors"), ("t.png", trainids, "trainids")):
        path = save(tmp_path / name, array)
        values = read_label_values(path, label_format)
        np.testing.assert_array_equal(values, array)
        expected, unknown = classify_values(values, label_format=label_format)
        assert unknown  # every file holds a value outside Cityscapes
        np.testing.assert_array_equal(read_label(path, label_format=label_format, unknown="void"), expected)
    palette = Image.fromarray(classes_to_colors(classes)).convert("P", palette=Image.ADAPTIVE, colors=32)
    palette.save(tmp_path / "p.png")
    np.testing.assert_array_equal(read_label_values(str(tmp_path / "p.png"), "colors"), classes_to_colors(classes))


def test_photo_modes(tmp_path, rng):
    rgb = rng.integers(0, 256, (6, 9, 3)).astype(np.uint8)
    np.testing.assert_array_equal(read_image(save(tmp_path / "rgb.png", rgb)), rgb)
    rgba = np.concatenate([rgb, np.full((6, 9, 1), 7, np.uint8)], -1)
    with pytest.warns(UserWarning, match=r"rgba\.png: photo is RGBA \(alpha dropped\)"):
        np.testing.assert_array_equal(read_image(save(tmp_path / "rgba.png", rgba)), rgb)
    gray = rgb[..., 0]
    with pytest.warns(UserWarning, match=r"gray\.png: photo is greyscale"):
        np.testing.assert_array_equal(read_image(save(tmp_path / "gray.png", gray)), np.repeat(gray[..., None], 3, -1))
    jpeg = read_image(save(tmp_path / "photo.jpg", rgb, quality=95))
    assert jpeg.shape == (6, 9, 3) and jpeg.dtype == np.uint8


def test_probe_reads_headers_and_finds_truncation(tmp_path, rng):
    path = save(tmp_path / "p.png", rng.integers(0, 256, (30, 40, 3)).astype(np.uint8))
    info = probe(path)
    assert (info.size, info.mode, info.format) == ((30, 40), "RGB", "PNG")
    data = open(path, "rb").read()
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"truncated\.png: truncated PNG"):
        probe(truncated)
    with pytest.raises(DataError, match=r"truncated\.png"):
        read_image(truncated)
    garbage = tmp_path / "garbage.png"
    garbage.write_bytes(b"this is not a png at all")
    with pytest.raises(DataError, match=r"garbage\.png: not a readable PNG or JPEG"):
        probe(garbage)
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(DataError, match=r"empty\.png: empty file"):
        probe(empty)
    with pytest.raises(DataError, match=r"missing\.png: file not found"):
        probe(tmp_path / "missing.png")


def test_corrupt_pixel_data_names_file(tmp_path, rng):
    path = save(tmp_path / "c.png", rng.integers(0, 256, (64, 64, 3)).astype(np.uint8))
    data = bytearray(open(path, "rb").read())
    data[100:400] = bytes(300)  # zeroes inside the IDAT chunk: header and IEND stay intact
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(bytes(data))
    probe(corrupt)  # the header scan cannot see this
    with pytest.raises(DataError, match=r"corrupt\.png: corrupt"):
        read_image(corrupt)


def test_label_modes_rejected_with_reason(tmp_path, classes):
    jpeg = save(tmp_path / "label.jpg", classes_to_colors(classes))
    with pytest.raises(DataError, match=r"label\.jpg: label maps must be PNG"):
        read_label(jpeg)
    deep = save(tmp_path / "deep.png", classes.astype(np.uint16) * 300)
    with pytest.raises(DataError, match=r"deep\.png: 16-bit label PNG"):
        label_format_for(probe(deep))
    palette = Image.fromarray(classes_to_colors(classes)).convert("P", palette=Image.ADAPTIVE, colors=32)
    palette.save(tmp_path / "palette.png")
    assert label_format_for(probe(tmp_path / "palette.png")) == "colors"
