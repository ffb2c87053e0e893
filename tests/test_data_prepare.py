"""crn_tf.data.prepare: the prepared folder reads back as the direct pipeline; re-runs resume."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from crn_tf.core.logs import cli_logging
from crn_tf.data import find_examples, make_dataset, probe
from crn_tf.data.prepare import encode_label, main, prepare
from crn_tf.labels import CITYSCAPES, LabelClass, LabelSet
from crn_tf.synthetic import write_paired_dataset, write_synthetic_city
from crn_tf.training.data import EpochData

STREET5_PATH = os.path.join(os.path.dirname(__file__), "..", "data", "label_sets", "street5.json")


@pytest.fixture(scope="module")
def city(tmp_path_factory):
    root = tmp_path_factory.mktemp("city")
    write_synthetic_city(root, num_train=3, num_val=1, size=(64, 128), seed=5, instances=False)
    return str(root)


def all_batches(dataset):
    images, layouts = zip(*[(i.numpy(), l.numpy()) for i, l in dataset])
    return np.concatenate(images), np.concatenate(layouts)


def test_prepared_folder_reads_back_as_the_direct_pipeline(city, tmp_path):
    result = prepare(city, tmp_path, split="train", size=(16, 32), progress=False)
    assert result == {"written": 3, "skipped": 0, "out": os.path.join(str(tmp_path), "train")}
    direct_images, direct_layouts = all_batches(make_dataset(city, size=(16, 32), batch_size=2))
    prepared = find_examples(tmp_path)
    assert [e.stem for e in prepared] == [e.stem for e in find_examples(city)]
    assert {e.label_format for e in prepared} == {"colors"}  # a label folder in the original's format
    images, layouts = all_batches(make_dataset(tmp_path, size=(16, 32), batch_size=2))
    np.testing.assert_array_equal(layouts, direct_layouts)
    np.testing.assert_array_equal(images, direct_images)  # MATLAB bicubic is rounded to 8 bits in both
    images_native, _ = all_batches(make_dataset(tmp_path, batch_size=3))  # no second resize at that size
    np.testing.assert_array_equal(images_native, images)
    assert os.path.isfile(tmp_path / "label_set.json")
    with open(tmp_path / "train" / "prepared.json") as f:
        assert json.load(f)["photo_resize"] == "matlab-bicubic"


def test_training_sees_the_same_pixels_from_raw_pngs_and_a_prepared_folder(city, tmp_path):
    """The trainer's own data path (EpochData -> make_dataset), MATLAB bicubic from 64x128 PNGs to
    16x32 (4x) and to 24x48 (a non-integer scale)."""
    for size in ((16, 32), (24, 48)):
        prepare(city, tmp_path / str(size[0]), split="train", size=size, progress=False)
        raw = EpochData(city, size, CITYSCAPES, seed=3)
        prepared = EpochData(str(tmp_path / str(size[0])), size, CITYSCAPES, seed=3)
        assert [e.stem for e in prepared.order(1)] == [e.stem for e in raw.order(1)]
        for (raw_image, raw_layout), (image, layout) in zip(raw.dataset(1).take(3), prepared.dataset(1).take(3)):
            np.testing.assert_array_equal(image.numpy(), raw_image.numpy())
            np.testing.assert_array_equal(layout.numpy(), raw_layout.numpy())


def test_area_option_and_a_rerun_with_another_resize_redoes_the_photos(city, tmp_path):
    prepare(city, tmp_path, size=(16, 32), progress=False, photo_resize="area")
    direct, _ = all_batches(make_dataset(city, size=(16, 32), batch_size=3, photo_resize="area"))
    area, _ = all_batches(make_dataset(tmp_path, batch_size=3))
    np.testing.assert_allclose(area, direct, atol=0.5 + 1e-4)  # area is not rounded on the fly: within 0.5
    result = prepare(city, tmp_path, size=(16, 32), progress=False)  # the default now: photos redone
    assert (result["written"], result["skipped"]) == (3, 0)
    matlab, _ = all_batches(make_dataset(city, size=(16, 32), batch_size=3))
    np.testing.assert_array_equal(all_batches(make_dataset(tmp_path, batch_size=3))[0], matlab)
    assert not np.array_equal(matlab, np.floor(area))
    assert prepare(city, tmp_path, size=(16, 32), progress=False)["skipped"] == 3


def test_rerun_skips_complete_pairs_and_redoes_broken_ones(city, tmp_path, capsys):
    prepare(city, tmp_path, size=(16, 32), progress=False)
    stems = [e.stem for e in find_examples(city)]
    broken = tmp_path / "train" / "images" / f"{stems[1]}.png"
    broken.write_bytes(broken.read_bytes()[:40])  # a run killed mid-write would leave only a .tmp file
    os.remove(tmp_path / "train" / "labels" / f"{stems[2]}.png")
    mtime = os.path.getmtime(tmp_path / "train" / "labels" / f"{stems[0]}.png")
    with cli_logging():  # as the CLI shows it: the skip line (a log record), then the progress bar
        result = prepare(city, tmp_path, size=(16, 32), progress=True)
    assert (result["written"], result["skipped"]) == (2, 1)
    assert os.path.getmtime(tmp_path / "train" / "labels" / f"{stems[0]}.png") == mtime
    assert probe(broken).size == (16, 32)
    err = capsys.readouterr().err
    assert err.startswith("prepare: 1 of 3 pairs already written, skipping them\nprepare train [") and "2/2" in err
    resized = prepare(city, tmp_path, size=(32, 64), progress=False)  # another size: everything again
    assert (resized["written"], resized["skipped"]) == (3, 0)
    assert not [n for n in os.listdir(tmp_path / "train" / "images") if ".tmp" in n]


def test_paired_custom_label_set_and_labels_only(tmp_path):
    label_set = LabelSet.load_json(STREET5_PATH)
    write_paired_dataset(tmp_path / "src", label_set, num_train=2, num_val=2, size=(32, 64), seed=2)
    prepare(tmp_path / "src", tmp_path / "out", split="val", size=(16, 32), label_set=label_set, progress=False)
    _, direct = all_batches(make_dataset(tmp_path / "src", size=(16, 32), split="val", label_set=label_set))
    _, back = all_batches(make_dataset(tmp_path / "out", split="val", label_set=LabelSet.load_json(
        tmp_path / "out" / "label_set.json")))
    np.testing.assert_array_equal(back, direct)
    prepare(tmp_path / "src", tmp_path / "labels_only", split="train", size=(16, 32), label_set=label_set,
            images="none", progress=False)
    assert not os.path.exists(tmp_path / "labels_only" / "train" / "images")
    assert len(os.listdir(tmp_path / "labels_only" / "train" / "labels")) == 2


def test_void_is_written_so_that_it_reads_back():
    classes = np.array([[0, 1, 255]], np.uint8)
    assert encode_label(classes, CITYSCAPES).tolist() == [[[128, 64, 128], [244, 35, 232], [0, 0, 0]]]
    black_is_a_class = LabelSet("b", (LabelClass("x", 1, (0, 0, 0)), LabelClass("y", 2, (1, 1, 1))),
                                void_ids=None, void_colors=None)
    assert encode_label(classes, black_is_a_class)[0, 2].tolist() == [255, 255, 255]
    no_void_colour = LabelSet("c", (LabelClass("x", 1, (5, 5, 5)), LabelClass("y", 2, (6, 6, 6))),
                              void_ids=(0,), void_colors=())
    assert encode_label(classes, no_void_colour).tolist() == [[1, 2, 0]]


def test_cli_errors_are_one_line(tmp_path, capsys):
    assert main(["--cityscapes", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "nowhere" in err and len(err.strip().splitlines()) <= 2
    with pytest.raises(SystemExit):
        main(["--cityscapes", "x", "--out", "y", "--size", "256by512"])


@pytest.mark.slow
def test_cli_module(city, tmp_path):
    command = [sys.executable, "-m", "crn_tf.data.prepare", "--cityscapes", city, "--split", "val",
               "--size", "32x64", "--out", str(tmp_path), "--photo-resize", "area"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "prepared 1 pairs, skipped 0" in result.stdout and "prepare val [" in result.stderr
    assert probe(tmp_path / "val" / "labels" / f"{find_examples(city, 'val')[0].stem}.png").size == (32, 64)
    with open(tmp_path / "val" / "prepared.json") as f:
        assert json.load(f)["photo_resize"] == "area"
