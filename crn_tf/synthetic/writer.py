"""A synthetic city: procedural street scenes written as a Cityscapes tree, a paired dataset or a label folder.

Cityscapes itself cannot be downloaded here, so tests, the default training run and the
demo use these scenes instead. The Cityscapes writer copies the real directory layout and
file naming, so the same readers serve both:

    OUT/leftImg8bit/{split}/{city}/{city}_{seq:06d}_{frame:06d}_leftImg8bit.png   photo, RGB
    OUT/gtFine/{split}/{city}/{stem}_gtFine_labelIds.png       Cityscapes label ids, uint8
    OUT/gtFine/{split}/{city}/{stem}_gtFine_labelTrainIds.png  trainIds 0..18, 255 = void
    OUT/gtFine/{split}/{city}/{stem}_gtFine_color.png          Cityscapes colours, RGBA (alpha 255, as the real files)
    OUT/gtFine/{split}/{city}/{stem}_gtFine_instanceIds.png    uint16, id * 1000 + n for cars, people, ...

Command line (`--help` lists every option):

    python -m crn_tf.synthetic OUT --num 20 --val 5 --size 256x512 --seed 0
    python -m crn_tf.synthetic OUT --format paired --label-set data/label_sets/street5.json
    python -m crn_tf.synthetic OUT --format label-folder --num 4 --size 64x128 --split val

The scenes themselves are planned and drawn by the rest of `crn_tf.synthetic`; docs/synthetic.md describes them.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Callable, Mapping, Sequence

import numpy as np

from crn_tf.core.images import save_png
from crn_tf.core.logs import cli_error, cli_main
from crn_tf.core.progress import Progress
from crn_tf.core.quiet import parse_cli
from crn_tf.core.sizes import parse_size, size_type
from crn_tf.labels import (
    CITYSCAPES,
    VOID,
    LabelSet,
    classes_to_colors,
    classes_to_ids,
    ids_to_classes,
    resolve_label_set,
    void_color_for,
    void_id_for,
)
from crn_tf.synthetic.render import MIN_SIZE, render_scene, render_scene_full

TRAIN_CITIES = ("synthcity_a", "synthcity_b")
VAL_CITIES = ("synthcity_v",)
FRAME = 19  # Cityscapes annotates the 20th frame of each 30-frame snippet: *_000019.
SPLITS = ("train", "val", "test")  # in the order of their scene-seed streams

# Colours of every Cityscapes label id (cityscapesScripts' table); -1, licence plate, is 255 in a uint8 PNG.
CITYSCAPES_ID_COLORS: dict[int, tuple[int, int, int]] = {
    0: (0, 0, 0), 1: (0, 0, 0), 2: (0, 0, 0), 3: (0, 0, 0), 4: (0, 0, 0), 5: (111, 74, 0), 6: (81, 0, 81),
    7: (128, 64, 128), 8: (244, 35, 232), 9: (250, 170, 160), 10: (230, 150, 140), 11: (70, 70, 70),
    12: (102, 102, 156), 13: (190, 153, 153), 14: (180, 165, 180), 15: (150, 100, 100), 16: (150, 120, 90),
    17: (153, 153, 153), 18: (153, 153, 153), 19: (250, 170, 30), 20: (220, 220, 0), 21: (107, 142, 35),
    22: (152, 251, 152), 23: (70, 130, 180), 24: (220, 20, 60), 25: (255, 0, 0), 26: (0, 0, 142),
    27: (0, 0, 70), 28: (0, 60, 100), 29: (0, 0, 90), 30: (0, 0, 110), 31: (0, 80, 100), 32: (0, 0, 230),
    33: (119, 11, 32), 255: (0, 0, 142),
}


def _id_palette() -> np.ndarray:
    palette = np.zeros((256, 3), dtype=np.uint8)
    for label_id, color in CITYSCAPES_ID_COLORS.items():
        palette[label_id] = color
    return palette


ID_PALETTE = _id_palette()


def label_ids_to_colors(label_ids: np.ndarray) -> np.ndarray:
    """Cityscapes label ids -> the Cityscapes colour image (as `*_gtFine_color.png`, RGB)."""
    return ID_PALETTE[np.asarray(label_ids, dtype=np.uint8)]


def scene_seed(seed: int, split: str, index: int) -> int:
    """The seed of image `index` of `split`: independent streams per (seed, split, index)."""
    code = _split_code(split)
    return int(np.random.SeedSequence([int(seed), code, int(index)]).generate_state(1)[0] & 0x7FFFFFFF)


def _split_code(split: str) -> int:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    return SPLITS.index(split)


ProgressCallback = Callable[[int, int, str], None]
"""Called after each scene with (done, total, name)."""


def _split_plan(num_train: int, num_val: int) -> list[tuple[str, int]]:
    if num_train < 0 or num_val < 0:
        raise ValueError(f"image counts must be >= 0, got train={num_train}, val={num_val}")
    return [("train", i) for i in range(num_train)] + [("val", i) for i in range(num_val)]


def cityscapes_stem(split: str, index: int, count: int) -> tuple[str, str]:
    """(city, stem) of image `index` of `count` in `split`: cities take contiguous runs of sequences."""
    cities = TRAIN_CITIES if split == "train" else VAL_CITIES
    per_city = max(1, -(-count // len(cities)))
    city = cities[min(index // per_city, len(cities) - 1)]
    sequence = index - cities.index(city) * per_city
    return city, f"{city}_{sequence:06d}_{FRAME:06d}"


# --- Cityscapes tree ------------------------------------------------------------------------------
def write_synthetic_city(
    out: str | os.PathLike,
    num_train: int,
    num_val: int,
    size: tuple[int, int] = (256, 512),
    seed: int = 0,
    instances: bool = True,
    progress: ProgressCallback | None = None,
) -> list[str]:
    """Writes a synthetic Cityscapes tree under `out` and returns the stems written (train, then val).

    Each stem `{city}_{seq:06d}_{frame:06d}` gets a `leftImg8bit` photo and `gtFine` labelIds,
    labelTrainIds, color (RGBA) and, with `instances`, instanceIds PNGs. Existing files are
    overwritten; the output depends only on (size, seed, counts).
    """
    size = parse_size(size, MIN_SIZE)
    plan = _split_plan(num_train, num_val)
    counts = {"train": num_train, "val": num_val}
    stems = []
    for done, (split, index) in enumerate(plan):
        city, stem = cityscapes_stem(split, index, counts[split])
        photo, label_ids, instance_ids = render_scene_full(size, scene_seed(seed, split, index))
        image_dir = os.path.join(os.fspath(out), "leftImg8bit", split, city)
        label_dir = os.path.join(os.fspath(out), "gtFine", split, city)
        save_png(os.path.join(image_dir, f"{stem}_leftImg8bit.png"), photo, compress_level=1)
        save_png(os.path.join(label_dir, f"{stem}_gtFine_labelIds.png"), label_ids)
        save_png(os.path.join(label_dir, f"{stem}_gtFine_labelTrainIds.png"), ids_to_classes(label_ids, CITYSCAPES))
        rgba = np.concatenate([label_ids_to_colors(label_ids), np.full(label_ids.shape + (1,), 255, np.uint8)], axis=-1)
        save_png(os.path.join(label_dir, f"{stem}_gtFine_color.png"), rgba)
        if instances:
            save_png(os.path.join(label_dir, f"{stem}_gtFine_instanceIds.png"), instance_ids.astype(np.uint16))
        stems.append(stem)
        if progress is not None:
            progress(done + 1, len(plan), f"{split}/{city}/{stem}")
    return stems


# --- paired format (own data) ------------------------------------------------------------------------
def cityscapes_to_label_set_table(label_set: LabelSet, class_map: Mapping[str, str] | None = None) -> np.ndarray:
    """uint8 [256]: Cityscapes label id -> class index of `label_set` (VOID for everything unmapped).

    A class of `label_set` takes the Cityscapes class of the same name (case-insensitive);
    `class_map` adds or overrides sources, e.g. {"truck": "vehicle", "bus": "vehicle"}.
    Raises ValueError when a class of `label_set` has no source at all.
    """
    mapping = {c.name.lower(): c.name.lower() for c in CITYSCAPES.classes}
    for source, target in (class_map or {}).items():
        if source.lower() not in mapping:
            raise ValueError(f"class_map: {source!r} is not a Cityscapes class; choose from {CITYSCAPES.names}")
        mapping[source.lower()] = target.lower()
    index = {c.name.lower(): i for i, c in enumerate(label_set.classes)}
    table = np.full(256, VOID, dtype=np.uint8)
    used = set()
    for c in CITYSCAPES.classes:
        target = mapping[c.name.lower()]
        if target in index:
            table[c.id] = index[target]
            used.add(target)
    missing = [c.name for c in label_set.classes if c.name.lower() not in used]
    if missing:
        raise ValueError(
            f"label set {label_set.name!r}: classes {missing} match no class of the synthetic city; "
            f"name them after Cityscapes classes ({', '.join(CITYSCAPES.names)}) or pass a class_map"
        )
    return table


def _void_value(label_set: LabelSet, label_format: str) -> int | tuple[int, int, int]:
    """The colour or id void is written in (the `crn_tf.labels` rule); street scenes always have void."""
    if label_format == "colors":
        color = void_color_for(label_set)
        if color is None:
            raise ValueError(f"label set {label_set.name!r} declares no void colour, but street scenes have void pixels")
        return color
    label_id = void_id_for(label_set)
    if label_id is None:
        raise ValueError(f"label set {label_set.name!r} declares no void id, but street scenes have void pixels")
    return label_id


def write_paired_dataset(
    out: str | os.PathLike,
    label_set: LabelSet | str | os.PathLike | dict,
    num_train: int,
    num_val: int,
    size: tuple[int, int] = (256, 512),
    seed: int = 0,
    label_format: str = "colors",
    class_map: Mapping[str, str] | None = None,
    progress: ProgressCallback | None = None,
) -> list[str]:
    """Writes `out/{train,val}/images/<stem>.png` and `out/{train,val}/labels/<stem>.png`.

    Labels are coded in `label_set` (a LabelSet, dict, "cityscapes" or a JSON path): its class
    colours (`label_format="colors"`, RGB) or ids (`"ids"`, 8-bit grey). Street classes it does
    not name are written as its (first) void colour or id. Returns the stems (train, then val).
    """
    if label_format not in ("colors", "ids"):
        raise ValueError(f"label_format must be 'colors' or 'ids', got {label_format!r}")
    label_set = resolve_label_set(label_set)
    size = parse_size(size, MIN_SIZE)
    table = cityscapes_to_label_set_table(label_set, class_map)
    void = _void_value(label_set, label_format)
    plan = _split_plan(num_train, num_val)
    stems = []
    for done, (split, index) in enumerate(plan):
        stem = f"street_{split}_{index:05d}"
        photo, label_ids = render_scene(size, scene_seed(seed, split, index))
        classes = table[label_ids]
        if label_format == "colors":
            label = classes_to_colors(classes, label_set, void_color=void)
        else:
            label = classes_to_ids(classes, label_set, void_id=void)
        split_dir = os.path.join(os.fspath(out), split)
        save_png(os.path.join(split_dir, "images", f"{stem}.png"), photo, compress_level=1)
        save_png(os.path.join(split_dir, "labels", f"{stem}.png"), label)
        stems.append(stem)
        if progress is not None:
            progress(done + 1, len(plan), f"{split}/{stem}")
    return stems


# --- label folder (the original release's demo format) ----------------------------------------------
def write_label_folder(
    out: str | os.PathLike,
    num: int,
    size: tuple[int, int] = (256, 512),
    seed: int = 0,
    photos: bool = True,
    progress: ProgressCallback | None = None,
    split: str = "val",
) -> list[str]:
    """Writes the original release's label-folder format: `out/labels/<stem>.png` (Cityscapes
    colours, RGB) and, with `photos`, the matching `out/images/<stem>.png`. Returns the stems.

    Scene i is scene i of `split` ("train", "val" or "test") of `write_synthetic_city` with the
    same seed, so one seed gives the same layouts at every size. The default, "val", keeps the
    demo samples held out from the training scenes `train.py` writes.
    """
    size = parse_size(size, MIN_SIZE)
    _split_code(split)
    stems = []
    for _, index in _split_plan(num, 0):
        stem = f"street_{index:04d}"
        photo, label_ids = render_scene(size, scene_seed(seed, split, index))
        save_png(os.path.join(os.fspath(out), "labels", f"{stem}.png"), label_ids_to_colors(label_ids), 9)
        if photos:
            save_png(os.path.join(os.fspath(out), "images", f"{stem}.png"), photo, 9)
        stems.append(stem)
        if progress is not None:
            progress(index + 1, num, stem)
    return stems


# --- command line ------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m crn_tf.synthetic",
        description="Write a synthetic street dataset: a Cityscapes tree (leftImg8bit/ + gtFine/), "
        "a paired images/ + labels/ dataset in a custom label set, or a label folder (docs/synthetic.md).",
    )
    parser.add_argument("out", help="output directory (created; files already there are overwritten)")
    parser.add_argument("--num", type=int, default=20, help="training scenes, or scenes of a label folder (default 20)")
    parser.add_argument("--val", type=int, default=None, help="validation images (default num/4, at least 1)")
    parser.add_argument("--size", type=size_type(MIN_SIZE), default=(256, 512), help="HEIGHTxWIDTH (default 256x512)")
    parser.add_argument("--seed", type=int, default=0, help="seed; the same seed writes the same files (default 0)")
    parser.add_argument("--format", choices=("cityscapes", "paired", "label-folder"), default="cityscapes",
                        help="cityscapes: leftImg8bit/ + gtFine/ (default); paired: {train,val}/{images,labels}/; "
                        "label-folder: labels/ (Cityscapes colours) + images/, --num scenes of one --split")
    parser.add_argument("--split", choices=SPLITS, default=None,
                        help="label-folder format: whose scenes to write (default val: the Cityscapes tree's "
                        "validation scenes with the same seed, held out from training)")
    parser.add_argument("--label-set", default=None,
                        help="paired format: label set JSON (default: Cityscapes' 19 classes)")
    parser.add_argument("--label-format", choices=("colors", "ids"), default=None,
                        help="paired format: labels as class colours (default) or class ids")
    parser.add_argument("--no-instances", action="store_true", help="cityscapes format: skip *_instanceIds.png")
    return parser


@cli_main
def main(argv: Sequence[str] | None = None) -> int:
    args = parse_cli(build_parser, argv)
    if args.format == "label-folder":
        num_val = 0
    else:
        num_val = max(1, args.num // 4) if args.val is None else args.val
    try:
        if args.num < 0 or num_val < 0:
            raise ValueError(f"--num and --val must be >= 0, got {args.num} and {num_val}")
        if args.format == "label-folder" and args.val:
            raise ValueError("--val does not apply to --format label-folder (it has no splits)")
        if args.format != "label-folder" and args.split is not None:
            raise ValueError("--split applies to --format label-folder only (the others write train and val)")
        if args.format != "paired" and (args.label_set is not None or args.label_format is not None):
            raise ValueError("--label-set and --label-format apply to --format paired only (the others use Cityscapes)")
        label_set = resolve_label_set(args.label_set) if args.format == "paired" else None
        bar = Progress(args.num + num_val, "writing scenes")

        def progress(done: int, total: int, name: str) -> None:
            bar.update_to(done, extra=name)

        if args.format == "label-folder":
            stems = write_label_folder(args.out, args.num, args.size, args.seed, progress=progress,
                                       split=args.split or "val")
        elif args.format == "cityscapes":
            stems = write_synthetic_city(args.out, args.num, num_val, args.size, args.seed,
                                         instances=not args.no_instances, progress=progress)
        else:
            stems = write_paired_dataset(args.out, label_set, args.num, num_val, args.size, args.seed,
                                         label_format=args.label_format or "colors", progress=progress)
    except (ValueError, OSError) as error:
        return cli_error(None, error, 1)
    bar.close()
    height, width = args.size
    counts = f"{args.split or 'val'} split" if args.format == "label-folder" else f"{args.num} train, {num_val} val"
    print(f"wrote {len(stems)} scenes ({counts}) at {height}x{width} to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
