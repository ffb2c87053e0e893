"""Finding (label, photo) pairs in each dataset format, detected from the path given.

Formats:
- a Cityscapes root: `leftImg8bit/{split}/{city}/{stem}_leftImg8bit.png` beside
  `gtFine/{split}/{city}/{stem}_gtFine_labelIds.png`, stem = `{city}_{seq}_{frame}`.
  `*_labelIds.png` wins over `*_labelTrainIds.png` when both exist: labelIds are the
  official ground truth, while trainId files are made by a script that users often edit
  (other class maps); trainIds are read where no labelIds file exists, and colour files
  (`*_gtFine_color.png`) where neither does.
- the paired format: `DIR/images/*.png|jpg` and `DIR/labels/*.png` with the same stems,
  optionally in `DIR/train/`, `DIR/val/` (then the split picks the sub-folder).
- a label folder (the original release's format): label PNGs directly in DIR, with photos
  of the same stems in `images_dir` if given.
- a single label file, a glob pattern, or a list of label paths (photos from `images_dir`).

Label PNGs outside Cityscapes are read by their mode: 8-bit grey = label-set ids,
RGB/RGBA/palette = class colours.
"""
from __future__ import annotations

import dataclasses
import glob
import os
import warnings
from typing import Iterable, Sequence, Union

from crn_tf.data.readers import IMAGE_EXTENSIONS, DataError, label_format_for, probe
from crn_tf.labels import CITYSCAPES, LabelSet

SPLITS = ("train", "val", "test")
IMAGES_MODES = ("required", "optional", "none")
_CITYSCAPES_LABELS = (("_gtFine_labelIds.png", "ids"), ("_gtFine_labelTrainIds.png", "trainids"),
                      ("_gtFine_color.png", "colors"))
_STEM_SUFFIXES = ("_gtFine_labelIds", "_gtFine_labelTrainIds", "_gtFine_color", "_leftImg8bit")


@dataclasses.dataclass(frozen=True)
class Example:
    """One layout and (optionally) its photo.

    Attributes:
        stem: the shared file stem, e.g. "aachen_000000_000019".
        label_path: the label PNG.
        image_path: the photo, or None (inference from layouts alone).
        label_format: "ids", "trainids" or "colors" (see `readers.read_label`).
    """

    stem: str
    label_path: str
    image_path: str | None
    label_format: str


@dataclasses.dataclass
class Problem:
    """Something wrong (severity "error") or worth knowing ("warning") about a dataset."""

    kind: str  # missing-photo, missing-label, unreadable, size-mismatch, photo-mode, unknown-values, ...
    path: str
    message: str
    severity: str = "error"
    stem: str | None = None


@dataclasses.dataclass
class Discovery:
    """The pairs found in a source, with the files that have no partner."""

    kind: str  # "cityscapes", "paired", "label-folder", "files"
    root: str
    split: str | None
    examples: list[Example]
    problems: list[Problem]


Source = Union[str, os.PathLike, Sequence[Union[str, os.PathLike]]]


def stem_of(path: str) -> str:
    """A file's stem with Cityscapes suffixes removed ("a_gtFine_color.png" -> "a")."""
    stem = os.path.splitext(os.path.basename(path))[0]
    for suffix in _STEM_SUFFIXES:
        if stem.endswith(suffix):
            return stem[: -len(suffix)]
    return stem


def _list_files(directory: str, extensions: Iterable[str], recursive: bool = False) -> list[str]:
    found = []
    if recursive:
        for parent, _, names in os.walk(directory):
            found += [os.path.join(parent, n) for n in names if n.lower().endswith(tuple(extensions))]
    else:
        with os.scandir(directory) as entries:
            found = [e.path for e in entries if e.is_file() and e.name.lower().endswith(tuple(extensions))]
    return sorted(found)


def _index_by_stem(paths: list[str], what: str, problems: list[Problem]) -> dict[str, str]:
    index: dict[str, str] = {}
    for path in paths:
        stem = stem_of(path)
        if stem in index:
            problems.append(Problem("duplicate-stem", path, f"{path}: {what} stem {stem!r} also used by {index[stem]}",
                                    stem=stem))
            continue
        index[stem] = path
    return index


def _label_format(path: str, problems: list[Problem]) -> str | None:
    try:
        return label_format_for(probe(path))
    except DataError as error:
        problems.append(Problem("unreadable", path, str(error), stem=stem_of(path)))
        return None


def _pair(
    labels: dict[str, tuple[str, str | None]],
    photos: dict[str, str] | None,
    images: str,
    problems: list[Problem],
    photos_without_labels_matter: bool,
    images_where: str,
) -> list[Example]:
    """Joins labels {stem: (path, format)} with photos {stem: path}; records missing partners."""
    examples = []
    for stem in sorted(labels):
        label_path, label_format = labels[stem]
        image_path = photos.get(stem) if (photos is not None and images != "none") else None
        if images == "required" and image_path is None:
            problems.append(Problem("missing-photo", label_path,
                                    f"{label_path}: no photo with stem {stem!r} in {images_where}", stem=stem))
            continue
        if label_format is None:  # unreadable label, already reported
            continue
        examples.append(Example(stem, label_path, image_path, label_format))
    if photos is not None and images != "none" and photos_without_labels_matter:
        for stem in sorted(set(photos) - set(labels)):
            # An unlabelled photo is an error for training; with optional photos it is only noted.
            problems.append(Problem("missing-label", photos[stem], f"{photos[stem]}: photo has no label PNG "
                                    f"with stem {stem!r}", "error" if images == "required" else "warning", stem))
    return examples


def _cityscapes(root: str, split: str, images: str, problems: list[Problem]) -> list[Example]:
    if split not in SPLITS:
        raise DataError(f"{root}: unknown Cityscapes split {split!r} (use one of {', '.join(SPLITS)})")
    label_dir = os.path.join(root, "gtFine", split)
    photo_dir = os.path.join(root, "leftImg8bit", split)
    if not os.path.isdir(label_dir):
        raise DataError(f"{root}: Cityscapes root without {os.path.join('gtFine', split)}/")
    labels: dict[str, tuple[str, str]] = {}
    for path in _list_files(label_dir, (".png",), recursive=True):
        name = os.path.basename(path)
        for rank, (suffix, label_format) in enumerate(_CITYSCAPES_LABELS):
            if name.endswith(suffix):
                stem = name[: -len(suffix)]
                current = labels.get(stem)
                if current is None or rank < [f for _, f in _CITYSCAPES_LABELS].index(current[1]):
                    labels[stem] = (path, label_format)
    if not labels:
        raise DataError(f"{label_dir}: no *_gtFine_labelIds.png, *_gtFine_labelTrainIds.png or *_gtFine_color.png files")
    photos = None
    if images != "none" and os.path.isdir(photo_dir):
        photos = _index_by_stem(_list_files(photo_dir, ("_leftimg8bit.png",), recursive=True), "photo", problems)
    elif images == "required":
        raise DataError(f"{root}: no {os.path.join('leftImg8bit', split)}/ folder of photos")
    return _pair(labels, photos, images, problems, True, photo_dir)


def _paired_dirs(root: str, split: str) -> tuple[str, str, str | None] | None:
    """(labels dir, images dir, split used) for the paired format, or None if `root` is not one."""
    if os.path.isdir(os.path.join(root, split, "labels")):
        return os.path.join(root, split, "labels"), os.path.join(root, split, "images"), split
    if os.path.isdir(os.path.join(root, "labels")):
        return os.path.join(root, "labels"), os.path.join(root, "images"), None
    present = [s for s in SPLITS if os.path.isdir(os.path.join(root, s, "labels"))]
    if present:
        raise DataError(f"{root}: no {split}/labels/ folder (found splits: {', '.join(present)})")
    return None


def _labels_by_stem(paths: list[str], problems: list[Problem]) -> dict[str, tuple[str, str | None]]:
    labels = {}
    for stem, path in _index_by_stem(paths, "label", problems).items():
        labels[stem] = (path, _label_format(path, problems))
    return labels


def _photos_in(directory: str | None) -> dict[str, str] | None:
    if directory is None:
        return None
    if not os.path.isdir(directory):
        raise DataError(f"{directory}: photo folder not found")
    return _index_by_stem(_list_files(directory, IMAGE_EXTENSIONS), "photo", [])


def discover(
    source: Source,
    split: str = "train",
    images: str = "required",
    images_dir: str | os.PathLike | None = None,
) -> Discovery:
    """Finds the pairs in `source` (format detected from the path) and lists what is unpaired.

    Raises DataError when the source does not exist, holds no label files, or (Cityscapes)
    lacks the split. Unpaired and unreadable files become `Problem`s, not exceptions.
    """
    if images not in IMAGES_MODES:
        raise ValueError(f"images must be one of {IMAGES_MODES}, got {images!r}")
    problems: list[Problem] = []
    images_dir = os.fspath(images_dir) if images_dir is not None else None
    where = images_dir or "(no photo folder given: pass images_dir)"

    if isinstance(source, (list, tuple)):
        paths = [os.fspath(p) for p in source]
        if not paths:
            raise DataError("empty list of label files")
        missing = [p for p in paths if not os.path.isfile(p)]
        if missing:
            raise DataError(f"{missing[0]}: file not found" + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""))
        examples = _pair(_labels_by_stem(paths, problems), _photos_in(images_dir), images, problems, False, where)
        return Discovery("files", os.path.dirname(paths[0]), None, examples, problems)

    root = os.fspath(source)
    if any(ch in root for ch in "*?["):
        paths = sorted(p for p in glob.glob(root) if os.path.isfile(p))
        if not paths:
            raise DataError(f"{root}: no files match this pattern")
        examples = _pair(_labels_by_stem(paths, problems), _photos_in(images_dir), images, problems, False, where)
        return Discovery("files", os.path.dirname(root), None, examples, problems)
    if os.path.isfile(root):
        examples = _pair(_labels_by_stem([root], problems), _photos_in(images_dir), images, problems, False, where)
        return Discovery("files", os.path.dirname(root), None, examples, problems)
    if not os.path.isdir(root):
        raise DataError(f"{root}: no such file or directory")

    if os.path.isdir(os.path.join(root, "gtFine")) or os.path.isdir(os.path.join(root, "leftImg8bit")):
        examples = _cityscapes(root, split, images, problems)
        return Discovery("cityscapes", root, split, examples, problems)

    paired = _paired_dirs(root, split)
    if paired is not None:
        label_dir, photo_dir, used_split = paired
        label_paths = _list_files(label_dir, (".png",))
        others = [p for p in _list_files(label_dir, (".jpg", ".jpeg"))]
        for path in others:
            problems.append(Problem("unreadable", path, f"{path}: label maps must be PNG (JPEG changes ids and colours)",
                                    stem=stem_of(path)))
        if not label_paths:
            raise DataError(f"{label_dir}: no label PNGs found")
        if images_dir is not None:
            photo_dir = images_dir
        photos = None
        if images != "none" and os.path.isdir(photo_dir):
            photos = _index_by_stem(_list_files(photo_dir, IMAGE_EXTENSIONS), "photo", problems)
        elif images == "required":
            raise DataError(f"{root}: no photo folder {photo_dir}")
        examples = _pair(_labels_by_stem(label_paths, problems), photos, images, problems, True, photo_dir)
        return Discovery("paired", root, used_split, examples, problems)

    label_paths = _list_files(root, (".png",))
    if not label_paths:
        raise DataError(f"{root}: empty folder: no label PNGs, no labels/ sub-folder, not a Cityscapes root")
    examples = _pair(_labels_by_stem(label_paths, problems), _photos_in(images_dir), images, problems, True, where)
    return Discovery("label-folder", root, None, examples, problems)


def find_examples(
    source: Source,
    split: str = "train",
    label_set: LabelSet = CITYSCAPES,
    images: str = "required",
    images_dir: str | os.PathLike | None = None,
    skip_bad: bool = False,
) -> list[Example]:
    """The (label, photo) pairs of `source`, sorted by stem. Format detected from the path.

    Args:
        source: a Cityscapes root, a paired-format folder, a label folder, a label file,
            a glob pattern or a list of label files.
        split: "train", "val" or "test" (Cityscapes, and paired folders with split sub-folders).
        label_set: LabelSet. Kept for a uniform signature; labels are checked when read.
        images: "required" (every label needs its photo), "optional" (photo or None),
            or "none" (labels only, for inference).
        images_dir: the photo folder for a label folder or label files.
        skip_bad: drop unpaired and unreadable files with a warning listing them, instead
            of raising.

    Raises DataError naming the files without a partner (a photo without label or the
    reverse), unreadable label files, or an empty source.
    """
    discovery = discover(source, split=split, images=images, images_dir=images_dir)
    errors = [p for p in discovery.problems if p.severity == "error"]
    return usable_examples(discovery.examples, errors, discovery.root, skip_bad)


def usable_examples(examples: Sequence[Example], errors: Sequence[Problem], root: str, skip_bad: bool,
                    where: str = "") -> list[Example]:
    """The examples left once `errors` are dealt with: raised as one DataError, or with
    `skip_bad` skipped under one warning. No example left is a DataError (`where` adds e.g.
    " in split 'val'"), which lists the skipped errors if there were any."""
    if errors and not skip_bad:
        raise DataError(summarize(list(errors), root))
    if errors:
        warn_skipped(list(errors), stacklevel=4)
    if not examples:
        raise DataError(f"{root}: no usable examples{where}" + (f" ({summarize(list(errors), root)})" if errors else ""))
    return list(examples)


def summarize(problems: list[Problem], root: str = "", limit: int = 10) -> str:
    """One message for a list of problems: the count and the first `limit` of them."""
    head = f"{len(problems)} problem{'s' if len(problems) != 1 else ''} in {root or 'the dataset'}:"
    lines = [f"  {p.message}" for p in problems[:limit]]
    if len(problems) > limit:
        lines.append(f"  ... and {len(problems) - limit} more (run python -m crn_tf.data.check for the full report)")
    return "\n".join([head] + lines)


def warn_skipped(problems: list[Problem], stacklevel: int = 3) -> None:
    """One warning listing every problem that is being skipped (skip_bad=True)."""
    warnings.warn("skipping bad examples (skip_bad=True):\n" + "\n".join(f"  {p.message}" for p in problems),
                  stacklevel=stacklevel)
