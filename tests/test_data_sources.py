"""crn_tf.data.sources: finding pairs in each format, and the errors for unpaired files."""
import os
import shutil

import numpy as np
import pytest
from PIL import Image

from crn_tf.data import DataError, find_examples, read_image, read_label
from crn_tf.data.sources import stem_of
from crn_tf.labels import LabelSet, classes_to_colors, ids_to_classes
from crn_tf.synthetic import write_paired_dataset, write_synthetic_city

STREET5 = os.path.join(os.path.dirname(__file__), "..", "data", "label_sets", "street5.json")


@pytest.fixture(scope="module")
def city(tmp_path_factory):
    root = tmp_path_factory.mktemp("city")
    write_synthetic_city(root, num_train=3, num_val=2, size=(32, 64), seed=3)
    return str(root)


def test_cityscapes_pairs_by_stem_and_prefers_label_ids(city):
    train = find_examples(city, "train")
    val = find_examples(city, "val")
    assert len(train) == 3 and len(val) == 2
    for e in train + val:
        assert e.label_format == "ids" and e.label_path.endswith(f"{e.stem}_gtFine_labelIds.png")
        assert e.image_path.endswith(f"{e.stem}_leftImg8bit.png")
        city_name, seq, frame = e.stem.rsplit("_", 2)
        assert os.path.basename(os.path.dirname(e.label_path)) == city_name and len(seq) == len(frame) == 6
    assert [e.stem for e in train] == sorted(e.stem for e in train)


def test_cityscapes_label_conversion_matches_train_ids_and_colors(city):
    for e in find_examples(city, "train"):
        ids = np.asarray(Image.open(e.label_path))
        trainids = e.label_path.replace("_labelIds", "_labelTrainIds")
        color = e.label_path.replace("_labelIds", "_color")
        classes = read_label(e.label_path)
        np.testing.assert_array_equal(classes, ids_to_classes(ids))
        np.testing.assert_array_equal(classes, read_label(trainids, label_format="trainids"))
        np.testing.assert_array_equal(classes, read_label(color))
        assert read_image(e.image_path).shape == (32, 64, 3)


def test_cityscapes_falls_back_to_train_ids_then_colors(city, tmp_path):
    root = tmp_path / "c"
    shutil.copytree(city, root)
    for path in find_examples(root, "val"):
        os.remove(path.label_path)
    examples = find_examples(root, "val")
    assert {e.label_format for e in examples} == {"trainids"}
    for e in examples:
        os.remove(e.label_path)
    assert {e.label_format for e in find_examples(root, "val")} == {"colors"}
    with pytest.raises(DataError, match="unknown Cityscapes split 'dev'"):
        find_examples(root, "dev")


def test_cityscapes_unpaired_files_are_named(city, tmp_path):
    root = tmp_path / "c"
    shutil.copytree(city, root)
    examples = find_examples(root, "train")
    os.remove(examples[0].image_path)
    os.remove(examples[1].label_path)
    os.remove(examples[1].label_path.replace("_labelIds", "_labelTrainIds"))
    os.remove(examples[1].label_path.replace("_labelIds", "_color"))
    with pytest.raises(DataError) as error:
        find_examples(root, "train")
    message = str(error.value)
    assert f"{examples[0].stem}_gtFine_labelIds.png: no photo" in message
    assert f"{examples[1].stem}_leftImg8bit.png: photo has no label" in message
    with pytest.warns(UserWarning, match="skipping bad examples"):
        kept = find_examples(root, "train", skip_bad=True)
    assert [e.stem for e in kept] == [examples[2].stem]
    assert len(find_examples(root, "train", images="none")) == 2  # labels alone, for inference
    optional = find_examples(root, "train", images="optional")
    assert [e.image_path is None for e in optional] == [True, False]


def test_paired_format_with_custom_label_set(tmp_path):
    label_set = LabelSet.load_json(STREET5)
    write_paired_dataset(tmp_path, label_set, num_train=3, num_val=1, size=(16, 32), seed=0)
    train = find_examples(tmp_path, "train", label_set)
    val = find_examples(tmp_path, "val", label_set)
    assert len(train) == 3 and len(val) == 1
    assert all(e.label_format == "colors" for e in train)
    for e in train:
        assert os.path.dirname(e.label_path).endswith(os.path.join("train", "labels"))
        assert os.path.dirname(e.image_path).endswith(os.path.join("train", "images"))
        classes = read_label(e.label_path, label_set)
        assert set(np.unique(classes)) <= {0, 1, 2, 3, 4, 255}
    with pytest.raises(DataError, match="no test/labels/ folder"):
        find_examples(tmp_path, "test", label_set)


def test_paired_without_split_folders_and_jpg_photos(tmp_path, rng):
    (tmp_path / "images").mkdir()
    (tmp_path / "labels").mkdir()
    for stem in ("x", "y"):
        Image.fromarray(rng.integers(0, 19, (8, 8)).astype(np.uint8) + 7).save(tmp_path / "labels" / f"{stem}.png")
        Image.fromarray(rng.integers(0, 256, (8, 8, 3)).astype(np.uint8)).save(tmp_path / "images" / f"{stem}.jpg")
    examples = find_examples(tmp_path, "val")  # no split folders: every split is the whole set
    assert [(e.stem, e.label_format, e.image_path.endswith(".jpg")) for e in examples] == [
        ("x", "ids", True), ("y", "ids", True)]
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "images" / "x.png")
    with pytest.raises(DataError, match=r"x\.(png|jpg): photo stem 'x' also used by"):
        find_examples(tmp_path)


def test_label_folder_with_and_without_photos(tmp_path, rng):
    labels, photos = tmp_path / "Label256Full", tmp_path / "RGB256Full"
    labels.mkdir()
    photos.mkdir()
    for i in range(3):
        Image.fromarray(classes_to_colors(rng.integers(0, 19, (8, 16)))).save(labels / f"{i:08d}.png")
        Image.fromarray(rng.integers(0, 256, (8, 16, 3)).astype(np.uint8)).save(photos / f"{i:08d}.png")
    alone = find_examples(labels, images="none")
    assert [(e.stem, e.image_path, e.label_format) for e in alone] == [
        ("00000000", None, "colors"), ("00000001", None, "colors"), ("00000002", None, "colors")]
    with pytest.raises(DataError, match="no photo with stem '00000000'.*pass images_dir"):
        find_examples(labels)
    paired = find_examples(labels, images_dir=photos)
    assert [os.path.basename(e.image_path) for e in paired] == ["00000000.png", "00000001.png", "00000002.png"]
    os.remove(labels / "00000001.png")
    with pytest.raises(DataError, match=r"00000001\.png: photo has no label"):
        find_examples(labels, images_dir=photos)


def test_single_file_glob_and_list(tmp_path, rng):
    for name in ("a_gtFine_color.png", "b_gtFine_color.png", "c.png"):
        Image.fromarray(classes_to_colors(rng.integers(0, 19, (4, 4)))).save(tmp_path / name)
    single = find_examples(tmp_path / "a_gtFine_color.png", images="none")
    assert [(e.stem, e.image_path) for e in single] == [("a", None)]
    assert [e.stem for e in find_examples(str(tmp_path / "*_gtFine_color.png"), images="none")] == ["a", "b"]
    listed = find_examples([tmp_path / "c.png", tmp_path / "a_gtFine_color.png"], images="none")
    assert [e.stem for e in listed] == ["a", "c"]
    assert stem_of("x/aachen_000000_000019_leftImg8bit.png") == "aachen_000000_000019"


def test_empty_and_missing_sources(tmp_path):
    with pytest.raises(DataError, match=r"empty folder: no label PNGs"):
        find_examples(tmp_path)
    with pytest.raises(DataError, match=r"nowhere: no such file or directory"):
        find_examples(tmp_path / "nowhere")
    with pytest.raises(DataError, match=r"no files match"):
        find_examples(str(tmp_path / "*.png"))
    (tmp_path / "labels").mkdir()
    with pytest.raises(DataError, match=r"labels: no label PNGs found"):
        find_examples(tmp_path)
    with pytest.raises(DataError, match=r"ghost\.png: file not found"):
        find_examples([tmp_path / "ghost.png"])
