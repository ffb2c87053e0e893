"""Checks a dataset before any training and prints a report.

    python -m crn_tf.data.check DIR [--label-set PATH] [--split train] [--images-dir PHOTOS]

Reports pairs found, missing partners, size mismatches, unreadable files, ids or colours
outside the label set (counts and example files), the per-class pixel share (a class
that never appears is a warning) and the train.py command to start with. Exits 1 when
training could not run on the data, 2 on a usage error, 0 otherwise.
"""
from __future__ import annotations

import argparse
import os
import shlex
import sys
from typing import Sequence

from crn_tf.core.logs import cli_error, cli_main
from crn_tf.core.quiet import quiet_start
from crn_tf.data.scan import ScanReport, scan_dataset
from crn_tf.data.sources import SPLITS
from crn_tf.labels import CITYSCAPES, resolve_label_set


def suggested_size(sizes: Sequence[tuple[int, int]], largest: tuple[int, int] = (256, 512)) -> tuple[int, int] | None:
    """The largest CRN output size (4 * 2^n by 8 * 2^n) not above the smallest image, capped at
    the 256p preset's 256x512; None when that is 256x512 itself (the preset's default)."""
    if not sizes:
        return None
    height = min(h for h, _ in sizes)
    width = min(w for _, w in sizes)
    best = (4, 8)
    while best[0] * 2 <= min(height, largest[0]) and best[1] * 2 <= min(width, largest[1]):
        best = (best[0] * 2, best[1] * 2)
    return None if best == tuple(largest) else best


def train_command(source: str, label_set_path: str | None, report: ScanReport, has_val: bool = False) -> str:
    """The train.py command line suggested for a dataset that passed the check."""
    parts = ["python", "train.py", "--data", source]
    if has_val:
        parts += ["--val-data", source]
    if label_set_path:
        parts += ["--label-set", label_set_path]
    size = suggested_size(list(report.label_sizes.values()))
    if size is not None:
        parts += ["--size", f"{size[0]}x{size[1]}"]
    return " ".join(shlex.quote(p) for p in parts)


def _label_set_path(source: str, given: str | None) -> str | None:
    """--label-set, else DIR/label_set.json when the dataset carries one (prepare writes it)."""
    if given:
        return given
    candidate = os.path.join(source, "label_set.json")
    return candidate if os.path.isfile(candidate) else None


def check(
    source: str,
    label_set_path: str | None = None,
    splits: Sequence[str] | None = None,
    images_dir: str | None = None,
    progress: bool = True,
    labels_only: bool = False,
) -> tuple[str, bool]:
    """Scans each split (default: train, plus val when present) fully; returns (report text, ok).

    `labels_only` checks layouts for inference (demo, evaluate): photos are not looked for."""
    label_set_path = _label_set_path(source, label_set_path)
    label_set = resolve_label_set(label_set_path) if label_set_path else CITYSCAPES
    if splits is None:
        splits = ["train"] + [s for s in ("val",) if _has_split(source, s)]
    texts, ok, reports = [], True, []
    for split in splits:
        reports.append(scan_dataset(source, split=split, label_set=label_set, images_dir=images_dir,
                                    images="none" if labels_only else "required", decode=True, progress=progress))
        ok = ok and reports[-1].ok
    for index, report in enumerate(reports):
        command = None
        if index == len(reports) - 1 and not labels_only:  # after the last split's report
            command = train_command(source, label_set_path, reports[0], has_val="val" in splits and
                                    report.kind in ("cityscapes", "paired") and report.split == "val")
        texts.append(report.format(command=command if ok else None))
    if label_set_path:
        texts.insert(0, f"label set: {label_set_path}")
    return "\n\n".join(texts), ok


def _has_split(source: str, split: str) -> bool:
    return (os.path.isdir(os.path.join(source, "gtFine", split))
            or os.path.isdir(os.path.join(source, split, "labels")))


@cli_main
def main(argv: Sequence[str] | None = None) -> int:
    argv = quiet_start(argv)
    parser = argparse.ArgumentParser(prog="python -m crn_tf.data.check",
                                     description="Check a dataset before training and print a report.")
    parser.add_argument("source", help="Cityscapes root, paired folder (images/ + labels/), label folder or file")
    parser.add_argument("--label-set", default=None,
                        help="label set JSON (default: SOURCE/label_set.json if present, else Cityscapes)")
    parser.add_argument("--split", action="append", choices=SPLITS,
                        help="split(s) to check (default: train, and val when present)")
    parser.add_argument("--images-dir", default=None, help="photo folder for a label-folder source")
    parser.add_argument("--labels-only", action="store_true",
                        help="check layouts alone (for demo/evaluate input): no photos needed")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    try:
        text, ok = check(args.source, args.label_set, args.split, args.images_dir, progress=not args.quiet,
                         labels_only=args.labels_only)
    except ValueError as error:  # a bad --label-set file
        return cli_error(None, error, 2)
    print(text)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
