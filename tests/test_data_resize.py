"""crn_tf.data.resize and the pipeline's photo resize, against MATLAB's published `imresize`.

The reference below is written from MATLAB's documented algorithm (imresize.m, bicubic,
antialiasing on), as a direct loop over output pixels and taps, independent of crn_tf's
matrix code: for output pixel x (1-based) the input is sampled at u = x / s + 0.5 (1 - 1/s);
the taps are floor(u - K/2) + 0 .. ceil(K) + 1 with K = 4 / s when shrinking (4 otherwise),
weighted s * cubic(s * (u - j)) when shrinking (cubic(u - j) otherwise), normalised, and taken
from the symmetrically padded input (..., 2, 1 | 1, 2, ..., n | n, n-1, ...). The dimension
with the smaller scale goes first. The original then `imwrite`s the double image: clip to
[0, 1], times 255, round half away from zero.
"""
import math
import os

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from crn_tf.data import find_examples, make_dataset, read_image
from crn_tf.data.decode import resize_photo
from crn_tf.data.resize import (
    PHOTO_RESIZE_METHODS,
    check_photo_resize,
    imresize,
    imresize_uint8,
)
from crn_tf.labels import CITYSCAPES, classes_to_colors


def keys_cubic(s: float) -> float:
    """MATLAB's `cubic`: Keys' kernel with a = -0.5."""
    s = abs(s)
    if s <= 1:
        return 1.5 * s**3 - 2.5 * s**2 + 1
    if s <= 2:
        return -0.5 * s**3 + 2.5 * s**2 - 4 * s + 2
    return 0.0


def symmetric_index(j: int, n: int) -> int:
    """1-based tap j of an axis of n pixels -> 0-based source under symmetric padding."""
    while j < 1 or j > n:
        j = 1 - j if j < 1 else 2 * n + 1 - j
    return j - 1


def matlab_resize_axis(image: np.ndarray, out_length: int, axis: int) -> np.ndarray:
    n = image.shape[axis]
    scale = out_length / n
    kernel_width = 4.0 / scale if scale < 1 else 4.0
    source = np.moveaxis(image, axis, 0)
    out = np.zeros((out_length,) + source.shape[1:])
    for x in range(1, out_length + 1):
        u = x / scale + 0.5 * (1 - 1 / scale)
        left = math.floor(u - kernel_width / 2)
        taps = [left + k for k in range(math.ceil(kernel_width) + 2)]
        if scale < 1:
            weights = [scale * keys_cubic(scale * (u - j)) for j in taps]
        else:
            weights = [keys_cubic(u - j) for j in taps]
        total = sum(weights)
        for j, weight in zip(taps, weights):
            out[x - 1] += weight / total * source[symmetric_index(j, n)]
    return np.moveaxis(out, 0, axis)


def matlab_imwrite_imresize(photo: np.ndarray, size) -> np.ndarray:
    """uint8 photo -> uint8 as `imwrite(imresize(im2double(photo), size))` in MATLAB."""
    image = photo.astype(np.float64) / 255.0  # im2double
    scales = [size[0] / photo.shape[0], size[1] / photo.shape[1]]
    for axis in sorted((0, 1), key=lambda a: scales[a]):  # stable: rows first on a tie
        image = matlab_resize_axis(image, size[axis], axis)
    return np.floor(np.clip(image, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)  # imwrite of a double


def textured_photo(rng, shape) -> np.ndarray:
    """Noise over smooth gradients and hard edges: overshoots and clipping at the borders too."""
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w]
    smooth = 128 + 90 * np.sin(yy / 3.0)[..., None] * np.cos(xx[..., None] / 5.0 + np.arange(3))
    edges = np.where((xx // 7 + yy // 5) % 2 == 0, 255.0, 0.0)[..., None]
    photo = 0.5 * smooth + 0.4 * edges + rng.normal(0, 25, (h, w, 3))
    photo[0, :] = 255
    photo[:, -1] = 0
    return np.clip(np.round(photo), 0, 255).astype(np.uint8)


def pipeline_resize(photo: np.ndarray, size, native: bool) -> np.ndarray:
    """The tf.data photo resize: constant matrices (`native`) or per-file ones."""
    if native:
        from crn_tf.data.decode import resize_matlab_bicubic
        return resize_matlab_bicubic(tf.constant(photo), size, photo.shape[:2]).numpy()
    return tf.function(lambda image: resize_photo(image, size, "matlab-bicubic"),
                       input_signature=[tf.TensorSpec([None, None, 3], tf.uint8)])(tf.constant(photo)).numpy()


CASES = {
    "integer 4x down": ((64, 96), (16, 24)),
    "non-integer 37x53 -> 16x23": ((37, 53), (16, 23)),
    "enlarging 16x23 -> 37x53": ((16, 23), (37, 53)),
    "columns first, mixed 20x40 -> 8x50": ((20, 40), (8, 50)),
}


@pytest.mark.parametrize("case", CASES)
def test_numpy_and_pipeline_match_matlab_within_one_level(case, rng):
    in_size, out_size = CASES[case]
    photo = textured_photo(rng, in_size)
    expected = matlab_imwrite_imresize(photo, out_size).astype(int)
    ours = imresize_uint8(photo, out_size).astype(int)
    assert ours.shape == out_size + (3,)
    assert np.abs(ours - expected).max() <= 1, case  # borders included
    assert (ours != expected).mean() < 0.01
    for native in (True, False):
        piped = pipeline_resize(photo, out_size, native)
        assert piped.dtype == np.float32 and np.array_equal(piped, np.round(piped))  # whole levels, as imwrite
        assert np.abs(piped - expected).max() <= 1, (case, native)
        assert (piped != expected).mean() < 0.01


def test_pil_bicubic_agrees_in_the_interior(rng):
    """PIL's BICUBIC is Keys' a = -0.5 with the kernel widened when shrinking and the same sample
    positions; it clips the kernel at the borders (no mirroring) and rounds to 8 bits between its
    two passes, so only the interior, loosely."""
    photo = np.clip(rng.normal(128, 40, (48, 16, 3)).cumsum(0) / 8 + 64, 0, 255).astype(np.uint8)
    photo = np.asarray(Image.fromarray(photo).resize((80, 48), Image.Resampling.BILINEAR))  # smooth 48x80
    ours = imresize_uint8(photo, (12, 20)).astype(int)
    pil = np.asarray(Image.fromarray(photo).resize((20, 12), Image.Resampling.BICUBIC)).astype(int)
    interior = (slice(2, -2), slice(2, -2))
    assert np.abs(ours[interior] - pil[interior]).max() <= 2
    assert np.abs(ours[interior] - pil[interior]).mean() < 0.5


def test_same_size_is_a_copy_and_float_result_is_unrounded(rng):
    photo = textured_photo(rng, (9, 14))
    np.testing.assert_array_equal(imresize_uint8(photo, (9, 14)), photo)
    np.testing.assert_array_equal(pipeline_resize(photo, (9, 14), native=False), photo)
    smooth = imresize(photo, (4, 7))
    assert smooth.dtype == np.float64 and not np.array_equal(smooth, np.round(smooth))


def test_unknown_method_is_one_clear_error():
    assert PHOTO_RESIZE_METHODS == ("matlab-bicubic", "area")
    with pytest.raises(ValueError, match="photo resize must be one of matlab-bicubic, area; got 'lanczos'"):
        check_photo_resize("lanczos")


def write_paired(root, photos):
    os.makedirs(root / "images")
    os.makedirs(root / "labels")
    for i, photo in enumerate(photos):
        classes = (np.arange(photo.shape[0] * photo.shape[1]).reshape(photo.shape[:2]) // 7 % 19).astype(np.uint8)
        Image.fromarray(classes_to_colors(classes, CITYSCAPES)).save(root / "labels" / f"p{i}.png")
        Image.fromarray(photo).save(root / "images" / f"p{i}.png")


def test_make_dataset_default_is_matlab_and_area_is_kept(tmp_path, rng):
    photos = [textured_photo(rng, (40, 60)) for _ in range(2)]
    write_paired(tmp_path, photos)
    default = np.concatenate([b[0].numpy() for b in make_dataset(tmp_path, size=(16, 24), batch_size=2)])
    for image, photo in zip(default, photos):
        assert np.abs(image - matlab_imwrite_imresize(photo, (16, 24))).max() <= 1
    area = np.concatenate([b[0].numpy() for b in make_dataset(tmp_path, size=(20, 30), batch_size=2,
                                                             photo_resize="area")])
    for image, photo in zip(area, photos):  # 2x2 block means, unrounded: today's behaviour
        np.testing.assert_allclose(image, photo.reshape(20, 2, 30, 2, 3).mean(axis=(1, 3)), atol=1e-3)
    example = find_examples(tmp_path)[0]
    assert read_image(example.image_path).shape == (40, 60, 3)


def test_photos_resized_outside_the_pipeline(tmp_path, rng):
    """resize_photo_array (demo's reference photos) and evaluate's --real-resize matlab-bicubic."""
    from crn_tf.data.resize import resize_photo_array
    from crn_tf.data.sources import Example
    from crn_tf.evaluate.synthesize import REAL_RESIZE, prepare_real

    photo = textured_photo(rng, (37, 53))
    np.testing.assert_array_equal(resize_photo_array(photo, (16, 23)), imresize_uint8(photo, (16, 23)))
    even = textured_photo(rng, (16, 24))
    block_means = even.reshape(8, 2, 12, 2, 3).mean(axis=(1, 3))
    assert np.abs(resize_photo_array(even, (8, 12), "area") - block_means).max() <= 1  # PIL rounds per pass
    Image.fromarray(photo).save(tmp_path / "p.png")
    examples = [Example("p", str(tmp_path / "p.png"), str(tmp_path / "p.png"), "colors")]
    assert "matlab-bicubic" in REAL_RESIZE
    written = prepare_real(examples, tmp_path / "matlab", (16, 23), "matlab-bicubic", progress=False)
    np.testing.assert_array_equal(read_image(written[0]), imresize_uint8(photo, (16, 23)))
    written = prepare_real(examples, tmp_path / "pil", (16, 23), progress=False)  # FID's default: SPADE's PIL bicubic
    np.testing.assert_array_equal(read_image(written[0]),
                                  np.asarray(Image.fromarray(photo).resize((23, 16), Image.Resampling.BICUBIC)))


def compare_with_matlab(photo_path: str, size=(256, 512)) -> dict:
    """Max and mean |level| of the pipeline's photo (rounded as `prepare` writes it) against the reference
    above, for each --photo-resize: the figures of docs/data.md."""
    from crn_tf.core.images import to_uint8
    from crn_tf.data.sources import Example

    reference = matlab_imwrite_imresize(read_image(photo_path), size).astype(int)
    example = Example("photo", photo_path, photo_path, "colors")  # the photo stands in for its label (not compared)
    figures = {}
    for method in PHOTO_RESIZE_METHODS:
        image = next(iter(make_dataset([example], size=size, photo_resize=method, scan=False, unknown="void")))[0]
        difference = np.abs(to_uint8(image.numpy()[0]).astype(int) - reference)
        figures[method] = (int(difference.max()), float(difference.mean()))
    return figures


if __name__ == "__main__":
    # python tests/test_data_resize.py PHOTO [HxW]
    import sys

    from crn_tf.core.sizes import parse_size

    target = parse_size(sys.argv[2]) if len(sys.argv) > 2 else (256, 512)
    for name, (worst, mean) in compare_with_matlab(sys.argv[1], target).items():
        print(f"{name:>15}: max {worst} levels, mean {mean:.5f} levels from MATLAB's imresize + imwrite")
