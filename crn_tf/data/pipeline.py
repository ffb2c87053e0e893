"""tf.data pipelines: (photo, one-hot layout) batches for training, layouts for inference.

Decoding, the label lookup and resizing all run as TensorFlow ops inside a parallel
`map` (no Python per pixel or per example), so reading raw 1024x2048 PNGs is limited by
PNG decoding. Labels become class indices (uint8, 255 = void) per example; the one-hot
layout (classes + a last void channel) is made per batch.

Resizing: photos as the original's training photos were made, with MATLAB's bicubic
`imresize` (antialiased when shrinking, rounded to whole levels as `imwrite` did;
`crn_tf.data.resize`), applied as two precomputed weight matrices per (input size, output
size); `photo_resize="area"` area-averages instead (each output pixel the mean of the input
pixels it covers). Labels are resized with nearest neighbour (on the label values, which
equals nearest on the class indices), BEFORE the one-hot. Interpolating labels (or their colours, or the one-hot) would invent
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

import os
import warnings
from typing import Sequence

import tensorflow as tf

from crn_tf.data.decode import classes_to_layout, example_tensors, make_loader
from crn_tf.data.readers import DataError, probe
from crn_tf.data.resize import DEFAULT_PHOTO_RESIZE
from crn_tf.data.scan import scan_dataset
from crn_tf.data.sources import Example, Source, find_examples, summarize
from crn_tf.labels import CITYSCAPES, LabelSet, resolve_label_set

AUTOTUNE = tf.data.AUTOTUNE


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
    report.examples = report.usable_examples(skip_bad)
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


def example_dataset(
    examples: Sequence[Example],
    size: tuple[int, int] | None,
    label_set: LabelSet | str | None = CITYSCAPES,
    with_images: bool = True,
    unknown: str = "error",
    deterministic: bool | None = None,
    native_sizes: set | None = None,
    photo_resize: str = DEFAULT_PHOTO_RESIZE,
) -> tf.data.Dataset:
    """Unbatched decoded examples: (image float32 [H, W, 3], classes uint8 [H, W], index) or,
    without images, (classes, index). The shared core of `make_dataset`, the layout
    dataset and `prepare`. No scan: pass examples that were checked already, and
    `native_sizes`, the set of their (h, w) if known (one size allows cheaper resizing).
    `photo_resize`: "matlab-bicubic" (the original's) or "area"."""
    examples = list(examples)
    load = make_loader(examples, _size(size), resolve_label_set(label_set), unknown, with_images, native_sizes,
                       photo_resize)
    dataset = tf.data.Dataset.from_tensor_slices(example_tensors(examples))
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
    photo_resize: str = DEFAULT_PHOTO_RESIZE,
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
        photo_resize: "matlab-bicubic" (default: MATLAB's bicubic `imresize`, antialiased when
            shrinking, rounded to whole levels, as the original's training photos) or "area"
            (area averaging when shrinking, bilinear when enlarging, not rounded).

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

    dataset = tf.data.Dataset.from_tensor_slices(example_tensors(examples))
    if shuffle and not cache:
        dataset = dataset.shuffle(buffer, seed=seed, reshuffle_each_iteration=True)
    load = make_loader(examples, size, label_set, unknown, True, _native_sizes(sizes, examples), photo_resize)
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
