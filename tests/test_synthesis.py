"""crn_tf.synthesis: the one synthesize-to-folder loop of the demo and the evaluation."""
import os

import numpy as np
import pytest
from PIL import Image

from crn_tf.core.images import make_grid, to_uint8
from crn_tf.data import DataError, read_label, scan_dataset
from crn_tf.labels import CITYSCAPES, classes_to_colors, classes_to_onehot
from crn_tf.synthesis import (
    check_output_names,
    image_names,
    output_names,
    synthesize_to_folder,
)

HEIGHT, WIDTH = 32, 64


@pytest.fixture(scope="module")
def k2():
    import keras

    from crn_tf.nn.model import CRN

    keras.utils.set_random_seed(0)
    model = CRN(output_size=(HEIGHT, WIDTH), widths=(8, 8, 8, 8), num_images=2)
    model.build()
    kernel, bias = model.output_conv.get_weights()
    model.output_conv.set_weights([kernel * 4.0, bias])  # spread pixels over 0..255
    return model


def _nearest(classes, size):
    """Nearest neighbour with half-pixel centres: source index floor((i + 0.5) * in / out)."""
    rows = np.floor((np.arange(size[0]) + 0.5) * classes.shape[0] / size[0]).astype(int)
    cols = np.floor((np.arange(size[1]) + 0.5) * classes.shape[1] / size[1]).astype(int)
    return classes[rows][:, cols]


def test_names_of_one_image_all_images_and_the_grid():
    assert output_names("a", 1) == ["a.png"]
    assert output_names("a", 3) == ["a.png", "a_1.png", "a_2.png", "a_grid.png"]
    assert output_names("a", 3, grid=False) == ["a.png", "a_1.png", "a_2.png"]
    assert output_names("a", 3, image_index=2) == ["a.png"]  # the scored image, no grid
    assert image_names("s", 9, 4) == [(4, "s.png")]
    assert image_names("s", 3, "all") == [(0, "s.png"), (1, "s_1.png"), (2, "s_2.png")]
    with pytest.raises(ValueError, match="outside 0..2"):
        image_names("s", 3, 3)
    with pytest.raises(DataError, match="inputs 'a' and 'a_1' would both write a_1.png"):
        check_output_names(["a", "a_1"], [output_names("a", 2), output_names("a_1", 2)])


def test_images_at_the_labels_own_size_with_grid_and_the_class_ids_of_each_layout(k2, tmp_path):
    """Each layout's k images are the model's output, rounded, resized (Lanczos) to the label's own size
    from the scan; `on_layout` gets the class ids the one-hot was made from (nearest-resized labels)."""
    rng = np.random.default_rng(2)
    sizes = {"a": (40, 70), "b": (HEIGHT, WIDTH)}
    for stem, size in sizes.items():
        classes = rng.integers(0, 19, size).astype(np.uint8)
        classes[:4] = 255
        Image.fromarray(classes_to_colors(classes)).save(tmp_path / f"{stem}.png")
    layouts = scan_dataset(str(tmp_path / "*.png"), label_set=CITYSCAPES, images="none").usable()
    seen = {}
    out = tmp_path / "out"
    paths = synthesize_to_folder(k2, layouts, out, batch_size=2, grid=True, keep_size=True, progress=False,
                                 on_layout=lambda example, classes, size: seen.update({example.stem: (classes, size)}))
    assert [os.path.basename(p) for p in paths] == ["a.png", "a_1.png", "a_grid.png", "b.png", "b_1.png", "b_grid.png"]
    for stem, size in sizes.items():
        label = _nearest(read_label(tmp_path / f"{stem}.png"), (HEIGHT, WIDTH))
        classes, written_at = seen[stem]
        np.testing.assert_array_equal(classes, label)
        assert written_at == size
        expected = to_uint8(k2(classes_to_onehot(label[None], 19)).numpy()[0])  # [k, H, W, 3]
        if size != (HEIGHT, WIDTH):
            expected = np.stack([np.asarray(Image.fromarray(e).resize(size[::-1], Image.Resampling.LANCZOS))
                                 for e in expected])
        images = np.stack([np.asarray(Image.open(out / name)) for name in (f"{stem}.png", f"{stem}_1.png")])
        assert images.shape == (2,) + size + (3,)
        assert np.abs(images.astype(int) - expected.astype(int)).max() <= 1
        np.testing.assert_array_equal(np.asarray(Image.open(out / f"{stem}_grid.png")), make_grid(images))


def test_resume_skips_the_layouts_already_written(k2, tmp_path):
    Image.fromarray(classes_to_colors(np.zeros((HEIGHT, WIDTH), np.uint8))).save(tmp_path / "a.png")
    Image.fromarray(classes_to_colors(np.ones((HEIGHT, WIDTH), np.uint8))).save(tmp_path / "b.png")
    layouts = scan_dataset(str(tmp_path), label_set=CITYSCAPES, images="none").usable()
    out = tmp_path / "out"
    first = synthesize_to_folder(k2, layouts, out, image_index=1, resume=True, progress=False)
    assert [os.path.basename(p) for p in first] == ["a.png", "b.png"]
    os.remove(first[1])
    done = []
    again = synthesize_to_folder(k2, layouts, out, image_index=1, resume=True, progress=False,
                                 on_layout=lambda example, classes, size: done.append(example.stem))
    assert again == first and done == ["b"] and os.path.exists(first[1])
