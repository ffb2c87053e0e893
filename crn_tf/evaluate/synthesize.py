"""The images to score: synthesized ones (from a checkpoint, or an existing folder) and the real ones.

Both are written as `<stem>.png` at the evaluation size, so a folder is scored, cached and shown
in the human study by file name. Writing skips files that already exist, so an interrupted run
resumes where it stopped.
"""
from __future__ import annotations

import os
from typing import Sequence

import numpy as np
from PIL import Image

from crn_tf.core.images import save_image
from crn_tf.core.progress import Progress
from crn_tf.data.resize import MATLAB_BICUBIC, imresize_uint8
from crn_tf.data.scan import ScannedExamples
from crn_tf.data.sources import Example
from crn_tf.synthesis import image_names as synthesized_names  # noqa: F401  (part of this module's API)
from crn_tf.synthesis import synthesize_to_folder

REAL_RESIZE = {"bicubic": Image.Resampling.BICUBIC, "lanczos": Image.Resampling.LANCZOS,
               "bilinear": Image.Resampling.BILINEAR, "area": Image.Resampling.BOX, MATLAB_BICUBIC: None}
"""--real-resize choices: PIL filters, and MATLAB's bicubic imresize (the original's training photos)."""


def synthesize_split(
    model,
    examples: Sequence[Example] | ScannedExamples,
    out_dir: str | os.PathLike,
    label_set=None,
    batch_size: int = 4,
    image_index: int | str = 0,
    progress: bool = True,
    low_memory: bool | str = "auto",
) -> list[str]:
    """Runs `model` over `examples` and writes `<stem>.png` into `out_dir` (`crn_tf.synthesis`).

    `examples`: the scanned layouts (`scan_dataset(...).usable()`, read with their label set),
    or a list of `crn_tf.data.Example`s, whose label headers are scanned here with `label_set`
    (default: the model's). Layouts are read at the
    model's size, `batch_size` per call, through `crn_tf.nn.inference.synthesize` (`low_memory`:
    auto / on / off, its banded pass for large outputs). `image_index`: the image j written as
    `<stem>.png`, or "all" (crn-demo's names). Layouts whose files exist are skipped (resume).
    Returns the written or existing paths, in example order. A layout that cannot be read
    raises a DataError naming its file.
    """
    from crn_tf.data import scan_dataset

    label_set = label_set or model.label_set
    if not isinstance(examples, ScannedExamples):
        examples = scan_dataset(list(examples), label_set=label_set, images="optional", check_photos=False).usable()
    return synthesize_to_folder(model, examples, out_dir, batch_size=batch_size, image_index=image_index,
                                resume=True, low_memory=low_memory, progress=progress)


def existing_synthesized(examples: Sequence, folder: str | os.PathLike) -> list[str]:
    """`<folder>/<stem>.png` (or .jpg) for every example; an error lists the missing stems."""
    folder = os.fspath(folder)
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"{folder}: synthesized-image folder not found")
    paths, missing = [], []
    for example in examples:
        found = [os.path.join(folder, example.stem + ext) for ext in (".png", ".jpg", ".jpeg")]
        found = [p for p in found if os.path.exists(p)]
        if found:
            paths.append(found[0])
        else:
            missing.append(example.stem)
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise FileNotFoundError(f"{folder}: no synthesized image for {len(missing)} of {len(examples)} layouts: {shown} "
                                "(expected <stem>.png)")
    return paths


def image_size(path: str) -> tuple[int, int]:
    """(height, width) of an image file, from its header."""
    with Image.open(path) as image:
        return image.height, image.width


def prepare_real(
    examples: Sequence,
    out_dir: str | os.PathLike,
    size: tuple[int, int],
    method: str = "bicubic",
    progress: bool = True,
) -> list[str]:
    """The examples' photos resized to `size` as `<out_dir>/<stem>.png` (existing files kept).

    `method` is a PIL filter name: "bicubic" (default; SPADE's data loader resizes Cityscapes
    photos with PIL bicubic), "lanczos", "bilinear" or "area" (box), all antialiased; or
    "matlab-bicubic": MATLAB's `imresize`, as the original's training photos were made.
    """
    from crn_tf.data import read_image

    if method not in REAL_RESIZE:
        raise ValueError(f"real-image resize must be one of {sorted(REAL_RESIZE)}, got {method!r}")
    out_dir = os.fspath(out_dir)
    os.makedirs(out_dir, exist_ok=True)
    bar = Progress(len(examples), "real images", enabled=progress)
    paths = []
    for example in examples:
        if example.image_path is None:
            raise FileNotFoundError(f"{example.label_path}: no real photo for this layout (needed for FID)")
        path = os.path.join(out_dir, f"{example.stem}.png")
        if not os.path.exists(path):
            photo = read_image(example.image_path)
            if photo.shape[:2] != tuple(size) and method == MATLAB_BICUBIC:
                photo = imresize_uint8(photo, size)
            elif photo.shape[:2] != tuple(size):
                photo = np.asarray(Image.fromarray(photo).resize((size[1], size[0]), REAL_RESIZE[method]))
            save_image(path, photo)
        paths.append(path)
        bar.update()
    bar.close()
    return paths
