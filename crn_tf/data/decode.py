"""Per-example TensorFlow ops of the input pipeline: decode, look up, check and resize.

Everything here is graph code run inside a parallel tf.data `map`: no Python runs per
pixel or per example. A label is decoded, resized by nearest neighbour on its raw values
(ids or colours; this equals nearest on class indices, since the lookup is per pixel, and
the lookup then touches 16x fewer pixels at 1024x2048 -> 256x512), mapped to class
indices and checked; a photo is decoded, checked against its label's size and resized
(MATLAB's bicubic `imresize` by default, as the original's training photos; area averaging as
an option). Failures name the file (tf.debugging.Assert messages).
"""
from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf

from crn_tf.data.resize import (
    AREA,
    DEFAULT_PHOTO_RESIZE,
    MATLAB_BICUBIC,
    axis_order,
    check_photo_resize,
    resize_matrix,
)
from crn_tf.data.sources import Example
from crn_tf.labels import RGB_KEY_WEIGHTS, VOID, LabelSet

_FORMAT_INDEX = {"ids": 0, "trainids": 1, "colors": 2}
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_END = b"IEND\xaeB`\x82"


# --- lookup tables ------------------------------------------------------------------------
class _Tables:
    """Constant tensors mapping label values to class indices (-1 = outside the label set),
    built from the label set's `value_table`s: the same mapping as the NumPy readers."""

    def __init__(self, label_set: LabelSet):
        self.num_classes = label_set.num_classes
        self.name = label_set.name
        self.ids = tf.constant(label_set.value_table("ids").dense().astype(np.int32))
        self.trainids = tf.constant(label_set.value_table("trainids").dense().astype(np.int32))
        colors = label_set.value_table("colors")
        # One searchsorted and one gather: with edges k0, k0+1, k1, k1+1, ... a value v has
        # an odd count p of edges <= v exactly when v equals key (p - 1) / 2.
        keys = colors.keys.astype(np.int64)
        self.color_edges = tf.constant(np.stack([keys, keys + 1], 1).reshape(-1).astype(np.int32))
        table = np.full(2 * len(keys) + 1, colors.other, dtype=np.int32)
        table[1::2] = colors.classes
        self.color_table = tf.constant(table)


def pack_rgb_tensor(values: tf.Tensor) -> tf.Tensor:
    """uint8 colours [..., 3] -> int32 keys: `crn_tf.labels.pack_rgb` in TensorFlow (the same weights)."""
    channels = tf.cast(values, tf.int32)
    red, green, blue = RGB_KEY_WEIGHTS
    return channels[..., 0] * red + channels[..., 1] * green + channels[..., 2] * blue


@dataclasses.dataclass(frozen=True)
class _ResizePlan:
    """How to resize, decided once from the sizes the scan found: "none" (already that
    size), "integer" (all files one size, an integer multiple: cheap strided ops), or
    "dynamic" (decided per file, in the graph)."""

    size: tuple[int, int] | None
    mode: str
    factors: tuple[int, int] = (1, 1)
    native_size: tuple[int, int] | None = None  # every file's (h, w), when they share one


def _resize_plan(size: tuple[int, int] | None, native_sizes: set | None) -> _ResizePlan:
    if size is None:
        return _ResizePlan(None, "none")
    if native_sizes and len(native_sizes) == 1:
        (height, width), = native_sizes
        if (height, width) == tuple(size):
            return _ResizePlan(size, "none")
        if height % size[0] == 0 and width % size[1] == 0:
            return _ResizePlan(size, "integer", (height // size[0], width // size[1]), (height, width))
        return _ResizePlan(size, "dynamic", native_size=(height, width))
    return _ResizePlan(size, "dynamic")


# --- per-example ops ----------------------------------------------------------------------
def _assert_complete_png(raw: tf.Tensor, path: tf.Tensor) -> tf.Tensor:
    """Fails with the file name when a PNG lacks its final IEND chunk (a truncated file)."""
    length = tf.strings.length(raw)
    is_png = tf.strings.substr(raw, 0, 8) == _PNG_SIGNATURE
    complete = tf.logical_or(tf.logical_not(is_png),
                             tf.strings.substr(raw, tf.maximum(length - 8, 0), 8) == _PNG_END)
    check = tf.debugging.Assert(complete, [tf.strings.join([path, ": truncated PNG (no IEND chunk at the end)"])])
    with tf.control_dependencies([check]):
        return tf.identity(raw)


def resize_nearest(values: tf.Tensor, size: tuple[int, int] | None) -> tf.Tensor:
    """Label values or class indices [h, w, c] -> [H, W, c] by nearest neighbour (no mixed
    classes); source pixel floor((i + 0.5) * h / H), TF2's half-pixel convention."""
    if size is None:
        return values
    resized = tf.image.resize(values, size, method="nearest")
    resized.set_shape([size[0], size[1], values.shape[-1]])
    return resized


def _resize_values(values: tf.Tensor, plan: _ResizePlan) -> tf.Tensor:
    if plan.mode == "none":
        return values
    if plan.mode == "integer":  # floor((i + 0.5) * f) = i * f + f // 2: a strided slice
        fh, fw = plan.factors
        values = values[fh // 2 :: fh, fw // 2 :: fw]
        values.set_shape([plan.size[0], plan.size[1], values.shape[-1]])
        return values
    return resize_nearest(values, plan.size)


def _lookup(values: tf.Tensor, label_format: str, tables: _Tables) -> tf.Tensor:
    """Label values uint8 [h, w, c] -> int32 class indices [h, w], -1 outside the label set."""
    if label_format == "colors":
        packed = pack_rgb_tensor(values)
        position = tf.searchsorted(tables.color_edges[None], tf.reshape(packed, [1, -1]), side="right")
        return tf.reshape(tf.gather(tables.color_table, position[0]), tf.shape(packed))
    return tf.gather(tables.ids if label_format == "ids" else tables.trainids, tf.cast(values[..., 0], tf.int32))


def _validated(classes: tf.Tensor, path: tf.Tensor, tables: _Tables, unknown: str) -> tf.Tensor:
    """int32 classes with -1 -> uint8; unknown values fail (naming the file) or become void."""
    if unknown == "void":
        classes = tf.where(classes < 0, VOID, classes)
    else:
        message = tf.strings.join([path, f": ids or colours outside the {tables.name} label set "
                                         "(python -m crn_tf.data.check lists them)"])
        check = tf.debugging.Assert(tf.reduce_all(classes >= 0), [message])
        with tf.control_dependencies([check]):
            classes = tf.identity(classes)
    return tf.cast(classes, tf.uint8)


def _label_classes(path: tf.Tensor, label_format: str, plan: _ResizePlan, tables: _Tables, unknown: str):
    """Label PNG -> (class indices uint8 [H, W], the file's own (h, w)).

    The label values are resized (nearest) before the lookup: nearest commutes with the
    per-pixel lookup, and the lookup then touches 16x fewer pixels at 1024x2048 -> 256x512.
    So only the pixels that are kept are checked against the label set (the full scan
    checks them all).
    """
    raw = _assert_complete_png(tf.io.read_file(path), path)
    values = tf.io.decode_png(raw, channels=3 if label_format == "colors" else 1)
    own_size = tf.shape(values)[:2]
    classes = _validated(_lookup(_resize_values(values, plan), label_format, tables), path, tables, unknown)
    return classes, own_size


def _label_any_format(path, format_index, formats: list[str], plan: _ResizePlan, tables: _Tables, unknown: str):
    if len(formats) == 1:
        return _label_classes(path, formats[0], plan, tables, unknown)
    return tf.switch_case(format_index, [lambda f=f: _label_classes(path, f, plan, tables, unknown)
                                         for f in _FORMAT_INDEX])


def decode_photo(path: tf.Tensor) -> tf.Tensor:
    """Photo file (PNG or JPEG) -> uint8 [h, w, 3]; grey is repeated, alpha dropped."""
    raw = _assert_complete_png(tf.io.read_file(path), path)
    return tf.io.decode_image(raw, channels=3, dtype=tf.uint8, expand_animations=False)


def _resize_matrix(in_length, out_length: int) -> tf.Tensor:
    """`crn_tf.data.resize.resize_matrix` as float32 [out, in]: a constant for a known length,
    else computed (and cached) in NumPy per file."""
    if isinstance(in_length, int):
        return tf.constant(resize_matrix(in_length, out_length), tf.float32)
    matrix = tf.numpy_function(lambda n: resize_matrix(int(n), out_length).astype(np.float32), [in_length],
                               tf.float32, stateful=False)
    matrix.set_shape([out_length, None])
    return matrix


def resize_matlab_bicubic(image: tf.Tensor, size: tuple[int, int],
                          native_size: tuple[int, int] | None = None) -> tf.Tensor:
    """uint8/float [h, w, 3] in 0..255 -> float32 [H, W, 3]: MATLAB's bicubic `imresize`
    (`crn_tf.data.resize`) as two matmuls, the smaller-scale axis first, then clipped and
    rounded to whole levels as the original's `imwrite` did. `native_size` (h, w), when every
    file has it, makes the weight matrices constants."""
    image = tf.cast(image, tf.float32)
    channels_first = tf.transpose(image, [2, 0, 1])  # (3, h, w)
    if native_size is not None:
        height, width = native_size
    else:
        shape = tf.shape(image)
        height, width = shape[0], shape[1]
    rows = _resize_matrix(height, size[0])[None]  # (1, H, h)
    columns = _resize_matrix(width, size[1])[None]  # (1, W, w)

    def rows_first():
        return tf.matmul(tf.matmul(rows, channels_first), columns, transpose_b=True)

    def columns_first():
        return tf.matmul(rows, tf.matmul(channels_first, columns, transpose_b=True))

    if native_size is not None:
        resized = rows_first() if axis_order(native_size, size) == (0, 1) else columns_first()
    else:  # MATLAB's order: the smaller scale first, rows on a tie
        columns_smaller = size[1] * tf.cast(height, tf.float64) < size[0] * tf.cast(width, tf.float64)
        resized = tf.cond(columns_smaller, columns_first, rows_first)
    resized = tf.floor(tf.clip_by_value(tf.transpose(resized, [1, 2, 0]), 0.0, 255.0) + 0.5)
    resized.set_shape([size[0], size[1], 3])
    return resized


def resize_photo(image: tf.Tensor, size: tuple[int, int] | None, method: str = DEFAULT_PHOTO_RESIZE) -> tf.Tensor:
    """uint8/float [h, w, 3] -> float32 [H, W, 3] in 0..255; a plain copy at the same size.

    "matlab-bicubic" (default): MATLAB's bicubic `imresize`, antialiased when shrinking,
    rounded to whole levels (the original's training photos). "area": area averaging when
    shrinking (each output pixel is the mean of the pixels it covers), bilinear when enlarging.
    """
    check_photo_resize(method)
    if size is None:
        return tf.cast(image, tf.float32)
    if method == MATLAB_BICUBIC:
        shape = tf.shape(image)
        same = tf.logical_and(tf.equal(shape[0], size[0]), tf.equal(shape[1], size[1]))
        resized = tf.cond(same, lambda: tf.cast(image, tf.float32), lambda: resize_matlab_bicubic(image, size))
        resized.set_shape([size[0], size[1], 3])
        return resized
    image = tf.cast(image, tf.float32)
    shape = tf.shape(image)
    same = tf.logical_and(tf.equal(shape[0], size[0]), tf.equal(shape[1], size[1]))
    shrink = tf.logical_and(shape[0] >= size[0], shape[1] >= size[1])
    resized = tf.case([(same, lambda: image),
                       (shrink, lambda: tf.image.resize(image, size, method="area"))],
                      default=lambda: tf.image.resize(image, size, method="bilinear", antialias=True))
    resized.set_shape([size[0], size[1], 3])
    return resized


def _resize_photo_planned(image: tf.Tensor, plan: _ResizePlan, method: str) -> tf.Tensor:
    if plan.mode == "none":
        image = tf.cast(image, tf.float32)
        if plan.size is not None:
            image.set_shape([plan.size[0], plan.size[1], 3])
        return image
    if method == MATLAB_BICUBIC and plan.native_size is not None:
        return resize_matlab_bicubic(image, plan.size, plan.native_size)
    if method == AREA and plan.mode == "integer":  # area averaging of f x f blocks = an average pool
        pooled = tf.nn.avg_pool2d(tf.cast(image, tf.float32)[None], plan.factors, plan.factors, "VALID")[0]
        pooled.set_shape([plan.size[0], plan.size[1], 3])
        return pooled
    return resize_photo(image, plan.size, method)


def classes_to_layout(classes: tf.Tensor, num_classes: int) -> tf.Tensor:
    """Class indices uint8 [..., H, W] (255 = void) -> float32 one-hot [..., H, W, num_classes + 1]."""
    index = tf.cast(classes, tf.int32)
    index = tf.where(index >= num_classes, num_classes, index)
    return tf.one_hot(index, num_classes + 1, dtype=tf.float32)


# --- datasets -----------------------------------------------------------------------------
def example_tensors(examples: list[Example]) -> tuple[tf.Tensor, ...]:
    return (
        tf.constant([e.label_path for e in examples]),
        tf.constant([e.image_path or "" for e in examples]),
        tf.constant([_FORMAT_INDEX[e.label_format] for e in examples], dtype=tf.int32),
        tf.range(len(examples), dtype=tf.int64),
    )


def make_loader(examples: list[Example], size, label_set: LabelSet, unknown: str, with_images: bool,
                 native_sizes: set | None = None, photo_resize: str = DEFAULT_PHOTO_RESIZE):
    """The per-example map function: file names -> decoded, checked, resized tensors."""
    check_photo_resize(photo_resize)
    tables = _Tables(label_set)
    formats = sorted({e.label_format for e in examples})
    plan = _resize_plan(size, native_sizes)

    def load(label_path, image_path, format_index, index):
        classes, label_hw = _label_any_format(label_path, format_index, formats, plan, tables, unknown)
        if size is not None:
            classes.set_shape(size)
        if not with_images:
            return classes, index
        image = decode_photo(image_path)
        image_hw = tf.shape(image)[:2]
        message = tf.strings.join([
            image_path, ": photo is ", tf.strings.reduce_join(tf.strings.as_string(image_hw), separator="x"),
            " but its label ", label_path, " is ", tf.strings.reduce_join(tf.strings.as_string(label_hw), separator="x")])
        with tf.control_dependencies([tf.debugging.Assert(tf.reduce_all(label_hw == image_hw), [message])]):
            image = tf.identity(image)
        return _resize_photo_planned(image, plan, photo_resize), classes, index

    return load
