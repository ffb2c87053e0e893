"""Training data with a resumable order: a seeded shuffle per epoch, fixed by (seed, epoch).

The examples are scanned once up front (`crn_tf.data.scan_dataset`: bad files stop the run
before step 0); what the scan found (`ScannedExamples`: examples, label sizes, label set) is
what every epoch's pipeline reads, so nothing is discovered or probed again. Each epoch's
order is a permutation drawn from `numpy.random.default_rng((seed, epoch))`, so a run stopped
at (epoch, position) continues with the very same batches: the epoch's dataset is rebuilt and
its first `position` batches skipped. Under tf.distribute each input pipeline reads every n-th
example of that order (`make_dataset(input_context=...)`).
"""
from __future__ import annotations

from typing import NamedTuple, Sequence

import numpy as np
import tensorflow as tf

from crn_tf.data.decode import classes_to_layout
from crn_tf.data.pipeline import example_dataset, make_dataset
from crn_tf.data.readers import DataError
from crn_tf.data.resize import DEFAULT_PHOTO_RESIZE, check_photo_resize
from crn_tf.data.scan import ScannedExamples, scan_dataset
from crn_tf.data.sources import Example, Source
from crn_tf.labels import LabelSet


class Samples(NamedTuple):
    """Examples shown during a run: photos, the model's one-hot input and the class ids it is made from."""

    images: np.ndarray  # float32 [n, H, W, 3], 0..255
    layouts: np.ndarray  # float32 one-hot [n, H, W, C+1]
    classes: np.ndarray  # uint8 class ids [n, H, W], 255 = void (for colouring: no one-hot is undone)


class EpochData:
    """(image, layout) batches of one data source, epoch by epoch, in a seeded order.

    Args:
        source: a Cityscapes root, label folder, paired folder (anything `find_examples`
            takes) or a list of `Example`s.
        size: (height, width) of the training images.
        label_set: the label set of the layouts (LabelSet, "cityscapes" or a JSON path).
        split: the split to read.
        global_batch_size: examples per step over all replicas; an epoch is
            `len(examples) // global_batch_size` steps (the remainder waits for the next epoch's order).
        seed: the base seed of the per-epoch shuffle.
        shuffle: False keeps file order every epoch (validation samples).
        skip_bad: skip the pairs the scan finds bad (with a warning) instead of stopping.
        photo_resize: how photos reach `size`: "matlab-bicubic" (the original's) or "area".
    """

    def __init__(self, source: Source | Sequence[Example], size: tuple[int, int], label_set: LabelSet | str,
                 split: str = "train", global_batch_size: int = 1, seed: int = 0, shuffle: bool = True,
                 skip_bad: bool = False, photo_resize: str = DEFAULT_PHOTO_RESIZE):
        report = scan_dataset(source, split=split, label_set=label_set)
        self.source = report.source
        self.scanned: ScannedExamples = report.usable(skip_bad, where=f" in split {split!r}")
        self.examples: list[Example] = list(self.scanned.examples)
        self.size = (int(size[0]), int(size[1]))
        self.label_set = self.scanned.label_set
        self.global_batch_size = int(global_batch_size)
        self.seed = int(seed)
        self.shuffle = shuffle
        self.photo_resize = check_photo_resize(photo_resize)
        if len(self.examples) < self.global_batch_size:
            raise DataError(
                f"{self.source}: {len(self.examples)} examples in split {split!r}, fewer than the batch size "
                f"{self.global_batch_size}"
            )

    @property
    def num_examples(self) -> int:
        return len(self.examples)

    @property
    def steps_per_epoch(self) -> int:
        return len(self.examples) // self.global_batch_size

    def _permutation(self, epoch: int) -> np.ndarray:
        """Positions of epoch `epoch`'s order in `examples` (file order without `shuffle`)."""
        if not self.shuffle:
            return np.arange(len(self.examples))
        return np.random.default_rng((self.seed, int(epoch))).permutation(len(self.examples))

    def order(self, epoch: int) -> list[Example]:
        """The examples in epoch `epoch`'s order (0-based), the same in every run with this seed."""
        return [self.examples[i] for i in self._permutation(epoch)]

    def dataset(self, epoch: int, input_context: tf.distribute.InputContext | None = None) -> tf.data.Dataset:
        """Epoch `epoch`'s batches (per replica under `input_context`), repeated so every input
        pipeline can deliver `steps_per_epoch` batches even when the shards are uneven."""
        dataset = make_dataset(
            self.scanned.take(self._permutation(epoch)), size=self.size, batch_size=self.global_batch_size,
            shuffle=False, deterministic=True, drop_remainder=True, input_context=input_context,
            photo_resize=self.photo_resize,
        )
        return dataset.repeat()

    def labelled_batches(self, batch_size: int, count: int | None = None) -> tf.data.Dataset:
        """(image float32 [B, H, W, 3], class ids uint8 [B, H, W]) in file order, of the first `count`
        examples (default all): what validation scores against and the samples are drawn from."""
        scanned = self.scanned if count is None else self.scanned.take(range(count))
        dataset = example_dataset(scanned, self.size, deterministic=True, photo_resize=self.photo_resize)
        return dataset.map(lambda image, classes, index: (image, classes)).batch(int(batch_size))

    def samples(self, count: int) -> Samples:
        """The first `count` examples in file order, with their one-hot layouts and class ids."""
        count = min(int(count), len(self.examples))
        images, classes = next(iter(self.labelled_batches(count, count)))
        layouts = classes_to_layout(classes, self.label_set.num_classes)
        return Samples(images.numpy(), layouts.numpy(), classes.numpy())
