"""tf.data pipelines: (photo, one-hot layout) batches for training, layouts for inference.

The pipelines read what the scan found (`ScannedExamples`: the examples, each label's size,
the label set), so a run discovers its files and probes their headers once: train.py's
`EpochData` scans up front and hands each epoch's order down; a folder path is scanned here.

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

import dataclasses
import os
import warnings
from typing import Iterator, Sequence

import numpy as np
import tensorflow as tf

from crn_tf.data.decode import classes_to_layout, example_tensors, make_loader
from crn_tf.data.readers import DataError, probe, read_label
from crn_tf.data.resize import DEFAULT_PHOTO_RESIZE
from crn_tf.data.scan import ScannedExamples, scan_dataset
from crn_tf.data.sources import Example, Source, find_examples, summarize
from crn_tf.labels import LabelSet, resolve_label_set

AUTOTUNE = tf.data.AUTOTUNE


def _own_label_set(layouts: ScannedExamples, label_set: LabelSet | str | None) -> LabelSet:
    """The label set of scanned examples; one passed beside them must be the same."""
    if label_set is not None and resolve_label_set(label_set) != layouts.label_set:
        raise ValueError(f"label set {resolve_label_set(label_set).name!r} differs from the one the examples were "
                         f"scanned with ({layouts.label_set.name!r})")
    return layouts.label_set


def _resolve(
    source: Source | Sequence[Example] | ScannedExamples,
    split: str,
    label_set: LabelSet | str | None,
    images: str,
    images_dir,
    skip_bad: bool,
    scan: bool | str,
) -> ScannedExamples:
    """The examples to read with their label sizes: scanned examples as they are; otherwise
    after the up-front scan (errors raise or are skipped), or with `scan=False` as they are
    found, with the sizes their headers give."""
    if scan not in (True, False, "headers", "full"):
        raise ValueError(f"scan must be True, False, 'headers' or 'full', got {scan!r}")
    if isinstance(source, ScannedExamples):
        _own_label_set(source, label_set)
        return source
    label_set = resolve_label_set(label_set)
    if not scan:
        if isinstance(source, (list, tuple)) and source and all(isinstance(e, Example) for e in source):
            examples = list(source)
        else:
            examples = find_examples(source, split, label_set, images, images_dir, skip_bad)
        return ScannedExamples.from_headers(examples, label_set)
    report = scan_dataset(source, split=split, label_set=label_set, images=images, images_dir=images_dir,
                          decode=scan == "full")
    layouts = report.usable(skip_bad)
    if report.warnings:
        warnings.warn(summarize(report.warnings, report.source).replace("problem", "warning"), stacklevel=3)
    return layouts


def _common_size(size, batch_size: int, layouts: ScannedExamples) -> tuple[int, int] | None:
    """The (H, W) every element will have (static shapes), or None; raises if a batch would mix sizes."""
    if size is not None:
        return size
    distinct = sorted({s for s in layouts.sizes if s is not None})
    if len(distinct) > 1 and batch_size > 1:
        raise DataError(f"examples have different sizes {distinct[:4]}; pass size=(H, W) to batch them")
    return distinct[0] if len(distinct) == 1 and layouts.native_sizes is not None else None


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
    examples: Sequence[Example] | ScannedExamples,
    size: tuple[int, int] | None,
    label_set: LabelSet | str | None = None,
    with_images: bool = True,
    unknown: str = "error",
    deterministic: bool | None = None,
    native_sizes: set | None = None,
    photo_resize: str = DEFAULT_PHOTO_RESIZE,
) -> tf.data.Dataset:
    """Unbatched decoded examples: (image float32 [H, W, 3], classes uint8 [H, W], index) or,
    without images, (classes, index). The shared core of `make_dataset`, the layout
    dataset and `prepare`. No scan: pass `ScannedExamples` (their label set and sizes are
    used), or examples that were checked already with `native_sizes`, the set of their
    (h, w) if known (one size allows cheaper resizing), and `label_set` (default Cityscapes).
    `photo_resize`: "matlab-bicubic" (the original's) or "area"."""
    if isinstance(examples, ScannedExamples):
        label_set, native_sizes = _own_label_set(examples, label_set), examples.native_sizes
        examples = examples.examples
    else:
        label_set = resolve_label_set(label_set)
    examples = list(examples)
    load = make_loader(examples, _size(size), label_set, unknown, with_images, native_sizes, photo_resize)
    dataset = tf.data.Dataset.from_tensor_slices(example_tensors(examples))
    return dataset.map(load, num_parallel_calls=AUTOTUNE, deterministic=deterministic)


def _size(size) -> tuple[int, int] | None:
    if size is None:
        return None
    if len(size) != 2 or int(size[0]) <= 0 or int(size[1]) <= 0:
        raise ValueError(f"size must be (height, width) with positive values, got {size!r}")
    return int(size[0]), int(size[1])


def make_dataset(
    source_or_examples: Source | Sequence[Example] | ScannedExamples,
    size: tuple[int, int] | None = None,
    label_set: LabelSet | str | None = None,
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
            or glob (see `find_examples`), a list of `Example`s, or `ScannedExamples`
            (`scan_dataset(...).usable()`: read as they are, without another scan).
        size: (height, width) to resize to; None keeps each file's size.
        label_set: LabelSet, "cityscapes" or a JSON path. Defaults to the scanned examples'
            label set, else Cityscapes.
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
            front. False skips the scan (a list of already checked Examples). Scanned
            examples are never scanned again.
        shuffle_buffer: shuffle buffer size; default: all examples (a full shuffle).
        photo_resize: "matlab-bicubic" (default: MATLAB's bicubic `imresize`, antialiased when
            shrinking, rounded to whole levels, as the original's training photos) or "area"
            (area averaging when shrinking, bilinear when enlarging, not rounded).

    Raises DataError naming the files when the scan finds problems (unless skip_bad).
    """
    size = _size(size)
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    layouts = _resolve(source_or_examples, split, label_set, "required", images_dir, skip_bad, scan)
    label_set = layouts.label_set
    without_photo = [e for e in layouts.examples if e.image_path is None]
    if without_photo:
        raise DataError(f"{without_photo[0].label_path}: example {without_photo[0].stem!r} has no photo"
                        + (f" (and {len(without_photo) - 1} more)" if len(without_photo) > 1 else ""))
    if input_context is not None:
        batch_size = input_context.get_per_replica_batch_size(batch_size)
        layouts = layouts.take(range(input_context.input_pipeline_id, len(layouts), input_context.num_input_pipelines))
        if not layouts:
            raise DataError(f"input pipeline {input_context.input_pipeline_id} of {input_context.num_input_pipelines} "
                            "has no examples: fewer examples than input pipelines")
    examples = list(layouts.examples)
    static_hw = _common_size(size, batch_size, layouts)
    buffer = shuffle_buffer or len(examples)

    dataset = tf.data.Dataset.from_tensor_slices(example_tensors(examples))
    if shuffle and not cache:
        dataset = dataset.shuffle(buffer, seed=seed, reshuffle_each_iteration=True)
    load = make_loader(examples, size, label_set, unknown, True, layouts.native_sizes, photo_resize)
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
    examples: Source | Sequence[Example] | ScannedExamples,
    size: tuple[int, int] | None = None,
    label_set: LabelSet | str | None = None,
    batch_size: int = 1,
    split: str = "train",
    unknown: str = "error",
    images_dir: str | os.PathLike | None = None,
) -> tf.data.Dataset:
    """Layouts for inference: (layout float32 one-hot [B, H, W, C+1], classes uint8 [B, H, W],
    stem string [B], index int64 [B]).

    `classes` are the class ids (255 = void) the one-hot is made from, for colouring or
    scoring a layout without undoing its one-hot. No photos are needed. `index` points into
    the examples (`find_examples(..., images="none")` gives the same order; scanned examples
    are read as they are); `label_size(example)` gives a label's own size (for writing
    results at the input's size). `size=None` keeps each label's size (then batches need
    equal sizes). The order is always that of the examples. `layout_batches` adds the
    examples of each batch and names the file when one fails to decode.
    """
    size = _size(size)
    layouts = _resolve(examples, split, label_set, "none", images_dir, False, True)
    _common_size(size, batch_size, layouts)
    stems = tf.constant([e.stem for e in layouts.examples])
    num_classes = layouts.label_set.num_classes
    dataset = example_dataset(layouts, size, with_images=False, unknown=unknown, deterministic=True)
    dataset = dataset.map(lambda classes, index: (classes, tf.gather(stems, index), index))
    dataset = dataset.batch(batch_size)
    dataset = dataset.map(lambda classes, stem, index: (classes_to_layout(classes, num_classes), classes, stem, index))
    return dataset.prefetch(AUTOTUNE)


@dataclasses.dataclass(frozen=True)
class LayoutBatch:
    """One batch of `layout_batches`: the model's input, the class ids it is made from, and whose they are."""

    layout: tf.Tensor  # float32 one-hot [B, H, W, C+1]
    classes: np.ndarray  # uint8 class ids [B, H, W], 255 = void
    examples: tuple[Example, ...]
    indices: tuple[int, ...]  # the examples' positions in the scanned examples


def layout_batches(layouts: ScannedExamples, size: tuple[int, int] | None, batch_size: int = 1,
                   unknown: str = "error") -> Iterator[LayoutBatch]:
    """The batches of `make_layout_dataset(layouts, ...)` with their examples, in order.

    A batch that fails to decode (ids or colours outside the label set, corrupt or truncated
    data) raises a DataError naming the file: the batch's own examples are re-read with the
    NumPy reader, whose message says what is wrong (the unknown values and their pixel counts).
    The end of the dataset is never asked for: after a large graph had run, that last
    `next()` was seen to stall for about 4 s.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    iterator = iter(make_layout_dataset(layouts, size, batch_size=batch_size, unknown=unknown))
    for start in range(0, len(layouts), batch_size):
        try:
            layout, classes, _, index = next(iterator)
        except tf.errors.InvalidArgumentError as error:
            raise _decoding_error(layouts.examples[start : start + batch_size], layouts.label_set, unknown,
                                  error) from None
        indices = tuple(int(i) for i in index.numpy())
        yield LayoutBatch(layout, classes.numpy(), tuple(layouts.examples[i] for i in indices), indices)


def _decoding_error(examples: Sequence[Example], label_set: LabelSet, unknown: str,
                    error: tf.errors.InvalidArgumentError) -> DataError:
    """The DataError of a batch that failed to decode, from its examples: the first whose label the
    NumPy reader refuses (its message names the file and the problem), else all of them."""
    for example in examples:
        try:
            read_label(example.label_path, label_set, example.label_format, unknown=unknown)
        except DataError as found:
            return found
    cause = error.message.strip().splitlines()[0] if error.message.strip() else type(error).__name__
    return DataError(f"{', '.join(e.label_path for e in examples)}: cannot be decoded ({cause})")


def label_size(example: Example | str | os.PathLike) -> tuple[int, int]:
    """A label file's own (height, width), read from its header (e.g. demo's --keep-size)."""
    path = example.label_path if isinstance(example, Example) else os.fspath(example)
    return probe(path).size


def label_sizes(examples: Sequence[Example]) -> list[tuple[int, int]]:
    """`label_size` of each example, in order."""
    return [label_size(e) for e in examples]
