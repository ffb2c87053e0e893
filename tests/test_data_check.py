"""crn_tf.data.check / scan_dataset: one test per kind of problem, each naming the file."""
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from crn_tf.data import scan_dataset
from crn_tf.data.check import main, suggested_size
from crn_tf.labels import LabelSet
from crn_tf.synthetic import write_paired_dataset

STREET5_PATH = os.path.join(os.path.dirname(__file__), "..", "data", "label_sets", "street5.json")
STREET5 = LabelSet.load_json(STREET5_PATH)


@pytest.fixture
def street(tmp_path_factory, tmp_path):
    """A fresh copy of a small paired dataset in the street5 label set (colour labels)."""
    write_paired_dataset(tmp_path, STREET5, num_train=4, num_val=1, size=(24, 48), seed=1)
    return tmp_path


def run(source, *args, capsys):
    code = main([str(source), "--label-set", STREET5_PATH, "--quiet", *args])
    return code, capsys.readouterr().out


def stems(street, split="train"):
    return sorted(os.path.splitext(n)[0] for n in os.listdir(street / split / "labels"))


def test_clean_dataset_passes_with_shares_and_command(street, capsys):
    code, out = run(street, capsys=capsys)
    assert code == 0, out
    assert "format: paired, split train; label set: street5 (5 classes + void)" in out
    assert "pairs found: 4, usable: 4 (sizes: 24x48 (4))" in out
    assert "split val" in out and "pairs found: 1" in out
    shares = [(line.split()[0], float(line.split()[1].rstrip("%"))) for line in out.splitlines()
              if line.startswith("    ") and line.strip().endswith("%")]
    assert [name for name, _ in shares] == (STREET5.names + ["void"]) * 2  # train, then val
    assert abs(sum(v for _, v in shares) - 200.0) < 0.1  # each split sums to 100 %
    assert f"next: python train.py --data {street} --val-data {street} --label-set {STREET5_PATH} --size 16x32" in out


def test_suggested_size():
    assert suggested_size([(1024, 2048), (1024, 2048)]) is None  # the 256p preset's own 256x512
    assert suggested_size([(64, 128)]) == (64, 128)
    assert suggested_size([(300, 400), (200, 900)]) == (128, 256)
    assert suggested_size([]) is None


def test_class_shares_match_numpy(street):
    report = scan_dataset(street, label_set=STREET5, decode=True)
    counts = np.zeros(6, np.int64)
    lookup = {tuple(c.color): i for i, c in enumerate(STREET5.classes)}
    for e in report.examples:
        rgb = np.asarray(Image.open(e.label_path).convert("RGB")).reshape(-1, 3)
        for color in map(tuple, rgb):
            counts[lookup.get(color, 5)] += 1
    np.testing.assert_array_equal(report.class_pixels, counts)


def test_missing_photo(street, capsys):
    os.remove(street / "train" / "images" / f"{stems(street)[0]}.png")
    code, out = run(street, capsys=capsys)
    assert code == 1
    assert "ERROR: labels without a photo: 1" in out and f"{stems(street)[0]}.png: no photo with stem" in out


def test_missing_label(street, capsys):
    os.remove(street / "train" / "labels" / f"{stems(street)[1]}.png")
    code, out = run(street, capsys=capsys)
    assert code == 1
    assert "ERROR: photos without a label: 1" in out and "photo has no label PNG" in out


def test_size_mismatch(street, capsys):
    stem = stems(street)[2]
    Image.fromarray(np.zeros((20, 48, 3), np.uint8)).save(street / "train" / "images" / f"{stem}.png")
    code, out = run(street, capsys=capsys)
    assert code == 1
    assert "ERROR: photo and label of different sizes: 1" in out
    assert f"images/{stem}.png: photo is 20x48 but its label" in out and "is 24x48" in out


@pytest.mark.parametrize("damage", ["truncated", "garbage", "corrupt-data"])
def test_unreadable_files(street, capsys, damage):
    stem = stems(street)[0]
    path = street / "train" / "images" / f"{stem}.png"
    data = bytearray(path.read_bytes())
    if damage == "truncated":
        data = data[: len(data) // 2]
    elif damage == "garbage":
        data = bytearray(b"not an image")
    else:
        data[120:400] = bytes(280)
    path.write_bytes(bytes(data))
    code, out = run(street, capsys=capsys)
    assert code == 1
    assert "ERROR: unreadable files: 1" in out and f"images/{stem}.png: " in out
    expected = {"truncated": "truncated PNG", "garbage": "not a readable PNG", "corrupt-data": "corrupt image data"}
    assert expected[damage] in out


def test_unknown_colours_with_counts_and_files(street, capsys):
    for stem in stems(street)[:2]:
        path = street / "train" / "labels" / f"{stem}.png"
        label = np.asarray(Image.open(path).convert("RGB")).copy()
        label[0, :3] = (1, 2, 3)
        path.unlink()
        Image.fromarray(label).save(path)
    code, out = run(street, capsys=capsys)
    assert code == 1
    assert "ERROR: ids or colours outside the label set: 2" in out
    assert "colour (1,2,3): 6 pixels in 2 file(s), e.g. " in out and f"labels/{stems(street)[0]}.png" in out


def test_unknown_ids(tmp_path, capsys):
    write_paired_dataset(tmp_path, STREET5, num_train=2, num_val=0, size=(16, 32), seed=0, label_format="ids")
    path = tmp_path / "train" / "labels" / f"{stems(tmp_path)[0]}.png"
    ids = np.asarray(Image.open(path)).copy()
    ids[:2, :2] = 9
    Image.fromarray(ids).save(path)
    code, out = run(tmp_path, capsys=capsys)
    assert code == 1 and "id 9: 4 pixels in 1 file(s)" in out


def test_absent_class_is_a_warning(street, capsys):
    for stem in stems(street):
        path = street / "train" / "labels" / f"{stem}.png"
        label = np.asarray(Image.open(path).convert("RGB")).copy()
        label[(label == STREET5.classes[4].color).all(-1)] = STREET5.classes[0].color  # no "car" left
        Image.fromarray(label).save(path)
    code, out = run(street, "--split", "train", capsys=capsys)
    assert code == 0
    assert "WARNING: classes that never appear: 1" in out and "never appear: car" in out
    assert "car                0.00%   <- never appears" in out


def test_labels_only(street, capsys):
    for name in os.listdir(street / "train" / "images"):
        os.remove(street / "train" / "images" / name)
    assert run(street, "--split", "train", capsys=capsys)[0] == 1
    code, out = run(street / "train" / "labels", "--labels-only", capsys=capsys)
    assert code == 0 and "format: label-folder" in out and "labels found: 4, usable: 4" in out
    assert "next:" not in out


def test_photo_mode_is_a_warning(street, capsys):
    stem = stems(street)[0]
    path = street / "train" / "images" / f"{stem}.png"
    Image.open(path).convert("RGBA").save(path)
    code, out = run(street, capsys=capsys)
    assert code == 0
    assert "WARNING: photos converted to RGB: 1" in out and "photo is RGBA (alpha dropped)" in out


def test_empty_folder_and_bad_label_set(tmp_path, capsys):
    code, out = run(tmp_path, capsys=capsys)
    assert code == 1 and "ERROR: no data: 1" in out and "empty folder" in out
    (tmp_path / "ls.json").write_text("{not json")
    assert main([str(tmp_path), "--label-set", str(tmp_path / "ls.json")]) == 2
    assert "ls.json: not valid JSON" in capsys.readouterr().err


@pytest.mark.slow
def test_cli_runs_as_a_module(street):
    result = subprocess.run([sys.executable, "-m", "crn_tf.data.check", str(street), "--label-set", STREET5_PATH],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "result: OK, training can run" in result.stdout
