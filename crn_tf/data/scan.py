"""Scanning a dataset before training: pairs, headers, sizes, and (optionally) every pixel.

`scan_dataset` is what `python -m crn_tf.data.check` prints and what `make_dataset` and
train.py run up front, so bad files stop a run before step 0 with a message naming them.
`ScanReport.usable()` hands the result on as `ScannedExamples` (the examples, each label's size,
the label set): the pipelines read that as it is, so a run discovers and probes its files once.
The default scan reads only file names and image headers (plus the last bytes of each
file, which finds truncated PNGs): seconds for all of Cityscapes. `decode=True` also
decodes every file to find corrupt data, ids or colours outside the label set, and the
per-class pixel share.
"""
from __future__ import annotations

import collections
import dataclasses
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Iterable, Sequence

import numpy as np
from PIL import Image

from crn_tf.core.progress import Progress
from crn_tf.data.readers import (
    DataError,
    check_photo_mode,
    label_format_for,
    probe,
    read_label_values,
)
from crn_tf.data.sources import (
    Discovery,
    Example,
    Problem,
    Source,
    discover,
    usable_examples,
)
from crn_tf.labels import (
    CITYSCAPES,
    VOID,
    LabelSet,
    class_names,
    classify_values,
    resolve_label_set,
)

_KIND_TITLES = {
    "empty": "no data",
    "missing-photo": "labels without a photo",
    "missing-label": "photos without a label",
    "duplicate-stem": "files sharing a stem",
    "unreadable": "unreadable files",
    "size-mismatch": "photo and label of different sizes",
    "size-varies": "sizes differ between examples",
    "unknown-values": "ids or colours outside the label set",
    "photo-mode": "photos converted to RGB",
    "absent-class": "classes that never appear",
}


@dataclasses.dataclass(frozen=True)
class ScannedExamples:
    """Examples that passed the scan, passed down so that nothing is discovered or probed again.

    Attributes:
        examples: the examples, in reading order.
        sizes: each example's label (height, width) from its header, in the same order (None
            where unknown: a list of examples read without a scan).
        label_set: the label set the labels are read with.
        source: where the examples were found (for messages).
    """

    examples: tuple[Example, ...]
    sizes: tuple[tuple[int, int] | None, ...]
    label_set: LabelSet
    source: str = ""

    def __post_init__(self) -> None:
        if len(self.examples) != len(self.sizes):
            raise ValueError(f"{len(self.examples)} examples but {len(self.sizes)} sizes")

    def __len__(self) -> int:
        return len(self.examples)

    @classmethod
    def from_headers(cls, examples: Sequence[Example], label_set: LabelSet, source: str = "") -> ScannedExamples:
        """Examples checked elsewhere, with the label sizes their headers give (None if unreadable)."""
        sizes = []
        for example in examples:
            try:
                sizes.append(probe(example.label_path).size)
            except DataError:
                sizes.append(None)
        return cls(tuple(examples), tuple(sizes), label_set, source)

    def take(self, indices: Iterable[int]) -> ScannedExamples:
        """The examples at `indices`, in that order (an epoch's order, a shard, the first n)."""
        indices = [int(i) for i in indices]
        return dataclasses.replace(self, examples=tuple(self.examples[i] for i in indices),
                                   sizes=tuple(self.sizes[i] for i in indices))

    @property
    def native_sizes(self) -> set[tuple[int, int]] | None:
        """The set of the labels' (height, width), or None if any is unknown."""
        return None if any(s is None for s in self.sizes) else set(self.sizes)


@dataclasses.dataclass
class ScanReport:
    """The result of `scan_dataset`: the usable examples and every problem found."""

    source: str
    kind: str
    split: str | None
    label_set: LabelSet
    examples: list[Example]
    problems: list[Problem]
    label_sizes: dict[str, tuple[int, int]]
    decoded: bool = False
    class_pixels: np.ndarray | None = None  # int64 [num_classes + 1], void last
    unknown_values: dict[str, list] = dataclasses.field(default_factory=dict)  # value -> [pixels, files]
    pairs_found: int = 0  # pairs (or labels, without photos) found before the header checks

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "warning"]

    @property
    def ok(self) -> bool:
        """True when training can run on this data without skipping anything."""
        return not self.errors and bool(self.examples)

    @property
    def bad_paths(self) -> set[str]:
        return {p.path for p in self.errors}

    def raise_if_bad(self) -> None:
        """Raises DataError listing the errors (or saying the dataset is empty)."""
        self.usable_examples()

    def usable_examples(self, skip_bad: bool = False, where: str = "") -> list[Example]:
        """The good examples; the errors raise one DataError, or with `skip_bad` one warning
        (`crn_tf.data.sources.usable_examples`). A source that cannot be read at all (no such
        folder, no label files) raises its own message, as `find_examples` does."""
        if self.kind == "none":
            raise DataError(self.problems[0].message)
        return usable_examples(self.examples, self.errors, self.source, skip_bad, where)

    def usable(self, skip_bad: bool = False, where: str = "") -> ScannedExamples:
        """`usable_examples` with each label's size and the label set: what the pipelines read."""
        examples = self.usable_examples(skip_bad, where)
        return ScannedExamples(tuple(examples), tuple(self.label_sizes[e.stem] for e in examples), self.label_set,
                               self.source)

    def format(self, command: str | None = None) -> str:
        """The human-readable report of `python -m crn_tf.data.check`."""
        return format_report(self, command)


def _empty_report(source: str, split: str | None, label_set: LabelSet, error: DataError) -> ScanReport:
    return ScanReport(source, "none", split, label_set, [], [Problem("empty", source, str(error))], {})


def _check_headers(example: Example, problems: list[Problem]) -> tuple[int, int] | None:
    """Probes a pair's headers; returns the label size, or None (with problems) if unusable."""
    try:
        label = probe(example.label_path)
        label_format_for(label)
    except DataError as error:
        problems.append(Problem("unreadable", example.label_path, str(error), stem=example.stem))
        return None
    if example.image_path is None:
        return label.size
    try:
        photo = probe(example.image_path)
        warning = check_photo_mode(photo)
    except DataError as error:
        problems.append(Problem("unreadable", example.image_path, str(error), stem=example.stem))
        return None
    if warning:
        problems.append(Problem("photo-mode", example.image_path, warning, "warning", example.stem))
    if photo.size != label.size:
        problems.append(Problem(
            "size-mismatch", example.image_path,
            f"{example.image_path}: photo is {photo.size[0]}x{photo.size[1]} but its label {example.label_path} "
            f"is {label.size[0]}x{label.size[1]}", stem=example.stem))
        return None
    return label.size


def _decode_pair(example: Example, label_set: LabelSet):
    """Decodes a pair fully: (class counts, unknown values, error message or None)."""
    try:
        pixels = read_label_values(example.label_path, example.label_format)
    except DataError as error:
        return None, {}, (example.label_path, str(error))
    if example.image_path is not None:
        try:
            with Image.open(example.image_path) as image:
                image.load()
        except Exception as error:
            return None, {}, (example.image_path, f"{example.image_path}: corrupt image data ({error})")
    classes, unknown = classify_values(pixels, label_set, example.label_format)
    index = np.where(classes == VOID, label_set.num_classes, np.minimum(classes, label_set.num_classes))
    counts = np.bincount(index.ravel(), minlength=label_set.num_channels)
    return counts, unknown, None


def scan_dataset(
    source: Source | Sequence[Example],
    split: str = "train",
    label_set: LabelSet | str | None = CITYSCAPES,
    images: str = "required",
    images_dir: str | os.PathLike | None = None,
    decode: bool = False,
    progress: bool = False,
    workers: int | None = None,
    check_photos: bool = True,
) -> ScanReport:
    """Checks a dataset without training on it; never raises for problems in the data.

    Args:
        source: anything `find_examples` accepts, or a list of `Example`s.
        split: "train", "val" or "test".
        label_set: LabelSet, "cityscapes" or a JSON path.
        images: "required", "optional" or "none" (as in `find_examples`).
        images_dir: photo folder for a label folder or label files.
        decode: also decode every file: finds corrupt data and ids or colours outside the
            label set, and counts the pixels of each class. About 20 ms per 1024x2048 pair.
        progress: print a progress bar to stderr (for the decoding pass).
        workers: threads for the decoding pass (PIL releases the GIL). Default: CPU count.
        check_photos: False finds the photos without probing them (the demo and the evaluation
            only show or resize them, at any size).

    Returns a ScanReport; `report.raise_if_bad()` turns its errors into one DataError.
    """
    label_set = resolve_label_set(label_set)
    if isinstance(source, (list, tuple)) and source and all(isinstance(s, Example) for s in source):
        examples_in = list(source)
        discovery = Discovery("examples", os.path.dirname(examples_in[0].label_path), None, examples_in, [])
        if images == "none":
            discovery.examples = [dataclasses.replace(e, image_path=None) for e in examples_in]
        elif images == "required":
            for e in examples_in:
                if e.image_path is None:
                    discovery.problems.append(Problem("missing-photo", e.label_path,
                                                      f"{e.label_path}: example {e.stem!r} has no photo", stem=e.stem))
            discovery.examples = [e for e in examples_in if e.image_path is not None]
    else:
        name = source if not isinstance(source, (list, tuple)) else "list of files"
        try:
            discovery = discover(source, split=split, images=images, images_dir=images_dir)
        except DataError as error:
            return _empty_report(os.fspath(name) if not isinstance(name, str) else name, split, label_set, error)

    problems = list(discovery.problems)
    good, sizes = [], {}
    for example in discovery.examples:
        size = _check_headers(example if check_photos else dataclasses.replace(example, image_path=None), problems)
        if size is not None:
            good.append(example)
            sizes[example.stem] = size
    problems.sort(key=lambda p: (p.stem or "", p.path))
    report = ScanReport(discovery.root, discovery.kind, discovery.split, label_set, good, problems, sizes,
                        pairs_found=len(discovery.examples))
    if decode and good:
        _decode_all(report, progress, workers)
    return report


def _decode_all(report: ScanReport, progress: bool, workers: int | None) -> None:
    label_set = report.label_set
    totals = np.zeros(label_set.num_channels, dtype=np.int64)
    unknown: dict = collections.OrderedDict()
    bad_stems = set()
    bar = Progress(len(report.examples), "checking pixels", enabled=progress)
    with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 2) as pool:
        results = pool.map(lambda e: _decode_pair(e, label_set), report.examples)
        for example, (counts, values, failure) in zip(report.examples, results):
            if failure is not None:
                report.problems.append(Problem("unreadable", failure[0], failure[1], stem=example.stem))
                bad_stems.add(example.stem)
            else:
                if not values:  # the share is over the usable labels
                    totals += counts
                if values:
                    bad_stems.add(example.stem)
                    listing = ", ".join(f"{_value_text(v, example.label_format)} ({n} pixels)" for v, n in values.items())
                    report.problems.append(Problem(
                        "unknown-values", example.label_path,
                        f"{example.label_path}: {_format_word(example.label_format)} outside the {label_set.name} "
                        f"label set: {listing}", stem=example.stem))
                    for value, count in values.items():
                        key = _value_text(value, example.label_format)
                        entry = unknown.setdefault(key, [0, []])
                        entry[0] += count
                        entry[1].append(example.label_path)
            bar.update()
    bar.close()
    report.examples = [e for e in report.examples if e.stem not in bad_stems]
    report.decoded = True
    report.class_pixels = totals
    report.unknown_values = dict(unknown)
    absent = [name for name, n in zip(label_set.names, totals[:-1]) if n == 0]
    if absent and report.examples:
        report.problems.append(Problem(
            "absent-class", report.source,
            f"{len(absent)} of {label_set.num_classes} classes never appear: {', '.join(absent)} "
            "(the model cannot learn them)", "warning"))


def _format_word(label_format: str) -> str:
    return "colours" if label_format == "colors" else ("class indices" if label_format == "trainids" else "ids")


def _value_text(value, label_format: str) -> str:
    if label_format == "colors":
        return "colour ({},{},{})".format(*value)
    return f"{'class index' if label_format == 'trainids' else 'id'} {value}"


def format_report(report: ScanReport, command: str | None = None, max_files: int = 5) -> str:
    """The text report: counts, problems by kind with example files, class shares, next step."""
    lines = [f"dataset: {report.source}"]
    split = f", split {report.split}" if report.split else ""
    lines.append(f"format: {report.kind}{split}; label set: {report.label_set.name} "
                 f"({report.label_set.num_classes} classes + void)")
    usable = len(report.examples)
    what = "labels" if report.examples and report.examples[0].image_path is None else "pairs"
    lines.append(f"{what} found: {report.pairs_found}, usable: {usable}"
                 + (f" (sizes: {_size_summary(report)})" if usable else ""))
    by_kind: dict[str, list[Problem]] = collections.defaultdict(list)
    for problem in report.problems:
        by_kind[problem.kind].append(problem)
    for kind, problems in by_kind.items():
        severity = problems[0].severity.upper()
        lines.append(f"{severity}: {_KIND_TITLES.get(kind, kind)}: {len(problems)}")
        if kind == "unknown-values":
            for value, (pixels, files) in report.unknown_values.items():
                example_files = ", ".join(files[:3]) + (f", ... ({len(files)} files)" if len(files) > 3 else "")
                lines.append(f"    {value}: {pixels} pixels in {len(files)} file(s), e.g. {example_files}")
            continue
        for problem in problems[:max_files]:
            lines.append(f"    {problem.message}")
        if len(problems) > max_files:
            lines.append(f"    ... and {len(problems) - max_files} more")
    if report.class_pixels is not None and report.class_pixels.sum() > 0:
        total = report.class_pixels.sum()
        lines.append(f"class pixel share ({len(report.examples)} usable labels):")
        for name, count in zip(class_names(report.label_set), report.class_pixels.tolist()):
            mark = "   <- never appears" if count == 0 and name != "void" else ""
            lines.append(f"    {name:<16} {100.0 * count / total:6.2f}%{mark}")
    if report.ok:
        lines.append("result: OK, training can run" + (f" ({len(report.warnings)} warning(s))" if report.warnings else ""))
        if command:
            lines.append(f"next: {command}")
    else:
        lines.append(f"result: FAILED: {len(report.errors)} error(s); training would stop on these files"
                     if report.errors else "result: FAILED: no usable pairs")
        if report.errors and report.examples:
            lines.append(f"fix them, or train with --skip-bad to leave them out ({usable} usable pairs remain)")
    return "\n".join(lines)


def _size_summary(report: ScanReport) -> str:
    counts = collections.Counter(report.label_sizes[e.stem] for e in report.examples if e.stem in report.label_sizes)
    return ", ".join(f"{h}x{w} ({n})" for (h, w), n in counts.most_common(3)) + (", ..." if len(counts) > 3 else "")
