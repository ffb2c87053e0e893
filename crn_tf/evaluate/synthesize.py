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

from crn_tf.core.images import image_file_name, save_image, to_uint8
from crn_tf.core.progress import Progress
from crn_tf.data.resize import MATLAB_BICUBIC, imresize_uint8

REAL_RESIZE = {"bicubic": Image.Resampling.BICUBIC, "lanczos": Image.Resampling.LANCZOS,
               "bilinear": Image.Resampling.BILINEAR, "area": Image.Resampling.BOX, MATLAB_BICUBIC: None}
"""--real-resize choices: PIL filters, and MATLAB's bicubic imresize (the original's training photos)."""


def synthesized_names(stem: str, num_images: int, image_index: int | str) -> list[tuple[int, str]]:
    """(image j, file name) pairs written per layout: `<stem>.png` for image 0, `<stem>_<j>.png` after.

    `image_index` is one j, or "all" for every image of a k-image model (crn-demo's naming).
    """
    if image_index == "all":
        return [(j, image_file_name(stem, j)) for j in range(num_images)]
    j = int(image_index)
    if not 0 <= j < num_images:
        raise ValueError(f"image index {j} is outside 0..{num_images - 1} (the model makes {num_images} images)")
    return [(j, image_file_name(stem, 0))]  # the scored image is read as <stem>.png


def synthesize_split(
    model,
    examples: Sequence,
    out_dir: str | os.PathLike,
    label_set=None,
    batch_size: int = 4,
    image_index: int | str = 0,
    progress: bool = True,
    low_memory: bool | str = "auto",
) -> list[str]:
    """Runs `model` over `examples` (crn_tf.data.Example) and writes `<stem>.png` into `out_dir`.

    Layouts are read at the model's size, `batch_size` per call, through
    `crn_tf.nn.inference.synthesize` (`low_memory`: auto / on / off, its banded pass for large outputs).
    Layouts whose files exist are skipped (resume). Returns the written or existing paths, in
    example order.
    """
    from crn_tf.data import make_layout_dataset
    from crn_tf.nn.inference import synthesize

    if batch_size < 1:
        raise ValueError(f"batch size must be >= 1, got {batch_size}")
    out_dir = os.fspath(out_dir)
    os.makedirs(out_dir, exist_ok=True)
    num_images = int(model.num_images)
    label_set = label_set or model.label_set
    names = {e.stem: synthesized_names(e.stem, num_images, image_index) for e in examples}
    todo = [e for e in examples if not all(os.path.exists(os.path.join(out_dir, n)) for _, n in names[e.stem])]
    bar = Progress(len(examples), "synthesizing", enabled=progress)
    bar.update(len(examples) - len(todo))
    if todo:
        dataset = make_layout_dataset(list(todo), tuple(model.output_size), label_set, batch_size)
        for layout, _, index in dataset:
            images = to_uint8(synthesize(model, layout, low_memory=low_memory).numpy())  # [B, k, H, W, 3]
            for item, example_index in enumerate(np.asarray(index).tolist()):
                for j, name in names[todo[example_index].stem]:
                    save_image(os.path.join(out_dir, name), images[item, j])
            bar.update(len(images))
    bar.close()
    return [os.path.join(out_dir, n) for e in examples for _, n in names[e.stem]]


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
