"""tf.data pipelines: (photo, one-hot layout) batches for training, layouts for inference.

Decoding, the label lookup and resizing all run as TensorFlow ops inside a parallel
`map` (no Python per pixel or per example), so reading raw 1024x2048 PNGs is limited by
PNG decoding. Labels become class indices (uint8, 255 = void) per example; the one-hot
layout (classes + a last void channel) is made per batch.

Resizing: photos are area-averaged (anti-aliased: each output pixel is the mean of the
input pixels it covers); labels are resized with nearest neighbour on the class indices,
BEFORE the one-hot. Interpolating labels (or their colours, or the one-hot) would invent
mixed classes and colours that belong to no class at object borders; nearest keeps every
pixel a real class, as the original's resized label folders were.

Distribution (tf.distribute):
- one machine, several devices (MirroredStrategy): build with the GLOBAL batch size and
  call `strategy.experimental_distribute_dataset(dataset)`; it splits each batch. The
  dataset's auto-shard policy is set to DATA so this also works on several workers, but
  then every worker decodes every file.
- several workers: use `strategy.distribute_datasets_from_function(lambda ctx:
  make_dataset(..., batch_size=GLOBAL, input_context=ctx))`: each input pipeline takes
  every n-th example before decoding and batches `ctx.get_per_replica_batch_size(GLOBAL)`.
"""
from __future__ import annotations

import dataclasses
import os
import warnings
from typing import Sequence

import numpy as np
import tensorflow as tf

from crn_tf.data.readers import DataError, label_format_for, probe
from crn_tf.data.scan import scan_dataset
from crn_tf.data.sources import Example, Source, find_examples, summarize, warn_skipped
from crn_tf.labels import CITYSCAPES, VOID, LabelSet, resolve_label_set

AUTOTUNE = tf.data.AUTOTUNE
_FORMAT_INDEX = {"ids": 0, "trainids": 1, "colors": 2}
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_END = b"IEND\xaeB`\x82"


# --- lookup tables ------------------------------------------------------------------------
def _pack_colors(colors: np.ndarray) -> np.ndarray:
    """RGB colours [n, 3] -> int32 keys, the same bits as `tf.bitcast` of (r, g, b, 0) bytes."""
    colors = np.asarray(colors, dtype=np.uint8).reshape(-1, 3)
    rgba = np.concatenate([colors, np.zeros((len(colors), 1), np.uint8)], axis=1)
    return np.ascontiguousarray(rgba).view(np.int32)[:, 0]


class _Tables:
    """Constant tensors mapping label values to class indices (-1 = outside the label set)."""

    def __init__(self, label_set: LabelSet):
        self.num_classes = label_set.num_classes
        self.name = label_set.name
        self.ids = tf.constant(label_set.id_table().astype(np.int32))
        trainids = np.full(256, -1, dtype=np.int32)
        trainids[: label_set.num_classes] = np.arange(label_set.num_classes)
        trainids[VOID] = VOID
        self.trainids = tf.constant(trainids)
        keys = list(_pack_colors(label_set.colors))
        values = list(range(label_set.num_classes))
        if label_set.void_colors:
            keys += list(_pack_colors(np.array(label_set.void_colors)))
            values += [VOID] * len(label_set.void_colors)
        # One searchsorted and one gather: with edges k0, k0+1, k1, k1+1, ... a value v has
        # an odd count p of edges <= v exactly when v equals key (p - 1) / 2.
        order = np.argsort(keys)
        sorted_keys = np.array(keys, dtype=np.int64)[order]
        self.color_edges = tf.constant(np.stack([sorted_keys, sorted_keys + 1], 1).reshape(-1).astype(np.int32))
        default = VOID if label_set.void_colors is None else -1
        table = np.full(2 * len(keys) + 1, default, dtype=np.int32)
        table[1::2] = np.array(values, dtype=np.int32)[order]
        self.color_table = tf.constant(table)


@dataclasses.dataclass(frozen=True)
class _ResizePlan:
    """How to resize, decided once from the sizes the scan found: "none" (already that
    size), "integer" (all files one size, an integer multiple: cheap strided ops), or
    "dynamic" (decided per file, in the graph)."""

    size: tuple[int, int] | None
    mode: str
    factors: tuple[int, int] = (1, 1)


def _resize_plan(size: tuple[int, int] | None, native_sizes: set | None) -> _ResizePlan:
    if size is None:
        return _ResizePlan(None, "none")
    if native_sizes and len(native_sizes) == 1:
        (height, width), = native_sizes
        if (height, width) == tuple(size):
            return _ResizePlan(size, "none")
        if height % size[0] == 0 and width % size[1] == 0:
            return _ResizePlan(size, "integer", (height // size[0], width // size[1]))
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
        packed = tf.bitcast(tf.pad(values, [[0, 0], [0, 0], [0, 1]]), tf.int32)  # (r, g, b, 0) bytes -> int32
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


def resize_photo(image: tf.Tensor, size: tuple[int, int] | None) -> tf.Tensor:
    """uint8/float [h, w, 3] -> float32 [H, W, 3] in 0..255: area averaging when shrinking
    (anti-aliased: each output pixel is the mean of the pixels it covers), bilinear when
    enlarging, a plain copy at the same size."""
    image = tf.cast(image, tf.float32)
    if size is None:
        return image
    shape = tf.shape(image)
    same = tf.logical_and(tf.equal(shape[0], size[0]), tf.equal(shape[1], size[1]))
    shrink = tf.logical_and(shape[0] >= size[0], shape[1] >= size[1])
    resized = tf.case([(same, lambda: image),
                       (shrink, lambda: tf.image.resize(image, size, method="area"))],
                      default=lambda: tf.image.resize(image, size, method="bilinear", antialias=True))
    resized.set_shape([size[0], size[1], 3])
    return resized


def _resize_photo_planned(image: tf.Tensor, plan: _ResizePlan) -> tf.Tensor:
    if plan.mode == "none":
        image = tf.cast(image, tf.float32)
        if plan.size is not None:
            image.set_shape([plan.size[0], plan.size[1], 3])
        return image
    if plan.mode == "integer":  # area averaging of f x f blocks = an average pool
        pooled = tf.nn.avg_pool2d(tf.cast(image, tf.float32)[None], plan.factors, plan.factors, "VALID")[0]
        pooled.set_shape([plan.size[0], plan.size[1], 3])
        return pooled
    return resize_photo(image, plan.size)


def classes_to_layout(classes: tf.Tensor, num_classes: int) -> tf.Tensor:
    """Class indices uint8 [..., H, W] (255 = void) -> float32 one-hot [..., H, W, num_classes + 1]."""
    index = tf.cast(classes, tf.int32)
    index = tf.where(index >= num_classes, num_classes, index)
    return tf.one_hot(index, num_classes + 1, dtype=tf.float32)


# --- datasets -----------------------------------------------------------------------------
def _resolve(
    source: Source | Sequence[Example],
    split: str,
    label_set: LabelSet,
    images: str,
    images_dir,
    skip_bad: bool,
    scan: bool | str,
) -> tuple[list[Example], dict[str, tuple[int, int]]]:
    """The examples to read, after the up-front scan (errors raise or are skipped)."""
    if scan not in (True, False, "headers", "full"):
        raise ValueError(f"scan must be True, False, 'headers' or 'full', got {scan!r}")
    if not scan:
        if isinstance(source, (list, tuple)) and source and all(isinstance(e, Example) for e in source):
            examples = list(source)
        else:
            examples = find_examples(source, split, label_set, images, images_dir, skip_bad)
        return examples, _header_sizes(examples)
    report = scan_dataset(source, split=split, label_set=label_set, images=images, images_dir=images_dir,
                          decode=scan == "full")
    if report.errors:
        if not skip_bad:
            raise DataError(summarize(report.errors, report.source))
        warn_skipped(report.errors)
    if not report.examples:
        raise DataError(f"{report.source}: no usable examples")
    if report.warnings:
        warnings.warn(summarize(report.warnings, report.source).replace("problem", "warning"), stacklevel=3)
    if images == "none":
        report.examples = [e if e.image_path is None else Example(e.stem, e.label_path, None, e.label_format)
                           for e in report.examples]
    return report.examples, {e.label_path: report.label_sizes[e.stem] for e in report.examples}


def _header_sizes(examples: list[Example]) -> dict[str, tuple[int, int]]:
    """{label path: (h, w)} from the headers (cached per file), skipping unreadable files."""
    sizes = {}
    for e in examples:
        try:
            sizes[e.label_path] = probe(e.label_path).size
        except DataError:
            pass
    return sizes


def _common_size(size, batch_size: int, sizes: dict, examples: list[Example]) -> tuple[int, int] | None:
    """The (H, W) every element will have (static shapes), or None; raises if a batch would mix sizes."""
    if size is not None:
        return size
    distinct = sorted({sizes[e.label_path] for e in examples if e.label_path in sizes})
    if len(distinct) > 1 and batch_size > 1:
        raise DataError(f"examples have different sizes {distinct[:4]}; pass size=(H, W) to batch them")
    return distinct[0] if len(distinct) == 1 and len(sizes) >= len(examples) else None


def _native_sizes(sizes: dict, examples: list[Example]) -> set | None:
    """The set of the examples' (h, w) from the scan, or None if any is unknown."""
    if not all(e.label_path in sizes for e in examples):
        return None
    return {sizes[e.label_path] for e in examples}


def _with_static_size(dataset: tf.data.Dataset, hw: tuple[int, int] | None) -> tf.data.Dataset:
    if hw is None:
        return dataset

    def fix(image, classes):
        image.set_shape([hw[0], hw[1], 3])
        classes.set_shape([hw[0], hw[1]])
        return image, classes

    return dataset.map(fix)


def _options(deterministic: bool | None, sharded: bool) -> tf.data.Options:
    options = tf.data.Options()
    if deterministic is not None:
        options.deterministic = bool(deterministic)
    options.experimental_distribute.auto_shard_policy = (
        tf.data.experimental.AutoShardPolicy.OFF if sharded else tf.data.experimental.AutoShardPolicy.DATA)
    return options


def _example_tensors(examples: list[Example]) -> tuple[tf.Tensor, ...]:
    return (
        tf.constant([e.label_path for e in examples]),
        tf.constant([e.image_path or "" for e in examples]),
        tf.constant([_FORMAT_INDEX[e.label_format] for e in examples], dtype=tf.int32),
        tf.range(len(examples), dtype=tf.int64),
    )


def _make_loader(examples: list[Example], size, label_set: LabelSet, unknown: str, with_images: bool,
                 native_sizes: set | None = None):
    """The per-example map function: file names -> decoded, checked, resized tensors."""
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
        return _resize_photo_planned(image, plan), classes, index

    return load


def example_dataset(
    examples: Sequence[Example],
    size: tuple[int, int] | None,
    label_set: LabelSet | str | None = CITYSCAPES,
    with_images: bool = True,
    unknown: str = "error",
    deterministic: bool | None = None,
    native_sizes: set | None = None,
) -> tf.data.Dataset:
    """Unbatched decoded examples: (image float32 [H, W, 3], classes uint8 [H, W], index) or,
    without images, (classes, index). The shared core of `make_dataset`, the layout
    dataset and `prepare`. No scan: pass examples that were checked already, and
    `native_sizes`, the set of their (h, w) if known (one size allows cheaper resizing)."""
    examples = list(examples)
    load = _make_loader(examples, _size(size), resolve_label_set(label_set), unknown, with_images, native_sizes)
    dataset = tf.data.Dataset.from_tensor_slices(_example_tensors(examples))
    return dataset.map(load, num_parallel_calls=AUTOTUNE, deterministic=deterministic)


def _size(size) -> tuple[int, int] | None:
    if size is None:
        return None
    if len(size) != 2 or int(size[0]) <= 0 or int(size[1]) <= 0:
        raise ValueError(f"size must be (height, width) with positive values, got {size!r}")
    return int(size[0]), int(size[1])


def make_dataset(
    source_or_examples: Source | Sequence[Example],
    size: tuple[int, int] | None = None,
    label_set: LabelSet | str | None = CITYSCAPES,
    split: str = "train",
    batch_size: int = 1,
    shuffle: bool = False,
    seed: int = 0,
    repeat: bool = False,
    cache: bool | str = False,
    deterministic: bool | None = None,
    drop_remainder: bool = False,
    skip_bad: bool = False,
    input_context: tf.distribute.InputContext | None = None,
    images_dir: str | os.PathLike | None = None,
    unknown: str = "error",
    scan: bool | str = True,
    shuffle_buffer: int | None = None,
) -> tf.data.Dataset:
    """Training pairs: (image float32 [B, H, W, 3] in 0..255, layout float32 one-hot [B, H, W, C+1]).

    Args:
        source_or_examples: a Cityscapes root, paired folder, label folder, label file(s)
            or glob (see `find_examples`), or a list of `Example`s.
        size: (height, width) to resize to; None keeps each file's size.
        label_set: LabelSet, "cityscapes" or a JSON path. Defaults to Cityscapes.
        split: "train", "val" or "test".
        batch_size: examples per batch (the GLOBAL batch with `input_context`).
        shuffle: shuffle the examples, anew each epoch, from `seed` (reproducible).
        seed: int. The shuffle seed.
        repeat: repeat forever (epochs follow each other without a gap).
        cache: True caches decoded, resized examples in memory; a string caches to that
            file prefix. Shuffling then happens after the cache.
        deterministic: True keeps the order fixed; False lets parallel decoding deliver
            out of order (faster); None follows tf.data's default (deterministic).
        drop_remainder: drop the last incomplete batch (static batch dimension).
        skip_bad: skip bad examples with a warning instead of raising: those found by the
            up-front scan, and those failing while decoding (corrupt data, unknown values).
        input_context: tf.distribute.InputContext from `distribute_datasets_from_function`:
            this pipeline reads every n-th example and batches the per-replica batch size.
        images_dir: the photo folder for a label folder or label files.
        unknown: "error" (default) fails on ids or colours outside the label set, naming
            the file; "void" reads them as void.
        scan: True (or "headers") runs the fast scan first: missing partners, unreadable
            or truncated files and size mismatches raise a DataError naming them before
            any decoding. "full" also decodes every file (about 20 ms per 1024x2048 pair)
            and so finds corrupt pixel data and ids or colours outside the label set up
            front. False skips the scan (a list of already checked Examples).
        shuffle_buffer: shuffle buffer size; default: all examples (a full shuffle).

    Raises DataError naming the files when the scan finds problems (unless skip_bad).
    """
    label_set = resolve_label_set(label_set)
    size = _size(size)
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    examples, sizes = _resolve(source_or_examples, split, label_set, "required", images_dir, skip_bad, scan)
    if input_context is not None:
        batch_size = input_context.get_per_replica_batch_size(batch_size)
        examples = examples[input_context.input_pipeline_id :: input_context.num_input_pipelines]
        if not examples:
            raise DataError(f"input pipeline {input_context.input_pipeline_id} of {input_context.num_input_pipelines} "
                            "has no examples: fewer examples than input pipelines")
    static_hw = _common_size(size, batch_size, sizes, examples)
    buffer = shuffle_buffer or len(examples)

    dataset = tf.data.Dataset.from_tensor_slices(_example_tensors(examples))
    if shuffle and not cache:
        dataset = dataset.shuffle(buffer, seed=seed, reshuffle_each_iteration=True)
    load = _make_loader(examples, size, label_set, unknown, True, _native_sizes(sizes, examples))
    dataset = dataset.map(lambda *t: load(*t)[:2], num_parallel_calls=AUTOTUNE, deterministic=deterministic)
    dataset = _with_static_size(dataset, static_hw)
    if skip_bad:
        dataset = dataset.ignore_errors(log_warning=True)
    if cache:
        dataset = dataset.cache("" if cache is True else os.fspath(cache))
        if shuffle:
            dataset = dataset.shuffle(buffer, seed=seed, reshuffle_each_iteration=True)
    if repeat:
        dataset = dataset.repeat()
    dataset = dataset.batch(batch_size, drop_remainder=drop_remainder)
    num_classes = label_set.num_classes
    dataset = dataset.map(lambda image, classes: (image, classes_to_layout(classes, num_classes)),
                          num_parallel_calls=AUTOTUNE, deterministic=deterministic)
    dataset = dataset.prefetch(AUTOTUNE)
    return dataset.with_options(_options(deterministic, input_context is not None))


def make_layout_dataset(
    examples: Source | Sequence[Example],
    size: tuple[int, int] | None = None,
    label_set: LabelSet | str | None = CITYSCAPES,
    batch_size: int = 1,
    split: str = "train",
    unknown: str = "error",
    images_dir: str | os.PathLike | None = None,
) -> tf.data.Dataset:
    """Layouts for inference: (layout float32 [B, H, W, C+1], stem string [B], index int64 [B]).

    No photos are needed. `index` points into the example list (`find_examples(...,
    images="none")` gives the same order); `label_size(example)` gives a label's own size
    (for writing results at the input's size). `size=None` keeps each label's size (then
    batches need equal sizes). The order is always that of the examples.
    """
    label_set = resolve_label_set(label_set)
    size = _size(size)
    examples, sizes = _resolve(examples, split, label_set, "none", images_dir, False, True)
    _common_size(size, batch_size, sizes, examples)
    stems = tf.constant([e.stem for e in examples])
    num_classes = label_set.num_classes
    dataset = example_dataset(examples, size, label_set, with_images=False, unknown=unknown, deterministic=True,
                              native_sizes=_native_sizes(sizes, examples))
    dataset = dataset.map(lambda classes, index: (classes, tf.gather(stems, index), index))
    dataset = dataset.batch(batch_size)
    dataset = dataset.map(lambda classes, stem, index: (classes_to_layout(classes, num_classes), stem, index))
    return dataset.prefetch(AUTOTUNE)


def label_size(example: Example | str | os.PathLike) -> tuple[int, int]:
    """A label file's own (height, width), read from its header (e.g. demo's --keep-size)."""
    path = example.label_path if isinstance(example, Example) else os.fspath(example)
    return probe(path).size


def label_sizes(examples: Sequence[Example]) -> list[tuple[int, int]]:
    """`label_size` of each example, in order."""
    return [label_size(e) for e in examples]
