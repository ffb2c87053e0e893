"""Saved pictures (`crn_tf.core.images`): the grid tiler, rounding, atomic saves."""
import numpy as np
from PIL import Image

from crn_tf.core.images import image_file_name, make_grid, save_image, to_uint8


def _padded_grid(images, columns, gap, fill):
    """The same grid built another way: each tile padded right and below by the gap, missing
    tiles as fill, rows concatenated, then the outer gap cut off."""
    count, height, width, channels = images.shape
    tiles = [np.pad(image, ((0, gap), (0, gap), (0, 0)), constant_values=fill) for image in images]
    tiles += [np.full_like(tiles[0], fill)] * (-count % columns)
    rows = [np.concatenate(tiles[i : i + columns], axis=1) for i in range(0, len(tiles), columns)]
    grid = np.concatenate(rows, axis=0)
    return grid[: grid.shape[0] - gap, : grid.shape[1] - gap]


def test_make_grid_tiles_row_major_with_gaps(rng):
    images = rng.integers(0, 200, (5, 3, 4, 3)).astype(np.uint8)
    for columns, gap, fill in [(None, 0, 0), (3, 2, 255), (5, 1, 7), (1, 0, 0)]:
        grid = make_grid(images, columns=columns, gap=gap, fill=fill)
        np.testing.assert_array_equal(grid, _padded_grid(images, columns or 3, gap, fill))
    nine = make_grid(rng.integers(0, 256, (9, 2, 3, 3)).astype(np.uint8))
    assert nine.shape == (6, 9, 3)  # 9 images: the original's 3x3 grid


def test_to_uint8_rounds_half_up_and_clips():
    np.testing.assert_array_equal(to_uint8([-3.0, 0.49, 0.5, 1.5, 254.5, 300.0]), [0, 0, 1, 2, 255, 255])


def test_save_image_and_file_names(tmp_path, rng):
    image = rng.uniform(0, 255, (4, 6, 3)).astype(np.float32)
    save_image(tmp_path / "a.png", image)
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "a.png")), to_uint8(image))
    assert [image_file_name("s", i) for i in range(3)] == ["s.png", "s_1.png", "s_2.png"]
