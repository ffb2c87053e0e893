"""crn_tf.data.pipeline: tf.data batches checked against independent NumPy reads and resizes."""
import os
import warnings

import numpy as np
import pytest
import tensorflow as tf
from conftest import SHAPES5
from PIL import Image

from crn_tf.data import (
    DataError,
    find_examples,
    label_size,
    make_dataset,
    make_layout_dataset,
    read_image,
    read_label,
)
from crn_tf.labels import (
    CITYSCAPES,
    classes_to_colors,
    classes_to_ids,
    onehot_to_classes,
)


def write_pairs(root, count, size=(24, 40), label_set=CITYSCAPES, label_format="colors", seed=0, split=None):
    """A paired-format folder of random class maps; photo i is constant-ish around 10 * i (identifies it)."""
    rng = np.random.default_rng(seed)
    base = os.path.join(root, split) if split else str(root)
    os.makedirs(os.path.join(base, "images"), exist_ok=True)
    os.makedirs(os.path.join(base, "labels"), exist_ok=True)
    for i in range(count):
        classes = rng.integers(0, label_set.num_classes, size).astype(np.uint8)
        classes[: size[0] // 6] = 255
        fmt = label_format if isinstance(label_format, str) else label_format[i % len(label_format)]
        label = classes_to_colors(classes, label_set) if fmt == "colors" else classes_to_ids(classes, label_set)
        Image.fromarray(label).save(os.path.join(base, "labels", f"s{i:03d}.png"))
        photo = np.clip(10 * i + rng.integers(0, 5, size + (3,)), 0, 255).astype(np.uint8)
        Image.fromarray(photo).save(os.path.join(base, "images", f"s{i:03d}.png"))
    return str(root)


def nearest(classes, size):
    """Nearest neighbour with half-pixel centres: source index floor((i + 0.5) * in / out)."""
    rows = np.minimum(np.floor((np.arange(size[0]) + 0.5) * classes.shape[0] / size[0]).astype(int), classes.shape[0] - 1)
    cols = np.minimum(np.floor((np.arange(size[1]) + 0.5) * classes.shape[1] / size[1]).astype(int), classes.shape[1] - 1)
    return classes[rows][:, cols]


def block_mean(image, factor):
    h, w, c = image.shape
    return image.reshape(h // factor, factor, w // factor, factor, c).astype(np.float64).mean(axis=(1, 3))


@pytest.fixture(scope="module")
def pairs(tmp_path_factory):
    return write_pairs(tmp_path_factory.mktemp("pairs"), 5)


def test_batches_shapes_onehot_and_values(pairs):
    examples = find_examples(pairs)
    dataset = make_dataset(pairs, size=(12, 20), batch_size=2, photo_resize="area")  # MATLAB's: test_data_resize.py
    batches = list(dataset)
    assert [b[0].shape[0] for b in batches] == [2, 2, 1]
    for image, layout in batches:
        assert image.dtype == tf.float32 and layout.dtype == tf.float32
        assert image.shape[1:] == (12, 20, 3) and layout.shape[1:] == (12, 20, 20)
        np.testing.assert_array_equal(layout.numpy().sum(-1), 1.0)  # one-hot sums to 1 everywhere
        assert set(np.unique(layout.numpy())) <= {0.0, 1.0}
    images = np.concatenate([b[0].numpy() for b in batches])
    layouts = np.concatenate([b[1].numpy() for b in batches])
    for i, e in enumerate(examples):  # order = example order when not shuffled
        np.testing.assert_allclose(images[i], block_mean(read_image(e.image_path), 2), atol=1e-3)
        np.testing.assert_array_equal(onehot_to_classes(layouts[i]), nearest(read_label(e.label_path), (12, 20)))


@pytest.mark.parametrize("size", [(24, 40), (10, 16), (7, 13), (48, 80)])
def test_resize_sizes_and_nearest_labels(pairs, size):
    example = find_examples(pairs)[1]
    image, layout = next(iter(make_dataset([example], size=size)))
    assert image.shape == (1,) + size + (3,) and layout.shape == (1,) + size + (20,)
    np.testing.assert_array_equal(onehot_to_classes(layout.numpy()[0]), nearest(read_label(example.label_path), size))
    photo = read_image(example.image_path).astype(np.float32)
    area = next(iter(make_dataset([example], size=size, photo_resize="area")))[0].numpy()
    assert photo.min() - 1e-3 <= area.min() and area.max() <= photo.max() + 1e-3  # weights >= 0: no overshoot
    if size == (24, 40):
        np.testing.assert_array_equal(image.numpy()[0], photo)
        np.testing.assert_array_equal(area[0], photo)


def test_native_size_needs_equal_sizes_to_batch(tmp_path):
    write_pairs(tmp_path / "a", 2, size=(8, 8))
    write_pairs(tmp_path / "b", 1, size=(6, 10))
    examples = find_examples(tmp_path / "a") + find_examples(tmp_path / "b")
    assert [tuple(b[1].shape) for b in make_dataset(examples)] == [(1, 8, 8, 20), (1, 8, 8, 20), (1, 6, 10, 20)]
    with pytest.raises(DataError, match="different sizes.*pass size"):
        make_dataset(examples, batch_size=2)


def test_custom_label_set_and_mixed_formats(tmp_path):
    root = write_pairs(tmp_path, 4, label_set=SHAPES5, label_format=("colors", "ids"))
    examples = find_examples(root, label_set=SHAPES5)
    assert [e.label_format for e in examples] == ["colors", "ids", "colors", "ids"]
    layouts = np.concatenate([b[1].numpy() for b in make_dataset(root, label_set=SHAPES5, batch_size=4)])
    assert layouts.shape[-1] == 6
    for layout, e in zip(layouts, examples):
        np.testing.assert_array_equal(onehot_to_classes(layout), read_label(e.label_path, SHAPES5))


def first_values(dataset):
    return [int(round(float(np.mean(image[0].numpy())) / 10)) for image, _ in dataset]


def test_shuffle_is_seeded_and_reshuffles_each_epoch(pairs):
    plain = first_values(make_dataset(pairs))
    assert plain == [0, 1, 2, 3, 4]
    one = first_values(make_dataset(pairs, shuffle=True, seed=1, repeat=True).take(15))
    again = first_values(make_dataset(pairs, shuffle=True, seed=1, repeat=True).take(15))
    other = first_values(make_dataset(pairs, shuffle=True, seed=2, repeat=True).take(15))
    assert one == again and one != other
    epochs = [one[0:5], one[5:10], one[10:15]]
    assert all(sorted(epoch) == plain for epoch in epochs)
    assert len({tuple(e) for e in epochs}) > 1
    cached = make_dataset(pairs, shuffle=True, seed=1, repeat=True, cache=True).take(15)
    cached_values = first_values(cached)
    assert all(sorted(cached_values[i:i + 5]) == plain for i in (0, 5, 10))
    unordered = make_dataset(pairs, deterministic=False)
    assert sorted(first_values(unordered)) == plain


def test_cache_to_file_gives_the_same_batches(pairs, tmp_path):
    direct = [b[0].numpy() for b in make_dataset(pairs, size=(12, 20), batch_size=2)]
    cached = make_dataset(pairs, size=(12, 20), batch_size=2, cache=str(tmp_path / "cache"))
    for _ in range(2):  # the second epoch reads the cache
        for a, b in zip(direct, [b[0].numpy() for b in cached]):
            np.testing.assert_array_equal(a, b)


def test_input_context_shards_and_splits_the_batch(pairs):
    context = tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=1, num_replicas_in_sync=2)
    dataset = make_dataset(pairs, batch_size=4, input_context=context)
    batches = list(dataset)
    assert [b[0].shape[0] for b in batches] == [2]  # examples 1 and 3, per-replica batch 4 / 2
    assert [int(round(float(np.mean(b.numpy())) / 10)) for b in batches[0][0]] == [1, 3]
    dropped = make_dataset(pairs, batch_size=2, drop_remainder=True)
    assert dropped.element_spec[0].shape == (2, 24, 40, 3)


def test_up_front_scan_names_bad_files(tmp_path):
    root = write_pairs(tmp_path, 4)
    Image.fromarray(np.zeros((20, 40, 3), np.uint8)).save(tmp_path / "images" / "s001.png")
    data = open(tmp_path / "labels" / "s002.png", "rb").read()
    (tmp_path / "labels" / "s002.png").write_bytes(data[:-30])
    with pytest.raises(DataError) as error:
        make_dataset(root)
    message = str(error.value)
    assert "s001.png: photo is 20x40 but its label" in message and "is 24x40" in message
    assert "s002.png: truncated PNG" in message
    with pytest.warns(UserWarning, match=r"(?s)skipping bad examples.*s001\.png.*s002\.png"):
        dataset = make_dataset(root, skip_bad=True)
    assert first_values(dataset) == [0, 3]


def test_values_outside_the_label_set_fail_naming_the_file_or_are_skipped(tmp_path):
    root = write_pairs(tmp_path, 3)
    label = np.asarray(Image.open(tmp_path / "labels" / "s001.png")).copy()
    label[5, 5] = (1, 2, 3)
    Image.fromarray(label).save(tmp_path / "labels" / "s001.png")
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"s001\.png: ids or colours outside the cityscapes"):
        list(make_dataset(root))
    assert first_values(make_dataset(root, skip_bad=True)) == [0, 2]
    assert len(list(make_dataset(root, unknown="void"))) == 3
    with pytest.raises(DataError, match=r"s001\.png: colours outside the cityscapes label set: colour \(1,2,3\) \(1 pixels\)"):
        make_dataset(root, scan="full")


def test_corrupt_data_is_found_by_the_full_scan(tmp_path):
    root = write_pairs(tmp_path, 2, size=(64, 64))
    data = bytearray(open(tmp_path / "images" / "s000.png", "rb").read())
    data[100:300] = bytes(200)
    (tmp_path / "images" / "s000.png").write_bytes(bytes(data))
    make_dataset(root)  # headers are fine: the fast scan cannot see it
    with pytest.raises(DataError, match=r"s000\.png: corrupt image data"):
        make_dataset(root, scan="full")


def test_labels_only_layout_dataset(tmp_path):
    root = write_pairs(tmp_path, 3, size=(10, 18))
    for name in os.listdir(tmp_path / "images"):
        os.remove(tmp_path / "images" / name)
    with pytest.raises(DataError, match="no photo"):
        make_dataset(root)
    examples = find_examples(root, images="none")
    dataset = make_layout_dataset(examples, size=(8, 16), batch_size=2)
    batches = list(dataset)
    assert [tuple(b[0].shape) for b in batches] == [(2, 8, 16, 20), (1, 8, 16, 20)]
    stems = [s.decode() for b in batches for s in b[2].numpy()]
    indices = [int(i) for b in batches for i in b[3].numpy()]
    assert stems == ["s000", "s001", "s002"] and indices == [0, 1, 2]
    native = next(iter(make_layout_dataset(root)))
    assert native[0].shape == (1, 10, 18, 20) and label_size(examples[0]) == (10, 18)
    np.testing.assert_array_equal(onehot_to_classes(native[0].numpy()[0]), read_label(examples[0].label_path))
    np.testing.assert_array_equal(native[1].numpy()[0], read_label(examples[0].label_path))


@pytest.mark.parametrize("label_format", ["colors", "ids"])
def test_layout_dataset_class_ids_are_the_argmax_of_its_one_hot_with_void(tmp_path, label_format):
    """The class-id map beside the one-hot: channel argmax, the last (void) channel as 255, resized alike."""
    root = write_pairs(tmp_path, 3, size=(12, 20), label_format=label_format)
    for layout, classes, _, _ in make_layout_dataset(find_examples(root, images="none"), size=(6, 10), batch_size=2):
        layout, classes = layout.numpy(), classes.numpy()
        channel = np.argmax(layout, axis=-1)
        assert classes.dtype == np.uint8 and classes.shape == layout.shape[:-1]
        np.testing.assert_array_equal(classes, np.where(channel == layout.shape[-1] - 1, 255, channel))
        assert (classes == 255).any() and (classes < 19).any()  # both kinds of pixel were there


def test_rgba_grey_and_palette_photos_are_read_as_rgb_with_a_warning(tmp_path):
    root = write_pairs(tmp_path, 3, size=(8, 12))
    photos = [tmp_path / "images" / f"s{i:03d}.png" for i in range(3)]
    Image.open(photos[0]).convert("RGBA").save(photos[0])
    Image.open(photos[1]).convert("L").save(photos[1])
    Image.open(photos[2]).convert("P").save(photos[2])
    with pytest.warns(UserWarning, match=r"(?s)3 warnings.*s000\.png: photo is RGBA.*s001\.png: photo is greyscale"
                                         r".*s002\.png: photo is palette"):
        dataset = make_dataset(root)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = [read_image(p) for p in photos]
    for (image, _), photo in zip(dataset, expected):
        np.testing.assert_array_equal(image.numpy()[0], photo)


def test_works_under_a_distribution_strategy(pairs):
    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    whole = strategy.experimental_distribute_dataset(make_dataset(pairs, batch_size=2, drop_remainder=True))
    assert [tuple(layout.shape) for _, layout in whole] == [(2, 24, 40, 20)] * 2
    per_worker = strategy.distribute_datasets_from_function(
        lambda context: make_dataset(pairs, batch_size=2, input_context=context))
    assert sum(int(image.shape[0]) for image, _ in per_worker) == 5


RELEASE_PALETTE = np.array([  # the release's datasets/cityscapes.json "palette", trainId order
    (128, 64, 128), (244, 35, 232), (70, 70, 70), (102, 102, 156), (190, 153, 153), (153, 153, 153),
    (250, 170, 30), (220, 220, 0), (107, 142, 35), (152, 251, 152), (70, 130, 180), (220, 20, 60),
    (255, 0, 0), (0, 0, 142), (0, 0, 70), (0, 60, 100), (0, 80, 100), (0, 0, 230), (119, 11, 32)])


def test_layout_is_the_originals_colour_match_with_void_one_minus_the_rest(tmp_path, rng):
    """helper.get_semantic_map: channel k = (pixel == palette[k]) for the 19 colours; the scripts feed
    void = 1 - sum of them as channel 19. Black and Cityscapes' other void colours (ground) land there."""
    colours = np.concatenate([RELEASE_PALETTE, [(0, 0, 0), (81, 0, 81)]])
    label = colours[rng.integers(0, len(colours), (12, 20))].astype(np.uint8)
    os.makedirs(tmp_path / "labels")
    os.makedirs(tmp_path / "images")
    Image.fromarray(label).save(tmp_path / "labels" / "a.png")
    Image.fromarray(np.zeros((12, 20, 3), np.uint8)).save(tmp_path / "images" / "a.png")
    classes = np.stack([np.all(label == colour, axis=-1) for colour in RELEASE_PALETTE], -1).astype(np.float32)
    expected = np.concatenate([classes, 1 - classes.sum(-1, keepdims=True)], -1)
    _, layout = next(iter(make_dataset(str(tmp_path))))
    np.testing.assert_array_equal(layout.numpy()[0], expected)
    assert expected[..., 19].sum() > 0  # void pixels were there to check
