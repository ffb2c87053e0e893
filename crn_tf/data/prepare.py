"""Writes a dataset once at the training size, as the authors' own preprocessing did.

    python -m crn_tf.data.prepare --cityscapes ROOT --split train --size 256x512 --out DIR

The output is `DIR/<split>/labels/<stem>.png` (colour-coded labels: a label folder in
the original release's format) and `DIR/<split>/images/<stem>.png` (photos), i.e. the
paired format, plus `DIR/label_set.json`. Resizing is exactly the training pipeline's:
photos with MATLAB's bicubic `imresize` rounded to 8 bits, as the authors' own
`extract*full.m` made theirs (`--photo-resize area`: area averaging), labels by nearest
neighbour. So reading DIR gives the same layouts as reading the source at that size, and
the same photos (with `area`: within rounding, 0.5). Files are written to a temporary name
and renamed, so a re-run skips every pair already complete (photos made with another
`--photo-resize` are redone, and so is any file that is truncated or corrupt). One run per
output folder: a second is refused (exit 5) while the first holds `OUT/crn_tf.lock`; a file
that cannot be written (disk full) stops the run with one line naming it (exit 4).
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from typing import Sequence

import numpy as np
from PIL import Image

from crn_tf.core.files import (
    WRITE_FAILED_EXIT,
    WriteError,
    remove_temporary_files,
    write_atomic,
)
from crn_tf.core.images import save_png, to_uint8
from crn_tf.core.locks import LOCKED_EXIT, DirectoryLock, LockError
from crn_tf.core.logs import cli_error, cli_main
from crn_tf.core.progress import Progress
from crn_tf.core.quiet import quiet_start
from crn_tf.core.sizes import size_type
from crn_tf.data.readers import DataError, probe
from crn_tf.data.resize import (
    DEFAULT_PHOTO_RESIZE,
    PHOTO_RESIZE_HELP,
    PHOTO_RESIZE_METHODS,
    check_photo_resize,
)
from crn_tf.data.scan import scan_dataset
from crn_tf.data.sources import Example, Source
from crn_tf.labels import (
    CITYSCAPES,
    VOID,
    LabelSet,
    classes_to_colors,
    classes_to_ids,
    resolve_label_set,
    void_color_for,
    void_id_for,
)

logger = logging.getLogger("crn_tf.data.prepare")  # not __name__: that is __main__ under python -m


def encode_label(classes: np.ndarray, label_set: LabelSet, source: str = "") -> np.ndarray:
    """Class indices -> the array written as label PNG: colours if void has a colour, else ids
    (void written by the `crn_tf.labels` rule, `void_color_for` / `void_id_for`)."""
    color = void_color_for(label_set)
    if color is not None:
        return classes_to_colors(classes, label_set, void_color=color)
    if void_id_for(label_set) is None and (classes == VOID).any():
        raise DataError(f"{source}: has void pixels, but the {label_set.name} label set has no void id or colour")
    return classes_to_ids(classes, label_set)


def _complete(path: str, size: tuple[int, int] | None) -> bool:
    """Whether `path` is a whole PNG of `size`: truncated or corrupt files (every chunk's CRC is
    checked) are written again, never read as data."""
    if not os.path.exists(path):
        return False
    try:
        info = probe(path)
        with Image.open(path) as image:
            image.verify()
    except (DataError, OSError, SyntaxError, ValueError):
        return False
    return size is None or info.size == tuple(size)


def _previous_photo_resize(split_dir: str) -> str | None:
    """The photo resize of an earlier run into `split_dir` (its prepared.json; "area" before it was recorded)."""
    try:
        with open(os.path.join(split_dir, "prepared.json")) as f:
            return json.load(f).get("photo_resize", "area")
    except (OSError, ValueError):
        return None


def prepare(
    source: Source | Sequence[Example],
    out: str | os.PathLike,
    split: str = "train",
    size: tuple[int, int] | None = (256, 512),
    label_set: LabelSet | str | None = CITYSCAPES,
    images: str = "required",
    images_dir: str | os.PathLike | None = None,
    skip_bad: bool = False,
    progress: bool = True,
    photo_resize: str = DEFAULT_PHOTO_RESIZE,
) -> dict:
    """Resizes `source` once into `out/<split>/{labels,images}/`; returns counts written and skipped.

    Args:
        source: anything `make_dataset` reads (Cityscapes root, paired folder, label folder, files).
        out: the output folder (made if missing).
        split: which split to read, and the sub-folder written.
        size: (height, width), or None to keep the size (a format conversion).
        label_set: LabelSet, "cityscapes" or a JSON path; its colours code the written labels.
        images: "required" writes pairs; "none" writes labels only.
        images_dir: photo folder for a label folder source.
        skip_bad: skip bad pairs with a warning instead of raising.
        progress: show a progress bar on stderr.
        photo_resize: "matlab-bicubic" (default: the original's MATLAB `imresize`) or "area".

    Raises DataError naming the files when the source has problems (unless skip_bad).
    """
    from crn_tf.data.pipeline import example_dataset  # TensorFlow only when needed

    check_photo_resize(photo_resize)
    label_set = resolve_label_set(label_set)
    report = scan_dataset(source, split=split, label_set=label_set, images=images, images_dir=images_dir)
    examples = report.usable_examples(skip_bad)
    with_images = images != "none"

    out = os.fspath(out)
    label_dir = os.path.join(out, split, "labels")
    image_dir = os.path.join(out, split, "images")
    os.makedirs(label_dir, exist_ok=True)
    if with_images:
        os.makedirs(image_dir, exist_ok=True)
    for folder in (label_dir, image_dir):  # what a killed run was writing (one run per `out`: main() locks it)
        remove_temporary_files(folder)
    label_set.save_json(os.path.join(out, "label_set.json"))
    split_dir = os.path.join(out, split)
    previous = _previous_photo_resize(split_dir)
    if with_images and previous is not None and previous != photo_resize:
        # Photos made with another resize: remove them before recording the new method, so that
        # a run killed half-way still redoes every one of them.
        for example in examples:
            stale = os.path.join(image_dir, example.stem + ".png")
            if os.path.exists(stale):
                os.remove(stale)
    info = {"source": report.source, "format": report.kind, "split": split,
            "size": list(size) if size else None, "pairs": len(examples), "label_set": label_set.name,
            "photo_resize": photo_resize}
    write_atomic(os.path.join(split_dir, "prepared.json"), json.dumps(info, indent=2))

    def targets(example: Example) -> tuple[str, str]:
        return os.path.join(label_dir, example.stem + ".png"), os.path.join(image_dir, example.stem + ".png")

    pending = [e for e in examples
               if not (_complete(targets(e)[0], size)
                       and (not with_images or _complete(targets(e)[1], size)))]
    skipped = len(examples) - len(pending)
    if progress and skipped:
        logger.info("prepare: %d of %d pairs already written, skipping them", skipped, len(examples))
    if pending:
        native = {report.label_sizes[e.stem] for e in pending}
        dataset = example_dataset(pending, size, label_set, with_images=with_images, deterministic=False,
                                  native_sizes=native, photo_resize=photo_resize)
        if skip_bad:
            dataset = dataset.ignore_errors(log_warning=True)
        written = 0
        bar = Progress(len(pending), f"prepare {split}", enabled=progress)
        with ThreadPoolExecutor(max_workers=2) as pool:
            futures = []
            for element in dataset.prefetch(4).as_numpy_iterator():
                example = pending[int(element[-1])]
                label_path, image_path = targets(example)
                classes = element[1] if with_images else element[0]
                futures.append(pool.submit(save_png, label_path, encode_label(classes, label_set, example.label_path), 1))
                if with_images:
                    futures.append(pool.submit(save_png, image_path, to_uint8(element[0]), 1))
                written += 1
                bar.update()
            for future in futures:
                future.result()
        bar.close()
    else:
        written = 0
    return {"written": written, "skipped": skipped, "out": split_dir}


@cli_main
def main(argv: Sequence[str] | None = None) -> int:
    argv = quiet_start(argv)
    parser = argparse.ArgumentParser(
        prog="python -m crn_tf.data.prepare",
        description="Resize a dataset once into the paired/label-folder format (colour labels + photos).")
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--cityscapes", metavar="ROOT", help="a Cityscapes root (leftImg8bit/ + gtFine/)")
    what.add_argument("--source", metavar="PATH", help="any other source: paired folder, label folder, file, glob")
    parser.add_argument("--out", required=True, help="output folder; writes OUT/SPLIT/labels and OUT/SPLIT/images")
    parser.add_argument("--split", default="train", help="split to read and write (default: train)")
    parser.add_argument("--size", type=size_type(), default=(256, 512), help="HEIGHTxWIDTH (default: 256x512)")
    parser.add_argument("--label-set", default=None, help="label set JSON (default: Cityscapes)")
    parser.add_argument("--images-dir", default=None, help="photo folder, for a label-folder source")
    parser.add_argument("--labels-only", action="store_true", help="write labels only (no photos needed)")
    parser.add_argument("--skip-bad", action="store_true", help="skip bad pairs with a warning instead of stopping")
    parser.add_argument("--photo-resize", choices=PHOTO_RESIZE_METHODS, default=DEFAULT_PHOTO_RESIZE,
                        help=PHOTO_RESIZE_HELP + " (default: %(default)s)")
    args = parser.parse_args(argv)
    try:
        label_set = resolve_label_set(args.label_set)
        with DirectoryLock(args.out, warn=lambda line: print(line, file=sys.stderr)):
            result = prepare(args.cityscapes or args.source, args.out, split=args.split, size=args.size,
                             label_set=label_set, images="none" if args.labels_only else "required",
                             images_dir=args.images_dir, skip_bad=args.skip_bad,
                             photo_resize=args.photo_resize)
    except WriteError as error:  # disk full, ...: what was written stays; a re-run goes on from it
        return cli_error(None, error, WRITE_FAILED_EXIT)
    except LockError as error:
        return cli_error(None, error, LOCKED_EXIT)
    except (DataError, ValueError) as error:
        return cli_error(None, error, 2)
    print(f"prepared {result['written']} pairs, skipped {result['skipped']} already complete -> {result['out']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
