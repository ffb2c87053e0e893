"""The synthetic city: Cityscapes tree layout, label consistency, determinism, scene content, paired format."""
import os
import re

import numpy as np
import pytest
from PIL import Image

from crn_tf.labels import (
    CITYSCAPES,
    VOID,
    LabelClass,
    LabelSet,
    colors_to_classes,
    ids_to_classes,
)
from crn_tf.synthetic import render_scene, write_paired_dataset, write_synthetic_city
from crn_tf.synthetic import writer as synthetic

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STREET5 = os.path.join(REPO, "data", "label_sets", "street5.json")
SIZE = (32, 64)


def _read(path):
    return np.asarray(Image.open(path))


@pytest.fixture(scope="module")
def city(tmp_path_factory):
    out = tmp_path_factory.mktemp("city")
    stems = write_synthetic_city(out, num_train=3, num_val=2, size=SIZE, seed=7)
    return out, stems


def test_cityscapes_tree_structure_and_names(city):
    out, stems = city
    assert len(stems) == 5
    pattern = re.compile(r"^(synthcity_[a-z])_(\d{6})_(\d{6})$")
    found = {}
    for split in ("train", "val"):
        for dirpath, _, files in os.walk(out / "leftImg8bit" / split):
            for name in files:
                assert name.endswith("_leftImg8bit.png"), name
                stem = name[: -len("_leftImg8bit.png")]
                match = pattern.match(stem)
                assert match, stem
                assert os.path.basename(dirpath) == match.group(1)  # {split}/{city}/{city}_...
                found[stem] = split
    assert sorted(found) == sorted(stems)
    assert sorted(found.values()) == ["train"] * 3 + ["val"] * 2
    assert not set(synthetic.TRAIN_CITIES) & set(synthetic.VAL_CITIES)
    for stem, split in found.items():
        city_name = stem.rsplit("_", 2)[0]
        label_dir = out / "gtFine" / split / city_name
        for suffix in ("labelIds", "labelTrainIds", "color", "instanceIds"):
            assert (label_dir / f"{stem}_gtFine_{suffix}.png").is_file(), (stem, suffix)
    assert not list(out.rglob("*.tmp-*"))


def test_label_files_agree(city):
    out, stems = city
    for path in (out / "gtFine").rglob("*_gtFine_labelIds.png"):
        prefix = str(path)[: -len("labelIds.png")]
        label_ids = _read(path)
        train_ids = _read(prefix + "labelTrainIds.png")
        color = _read(prefix + "color.png")
        instances = _read(prefix + "instanceIds.png").astype(np.int64)
        photo = _read(str(path).replace("gtFine", "leftImg8bit", 1).replace("_gtFine_labelIds", "_leftImg8bit"))
        assert label_ids.dtype == np.uint8 and label_ids.shape == SIZE
        assert photo.shape == SIZE + (3,) and photo.dtype == np.uint8
        assert color.shape == SIZE + (4,) and (color[..., 3] == 255).all()
        # labelIds -> trainIds equals the trainId file and the colours read back with the label set.
        expected = ids_to_classes(label_ids, CITYSCAPES, source=str(path))
        np.testing.assert_array_equal(train_ids, expected)
        np.testing.assert_array_equal(colors_to_classes(color, CITYSCAPES, source=str(path)), expected)
        # The colour file holds Cityscapes' colour of each label id (independent table lookup).
        for label_id in np.unique(label_ids):
            colors = np.unique(color[label_ids == label_id][:, :3], axis=0)
            assert colors.tolist() == [list(synthetic.CITYSCAPES_ID_COLORS[int(label_id)])]
        # Instance ids: id * 1000 + n on objects, the label id elsewhere.
        np.testing.assert_array_equal(np.where(instances >= 1000, instances // 1000, instances), label_ids)
        assert (instances >= 1000).any()


def test_train_ids_follow_the_published_map():
    _, label_ids = render_scene((48, 96), seed=3)
    published = {7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9, 23: 10, 24: 11, 25: 12,
                 26: 13, 27: 14, 28: 15, 31: 16, 32: 17, 33: 18}
    expected = np.vectorize(lambda i: published.get(int(i), VOID))(label_ids).astype(np.uint8)
    np.testing.assert_array_equal(ids_to_classes(label_ids), expected)


def test_deterministic_per_seed_and_different_across_seeds():
    photo_a, ids_a = render_scene(SIZE, seed=11)
    photo_b, ids_b = render_scene(SIZE, seed=11)
    np.testing.assert_array_equal(photo_a, photo_b)
    np.testing.assert_array_equal(ids_a, ids_b)
    layouts = [render_scene(SIZE, seed=s)[1] for s in range(6)]
    for i in range(len(layouts)):
        for j in range(i):
            assert (layouts[i] != layouts[j]).mean() > 0.02, (i, j)


def test_written_datasets_are_reproducible(tmp_path, city):
    out, stems = city
    again = write_synthetic_city(tmp_path, num_train=3, num_val=2, size=SIZE, seed=7, instances=False)
    assert again == stems
    for path in (tmp_path / "leftImg8bit").rglob("*.png"):
        np.testing.assert_array_equal(_read(path), _read(out / path.relative_to(tmp_path)))
    other = write_synthetic_city(tmp_path / "other", num_train=1, num_val=0, size=SIZE, seed=8)
    first = next((tmp_path / "other" / "gtFine").rglob("*_labelIds.png"))
    assert not np.array_equal(_read(first), _read(out / first.relative_to(tmp_path / "other")))
    assert other == stems[:1]


def test_scenes_hold_the_major_classes_in_a_street_layout():
    counts = {}
    for seed in range(8):
        photo, label_ids = render_scene((96, 192), seed)
        assert photo.shape == (96, 192, 3) and label_ids.shape == (96, 192)
        present = set(np.unique(label_ids).tolist())
        # Every scene: road, sidewalk, building, sky.
        assert {7, 8, 11, 23} <= present, (seed, sorted(present))
        for label_id in present:
            counts[label_id] = counts.get(label_id, 0) + 1
        # Sky above, road below: no sky in the bottom third, no road in the top third.
        assert not (label_ids[64:] == 23).any()
        assert not (label_ids[:32] == 7).any()
        # Ahead of the camera: road (or a tram track), a vehicle on it, or our own bonnet.
        centre = label_ids[70:90, 70:122]
        assert np.isin(centre, [1, 7, 10, 26, 27, 28, 31]).mean() > 0.95, seed
    # Most scenes: cars, vegetation, poles, people, traffic signs.
    for label_id in (26, 21, 17, 24, 20):
        assert counts.get(label_id, 0) >= 5, (label_id, counts)
    # Void classes show up too (ego vehicle, static, ground or parking), and rarer classes somewhere.
    assert {1, 4} <= set(counts)
    assert set(counts) & {6, 9}
    assert set(counts) & {12, 13, 19, 25, 27, 28, 33}


def test_the_default_twenty_scenes_hold_every_class():
    # `--num 20 --seed 0` (the CLI default): every Cityscapes class appears, so a class check has nothing to warn about.
    seen = set()
    for index in range(20):
        seen |= set(np.unique(render_scene((64, 128), synthetic.scene_seed(0, "train", index))[1]).tolist())
    assert {c.id for c in CITYSCAPES.classes} <= seen, sorted({c.id for c in CITYSCAPES.classes} - seen)
    assert {1, 4, 6, 9, 10} <= seen  # and Cityscapes void classes: ego vehicle, static, ground, parking, rail track


def test_photo_regions_look_like_their_class():
    photo, label_ids = render_scene((128, 256), seed=2)
    photo = photo.astype(np.float32)
    sky, road = photo[label_ids == 23], photo[label_ids == 7]
    assert sky.mean(axis=0)[2] > sky.mean(axis=0)[0]  # bluish or white, not red
    assert sky.mean() > road.mean()  # sky brighter than asphalt
    assert road.std(axis=0).max() > 2  # textured, not flat fill
    vegetation = photo[label_ids == 21]
    assert vegetation.mean(axis=0)[1] > vegetation.mean(axis=0)[2]  # green over blue


def test_same_layout_at_every_size():
    _, small = render_scene((64, 128), seed=5)
    _, large = render_scene((256, 512), seed=5)
    sampled = large[1::4, 1::4]  # the pixel centres nearest the small image's
    assert (sampled == small).mean() > 0.9
    photo, odd = render_scene((37, 91), seed=5)
    assert photo.shape == (37, 91, 3) and odd.shape == (37, 91)


def test_bad_sizes_raise():
    with pytest.raises(ValueError, match="at least 8x8"):
        render_scene((4, 8), 0)
    with pytest.raises(ValueError, match=r"\(height, width\)"):
        render_scene("big", 0)


def test_paired_format_with_a_custom_label_set(tmp_path):
    label_set = LabelSet.load_json(STREET5)
    assert label_set.names == ["sky", "building", "road", "vegetation", "car"]
    stems = write_paired_dataset(tmp_path, label_set, num_train=2, num_val=1, size=SIZE, seed=4)
    assert len(stems) == 3
    seen = set()
    for split, count in (("train", 2), ("val", 1)):
        images = sorted(os.listdir(tmp_path / split / "images"))
        labels = sorted(os.listdir(tmp_path / split / "labels"))
        assert images == labels and len(images) == count
        for name in labels:
            rgb = _read(tmp_path / split / "labels" / name)
            assert rgb.shape == SIZE + (3,)
            classes = colors_to_classes(rgb, label_set, unknown="error", source=name)
            seen |= set(np.unique(classes).tolist())
            # Same scene as the Cityscapes rendering, street classes mapped by name, rest void.
            index = stems.index(name[:-4])
            seed = synthetic.scene_seed(4, split, index if split == "train" else index - 2)
            photo, label_ids = render_scene(SIZE, seed)
            np.testing.assert_array_equal(_read(tmp_path / split / "images" / name), photo)
            expected = np.full(SIZE, VOID, np.uint8)
            for class_index, cityscapes_id in enumerate((23, 11, 7, 21, 26)):
                expected[label_ids == cityscapes_id] = class_index
            np.testing.assert_array_equal(classes, expected)
    assert {0, 1, 2, VOID} <= seen


def test_paired_format_ids_and_unmatched_classes(tmp_path):
    label_set = LabelSet("two", (LabelClass("road", 3, (1, 2, 3)), LabelClass("vehicle", 9, (4, 5, 6))), void_ids=None)
    write_paired_dataset(tmp_path, label_set, 1, 0, SIZE, seed=1, label_format="ids", class_map={"car": "vehicle", "bus": "vehicle"})
    ids = _read(next((tmp_path / "train" / "labels").iterdir()))
    assert ids.ndim == 2 and set(np.unique(ids).tolist()) <= {3, 9, 255}
    classes = ids_to_classes(ids, label_set)
    assert (classes == 0).any()
    with pytest.raises(ValueError, match="'vehicle'"):
        write_paired_dataset(tmp_path / "x", label_set, 1, 0, SIZE)
    no_void = LabelSet("novoid", (LabelClass("road", 0, (1, 2, 3)),), void_colors=())
    with pytest.raises(ValueError, match="no void colour"):
        write_paired_dataset(tmp_path / "y", no_void, 1, 0, SIZE)


def test_paired_void_is_written_by_the_label_set_rule(tmp_path):
    # Black is a class and every other colour is void: void is written white and reads back as void.
    label_set = LabelSet("dark", (LabelClass("road", 1, (0, 0, 0)), LabelClass("sky", 2, (1, 1, 1))), void_colors=None)
    write_paired_dataset(tmp_path, label_set, 1, 0, SIZE, seed=3)
    rgb = _read(next((tmp_path / "train" / "labels").iterdir()))
    _, label_ids = render_scene(SIZE, synthetic.scene_seed(3, "train", 0))
    void = (label_ids != 7) & (label_ids != 23)
    assert void.any() and (rgb[void] == 255).all()
    expected = np.where(label_ids == 7, 0, np.where(label_ids == 23, 1, VOID))
    np.testing.assert_array_equal(colors_to_classes(rgb, label_set), expected)


@pytest.mark.parametrize("split", [None, "train"])
def test_label_folder_matches_the_cityscapes_tree(tmp_path, city, split):
    out, stems = city
    names = synthetic.write_label_folder(tmp_path, 2, SIZE, seed=7, **({"split": split} if split else {}))
    assert names == ["street_0000", "street_0001"]
    # Scene i of the label folder is scene i of the split (default val) of the Cityscapes tree with the same seed.
    split = split or "val"
    for index, name in enumerate(names):
        city_name, stem = synthetic.cityscapes_stem(split, index, 3 if split == "train" else 2)
        label_ids = _read(out / "gtFine" / split / city_name / f"{stem}_gtFine_labelIds.png")
        rgb = _read(tmp_path / "labels" / f"{name}.png")
        assert rgb.shape == SIZE + (3,)
        np.testing.assert_array_equal(colors_to_classes(rgb, CITYSCAPES), ids_to_classes(label_ids))
        photo = _read(out / "leftImg8bit" / split / city_name / f"{stem}_leftImg8bit.png")
        np.testing.assert_array_equal(_read(tmp_path / "images" / f"{name}.png"), photo)
    with pytest.raises(ValueError, match="split must be one of train, val, test, got 'validation'"):
        synthetic.write_label_folder(tmp_path / "bad", 1, SIZE, split="validation")
    assert not (tmp_path / "bad").exists()


def test_committed_samples_are_readable_street_layouts(tmp_path):
    for size, shape in (("64x128", (64, 128)), ("128x256", (128, 256)), ("256x512", (256, 512))):
        folder = os.path.join(REPO, "data", "samples", size)
        stems = sorted(os.listdir(os.path.join(folder, "labels")))
        assert len(stems) >= 4 and stems == sorted(os.listdir(os.path.join(folder, "images")))
        for name in stems:
            rgb = _read(os.path.join(folder, "labels", name))
            assert rgb.shape == shape + (3,), name
            classes = colors_to_classes(rgb, CITYSCAPES, source=name)  # only Cityscapes colours
            assert {0, 1, 2, 10} <= set(np.unique(classes).tolist()), name  # road, sidewalk, building, sky
            assert _read(os.path.join(folder, "images", name)).shape == shape + (3,)
    # They are what the generator writes today from the val split, seed 0 (docs/synthetic.md has the
    # command): the scenes `python train.py` holds out in data/synthetic_city, not the ones it trains on.
    for size, shape in (("64x128", (64, 128)), ("128x256", (128, 256)), ("256x512", (256, 512))):
        for stem in synthetic.write_label_folder(tmp_path / size, 4, shape, seed=0, photos=False, split="val"):
            committed = _read(os.path.join(REPO, "data", "samples", size, "labels", f"{stem}.png"))
            regenerated = _read(tmp_path / size / "labels" / f"{stem}.png")
            assert (committed == regenerated).all(axis=-1).mean() > 0.995, (size, stem)
            index = int(stem.rsplit("_", 1)[1])
            _, train_ids = synthetic.render_scene(shape, synthetic.scene_seed(0, "train", index))
            assert (committed != synthetic.label_ids_to_colors(train_ids)).any(axis=-1).mean() > 0.05, (size, stem)


def test_cli_writes_both_formats_and_reports_errors(tmp_path, capsys):
    assert synthetic.main([str(tmp_path / "c"), "--num", "2", "--size", "16x32", "--seed", "3"]) == 0
    assert len(list((tmp_path / "c" / "leftImg8bit" / "train").rglob("*.png"))) == 2
    assert len(list((tmp_path / "c" / "leftImg8bit" / "val").rglob("*.png"))) == 1  # default: num / 4, >= 1
    out = capsys.readouterr()
    assert "writing scenes [" in out.err and "] 3/3 val/" in out.err and "wrote 3 scenes" in out.out
    argv = [str(tmp_path / "p"), "--num", "1", "--val", "0", "--size", "16x32", "--format", "paired", "--label-set", STREET5]
    assert synthetic.main(argv) == 0
    assert len(os.listdir(tmp_path / "p" / "train" / "labels")) == 1
    capsys.readouterr()
    assert synthetic.main([str(tmp_path / "q"), "--format", "paired", "--label-set", str(tmp_path / "none.json")]) == 1
    err = capsys.readouterr().err
    assert "none.json" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert synthetic.main([str(tmp_path / "f"), "--format", "label-folder", "--num", "2", "--size", "16x32"]) == 0
    assert sorted(os.listdir(tmp_path / "f" / "labels")) == ["street_0000.png", "street_0001.png"]
    assert "(val split)" in capsys.readouterr().out
    assert synthetic.main([str(tmp_path / "t"), "--format", "label-folder", "--num", "1", "--size", "16x32",
                           "--split", "train"]) == 0
    _, train_ids = synthetic.render_scene((16, 32), synthetic.scene_seed(0, "train", 0))
    np.testing.assert_array_equal(_read(tmp_path / "t" / "labels" / "street_0000.png"),
                                  synthetic.label_ids_to_colors(train_ids))
    _, val_ids = synthetic.render_scene((16, 32), synthetic.scene_seed(0, "val", 0))
    np.testing.assert_array_equal(_read(tmp_path / "f" / "labels" / "street_0000.png"),
                                  synthetic.label_ids_to_colors(val_ids))
    capsys.readouterr()
    assert synthetic.main([str(tmp_path / "s"), "--split", "val", "--size", "16x32"]) == 1
    assert "--split applies to --format label-folder only" in capsys.readouterr().err
    assert synthetic.main([str(tmp_path / "g"), "--format", "label-folder", "--val", "2"]) == 1
    assert "--val does not apply" in capsys.readouterr().err
    assert synthetic.main([str(tmp_path / "h"), "--label-set", STREET5, "--size", "16x32"]) == 1
    assert "--format paired only" in capsys.readouterr().err
    assert synthetic.main([str(tmp_path / "i"), "--label-format", "ids", "--size", "16x32"]) == 1
    assert "--format paired only" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        synthetic.main([str(tmp_path / "r"), "--size", "256"])
    assert "HEIGHTxWIDTH" in capsys.readouterr().err
