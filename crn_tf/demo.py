"""Synthesize photos from semantic layouts with a trained CRN, and write them with an HTML page.

`python demo.py` (or `crn-demo`) with no arguments runs the small checkpoint shipped in
`checkpoints/` on the sample layouts in `data/samples/128x256/` and writes `results/demo/`.

Per input stem the output folder gets `<stem>.png` (the first image) and, when the model makes
k > 1 images, `<stem>_1.png` ... `<stem>_{k-1}.png` and `<stem>_grid.png` (3x3 for k = 9,
row-major, as the original's 256p demo). `index.html` shows per layout the colourised layout,
the synthesized images and the real photo when the input has one (files in `page/`).
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from typing import Sequence

import numpy as np

from crn_tf.core.images import make_grid, save_image
from crn_tf.core.logs import cli_error, cli_main
from crn_tf.core.quiet import parse_cli
from crn_tf.data.resize import (
    DEFAULT_PHOTO_RESIZE,
    PHOTO_RESIZE_METHODS,
    check_photo_resize,
    resize_photo_array,
)
from crn_tf.labels import LabelSet, classes_to_colors
from crn_tf.nn.memory import add_low_memory_flag, choose_low_memory
from crn_tf.synthesis import (  # noqa: F401  (output_names: part of this module's API)
    image_names,
    output_names,
    resize_image,
    synthesize_to_folder,
)

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_CHECKPOINT = os.path.join(REPO_ROOT, "checkpoints", "synthetic_city_128x256")
DEFAULT_LABELS = os.path.join(REPO_ROOT, "data", "samples", "128x256")
DEFAULT_OUT = os.path.join("results", "demo")
PAGE_DIR = "page"
"""Sub-folder of the output holding the page's colourised layouts and real photos."""


@dataclasses.dataclass
class DemoResult:
    """What `synthesize_folder` wrote."""

    out_dir: str
    page: str
    num_layouts: int
    num_images: int
    files: list[str]
    seconds: float
    low_memory: str = ""  # which forward pass ran, and why (crn_tf.nn.memory.choose_low_memory)
    entries: list = dataclasses.field(default_factory=list)  # the page's rows (core.page.PageEntry)


def write_overview(result: DemoResult, path: str | os.PathLike, images_per_layout: int = 3) -> str:
    """One picture of what the demo wrote: a row per layout of its colourised layout, its first
    `images_per_layout` images and the real photo where there is one (the README's results
    picture), read back from `result.out_dir` and written atomically: a JPEG (quality 85) when
    `path` ends in .jpg or .jpeg, else a PNG."""
    from PIL import Image

    from crn_tf.core.files import atomic_path

    if not result.entries:
        raise ValueError(f"{result.out_dir}: no synthesized images to show")
    rows = []
    for entry in result.entries:
        names = [entry.layout, *entry.images[:images_per_layout]] + ([entry.reference] if entry.reference else [])
        rows.append([np.asarray(Image.open(os.path.join(result.out_dir, name)).convert("RGB")) for name in names])
    columns = max(len(row) for row in rows)
    blank = np.full_like(rows[0][0], 255)
    grid = make_grid([picture for row in rows for picture in row + [blank] * (columns - len(row))], columns=columns)
    jpeg = os.fspath(path).lower().endswith((".jpg", ".jpeg"))
    with atomic_path(path) as temporary:
        if jpeg:
            Image.fromarray(grid).save(temporary, format="JPEG", quality=85, optimize=True)
        else:
            Image.fromarray(grid).save(temporary, format="PNG", optimize=True)
    return os.fspath(path)


def _training_notes(info: dict) -> list[str]:
    """Page lines about how the checkpoint was trained, from its config's `extra` (if recorded)."""
    lines = []
    options = info.get("options") or {}
    if "step" in info:
        epochs = f" ({info['epochs']} epoch{'' if info['epochs'] == 1 else 's'})" if "epochs" in info else ""
        after = f", initialised from {options['init_from']}" if options.get("init_from") else ""
        lines.append(f"trained for {info['step']} steps{epochs}{after}")
    if options.get("vgg_weights") == "random":
        lines.append("note: trained with a RANDOM-weight VGG-19 loss (the paper's loss needs ImageNet VGG-19 "
                     "weights), so expect the layout in plausible colours, soft and flat, not photographs")
    return lines


def synthesize_folder(
    model,
    labels,
    out_dir: str | os.PathLike,
    *,
    split: str = "val",
    images_dir: str | os.PathLike | None = None,
    batch_size: int = 4,
    keep_size: bool = False,
    low_memory: bool | str = "auto",
    label_set: LabelSet | None = None,
    progress: bool = True,
    title: str | None = None,
    photo_resize: str = DEFAULT_PHOTO_RESIZE,
) -> DemoResult:
    """Runs `model` on every layout of `labels` and writes the images and `index.html` into `out_dir`.

    Args:
        model: a CRN (e.g. from `crn_tf.weights.checkpoint.load_model`).
        labels: a label folder (colour PNGs), a Cityscapes root (its `gtFine/<split>`), a paired
            folder (`labels/` + `images/`), a single label file, a glob, or a list of files.
        out_dir: the output folder (created).
        split: the Cityscapes / paired split to read. Defaults to "val".
        images_dir: the real photos for a label folder, file or glob (optional).
        batch_size: layouts per model call.
        keep_size: resize each output back to its label map's size (otherwise the model's size).
        low_memory: "auto" (default), "on" / True or "off" / False: the banded low-memory
            forward pass (`crn_tf.nn.inference`), same output; "auto" bands when the plain pass would
            not fit the memory available (`crn_tf.nn.memory`).
        label_set: the classes of the label files; defaults to the model's (`model.label_set`).
        progress: draw a progress bar over the files on stderr.
        title: the page title.
        photo_resize: how the real photos shown beside the results are resized: "matlab-bicubic"
            (default: as the original's training photos were made, `crn_tf.data.resize`) or "area".

    Raises crn_tf.data.DataError naming the file for missing, unreadable or unknown-valued inputs.
    """
    from crn_tf.core.page import PageEntry, write_page
    from crn_tf.data import read_image, scan_dataset

    if batch_size < 1:
        raise ValueError(f"batch size must be >= 1, got {batch_size}")
    check_photo_resize(photo_resize)
    start = time.time()
    label_set = label_set or getattr(model, "label_set", None)
    if label_set is None:
        from crn_tf.labels import CITYSCAPES as label_set
    out_dir = os.fspath(out_dir)
    # Photos are optional and only shown on the page, so they are found but not probed: a photo
    # without a label, or of another size than its label, is no problem here.
    layouts = scan_dataset(labels, split=split, label_set=label_set, images="optional", images_dir=images_dir,
                           check_photos=False).usable()
    banded, reason = choose_low_memory(low_memory, model, min(batch_size, max(1, len(layouts))))
    num_images = int(model.num_images)
    entries: list[PageEntry] = []

    def add_to_page(example, classes: np.ndarray, size: tuple[int, int]) -> None:
        """Writes the page's colourised layout (from the class ids) and real photo of one layout."""
        os.makedirs(os.path.join(out_dir, PAGE_DIR), exist_ok=True)
        layout_name = os.path.join(PAGE_DIR, f"{example.stem}_layout.png")
        save_image(os.path.join(out_dir, layout_name), resize_image(classes_to_colors(classes, label_set), size,
                                                                     nearest=True))
        reference_name = None
        if example.image_path:
            reference_name = os.path.join(PAGE_DIR, f"{example.stem}_real.jpg")
            photo = resize_photo_array(read_image(example.image_path), size, photo_resize)
            save_image(os.path.join(out_dir, reference_name), photo, quality=90)
        images = tuple(name for _, name in image_names(example.stem, num_images))
        entries.append(PageEntry(example.stem, layout_name, images, reference_name))

    written = synthesize_to_folder(model, layouts, out_dir, batch_size=batch_size, grid=True, keep_size=keep_size,
                                   low_memory=banded, progress=progress, on_layout=add_to_page)

    entries.sort(key=lambda e: e.stem)
    height, width = model.output_size
    lines = [
        f"{len(entries)} layout(s) from {labels if isinstance(labels, (str, os.PathLike)) else 'a list of files'}",
        f"model: {height}x{width}, k = {num_images} image(s) per layout, {model.num_classes} classes ({label_set.name})",
    ] + _training_notes(getattr(model, "checkpoint_info", None) or {})
    page = write_page(os.path.join(out_dir, "index.html"), entries, title=title or "CRN synthesis", info=lines)
    return DemoResult(out_dir, page, len(entries), num_images, written, time.time() - start,
                      f"{'banded low-memory' if banded else 'plain'} pass ({reason})", entries)


# === Command line ===
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="crn-demo",
        description="Synthesize photos from semantic layouts with a trained CRN. With no arguments, runs the "
        "small checkpoint shipped in checkpoints/ on the sample layouts in data/samples/128x256/.",
    )
    parser.add_argument("--checkpoint", default=DEFAULT_CHECKPOINT,
                        help="checkpoint directory, training run directory (uses its model/), or a name of "
                             "the authors' weights (authors-256p, ...: downloaded by crn_tf.weights.download if missing) "
                             "(default: %(default)s)")
    parser.add_argument("--labels", default=DEFAULT_LABELS,
                        help="label folder (colour PNGs), Cityscapes root (reads gtFine/<split>), folder with "
                             "labels/ and images/, a single label file, or a quoted glob (default: %(default)s)")
    parser.add_argument("--out", default=DEFAULT_OUT, help="output folder (default: %(default)s)")
    parser.add_argument("--images", default=None,
                        help="folder of real photos (same stems) to show beside a label folder, file or glob")
    parser.add_argument("--split", default="val", choices=("train", "val", "test"),
                        help="split of a Cityscapes root or paired folder (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=4, help="layouts per model call (default: %(default)s)")
    parser.add_argument("--keep-size", action="store_true",
                        help="resize each output back to its label map's size (default: the model's size)")
    parser.add_argument("--mixed-precision", choices=("off", "bf16"), default="off",
                        help="bf16: run the network in bfloat16 (faster on CPUs/TPUs with bf16 units; output "
                             "conv stays float32). Default: off (float32, as the original)")
    add_low_memory_flag(parser, "compute the large modules in row bands: the same images in far less memory, "
                                "in about 1.2x the time (1024p on small machines); auto bands when the plain pass "
                                "would not fit the memory available")
    parser.add_argument("--photo-resize", choices=PHOTO_RESIZE_METHODS, default=DEFAULT_PHOTO_RESIZE,
                        help="how the real photos shown on the page are resized: matlab-bicubic (as the original's "
                             "training photos) or area (default: %(default)s)")
    parser.add_argument("--overview", metavar="FILE",
                        help="also write one picture of the results: per layout its layout, first three images "
                             "and real photo (the README's results picture); .jpg/.jpeg for a JPEG, else PNG")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def _one_line(error: Exception) -> str:
    """An error's message; a header with a single listed problem is joined onto one line."""
    lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
    if len(lines) == 2:
        return f"{lines[1]}"
    return "\n  ".join(lines)


@cli_main
def main(argv: Sequence[str] | None = None) -> int:
    args = parse_cli(build_parser, argv)
    if args.batch_size < 1:
        return cli_error("crn-demo", f"--batch-size must be >= 1, got {args.batch_size}", 2)
    from crn_tf.core.precision import get_precision
    from crn_tf.data import DataError
    from crn_tf.labels import LabelError
    from crn_tf.weights.checkpoint import CheckpointError, load_model
    from crn_tf.weights.download import resolve_checkpoint

    try:
        if args.checkpoint == DEFAULT_CHECKPOINT and not os.path.isdir(DEFAULT_CHECKPOINT):
            raise CheckpointError(
                f"{DEFAULT_CHECKPOINT}: the demo checkpoint is missing (it ships with the git repository); "
                "pass --checkpoint DIR"
            )
        model = load_model(resolve_checkpoint(args.checkpoint), dtype=get_precision(args.mixed_precision).inference_policy)
        result = synthesize_folder(
            model,
            args.labels,
            args.out,
            split=args.split,
            images_dir=args.images,
            batch_size=args.batch_size,
            keep_size=args.keep_size,
            low_memory=args.low_memory,
            progress=not args.no_progress,
            photo_resize=args.photo_resize,
        )
    except (CheckpointError, DataError, LabelError) as error:
        return cli_error("crn-demo", _one_line(error), 1)
    print(
        f"wrote {len(result.files)} image(s) for {result.num_layouts} layout(s) "
        f"(k = {result.num_images}) to {result.out_dir} in {result.seconds:.1f} s"
    )
    print(result.low_memory)
    if args.overview:
        print(f"overview: {write_overview(result, args.overview)}")
    print(f"open {result.page}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
