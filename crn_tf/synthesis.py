"""Layouts in, pictures in a folder out: the one synthesize-and-write loop of demo.py and crn-evaluate.

Per layout, image j of a k-image model is `<stem>.png` (j = 0) or `<stem>_<j>.png` (`image_names`);
with `grid` and k > 1 the k images are also tiled row-major into `<stem>_grid.png` (3x3 for k = 9,
as the original's 256p demo). Files are written atomically (`crn_tf.core.images.save_image`);
`resume` skips the layouts whose files all exist, so an interrupted run continues where it
stopped. A layout that cannot be read stops the run with a DataError naming its file
(`crn_tf.data.pipeline.layout_batches`).
"""
from __future__ import annotations

import os
from typing import Callable, Sequence

import numpy as np
from PIL import Image

from crn_tf.core.images import image_file_name, make_grid, save_image, to_uint8
from crn_tf.core.progress import Progress
from crn_tf.data.readers import DataError
from crn_tf.data.scan import ScannedExamples
from crn_tf.data.sources import Example

LayoutDone = Callable[[Example, np.ndarray, tuple[int, int]], None]
"""Called after a layout's images are written: (example, its class ids uint8 [H, W] at the
model's size, 255 = void, the (height, width) the images were written at)."""


def image_names(stem: str, num_images: int, image_index: int | str = "all") -> list[tuple[int, str]]:
    """(image j, file name) pairs written per layout: `<stem>.png` for image 0, `<stem>_<j>.png` after.

    `image_index` is "all" (every image of a k-image model, crn-demo's naming) or one j, then
    written as `<stem>.png` (the image crn-evaluate scores).
    """
    if image_index == "all":
        return [(j, image_file_name(stem, j)) for j in range(num_images)]
    j = int(image_index)
    if not 0 <= j < num_images:
        raise ValueError(f"image index {j} is outside 0..{num_images - 1} (the model makes {num_images} images)")
    return [(j, image_file_name(stem, 0))]


def writes_grid(num_images: int, image_index: int | str = "all", grid: bool = True) -> bool:
    """True when a layout also gets `<stem>_grid.png`: a grid asked for, every image written, k > 1."""
    return grid and image_index == "all" and num_images > 1


def output_names(stem: str, num_images: int, image_index: int | str = "all", grid: bool = True) -> list[str]:
    """File names written for one layout: `image_names`, then `<stem>_grid.png` when `writes_grid`."""
    names = [name for _, name in image_names(stem, num_images, image_index)]
    return names + [f"{stem}_grid.png"] if writes_grid(num_images, image_index, grid) else names


def check_output_names(stems: Sequence[str], names: Sequence[Sequence[str]]) -> None:
    """Raises DataError when two inputs would write the same output file (e.g. stems "a" and "a_1")."""
    owner: dict[str, str] = {}
    for stem, files in zip(stems, names):
        for name in files:
            if name in owner:
                raise DataError(f"inputs {owner[name]!r} and {stem!r} would both write {name}; rename one of them")
            owner[name] = stem


def resize_image(image: np.ndarray, size: tuple[int, int], nearest: bool = False) -> np.ndarray:
    """uint8 [h, w, 3] -> [H, W, 3] (size = (H, W)); Lanczos for synthesized images, nearest for layouts."""
    if image.shape[:2] == tuple(size):
        return image
    method = Image.Resampling.NEAREST if nearest else Image.Resampling.LANCZOS
    return np.asarray(Image.fromarray(image).resize((size[1], size[0]), method))


def _write_layout(out_dir: str, stem: str, images: np.ndarray, size: tuple[int, int], image_index: int | str,
                  grid: bool) -> None:
    """Writes one layout's images (uint8 [k, H, W, 3]) at `size`, and its grid when asked for."""
    outputs = {j: resize_image(images[j], size) for j, _ in image_names(stem, len(images), image_index)}
    for j, name in image_names(stem, len(images), image_index):
        save_image(os.path.join(out_dir, name), outputs[j])
    if writes_grid(len(images), image_index, grid):
        tiles = np.stack([outputs[j] for j in sorted(outputs)])
        save_image(os.path.join(out_dir, f"{stem}_grid.png"), make_grid(tiles))


def synthesize_to_folder(
    model,
    layouts: ScannedExamples,
    out_dir: str | os.PathLike,
    *,
    batch_size: int = 4,
    image_index: int | str = "all",
    grid: bool = False,
    keep_size: bool = False,
    resume: bool = False,
    low_memory: bool | str = False,
    progress: bool = True,
    on_layout: LayoutDone | None = None,
) -> list[str]:
    """Runs `model` on every layout and writes its images into `out_dir`; returns the paths, in example order.

    Args:
        model: a CRN (e.g. from `crn_tf.weights.checkpoint.load_model`).
        layouts: the scanned layouts (`crn_tf.data.scan_dataset(...).usable()`), read at the
            model's size with the scan's label set.
        out_dir: the output folder (created).
        batch_size: layouts per model call.
        image_index: "all" images of each layout, or the one j written as `<stem>.png`.
        grid: also write `<stem>_grid.png` (k > 1, every image).
        keep_size: write each layout's images at its label file's own size (Lanczos), else at
            the model's size.
        resume: skip the layouts whose files all exist (their paths are still returned).
        low_memory: `crn_tf.nn.inference.synthesize`'s choice: bool or "on" / "off" / "auto".
        progress: draw a progress bar over the layouts on stderr.
        on_layout: called after each layout is written (`LayoutDone`), e.g. for a page.

    Raises DataError naming the file for a layout that cannot be decoded, or when two
    layouts would write the same file.
    """
    from crn_tf.data.pipeline import layout_batches
    from crn_tf.nn.inference import synthesize

    if batch_size < 1:
        raise ValueError(f"batch size must be >= 1, got {batch_size}")
    out_dir = os.fspath(out_dir)
    num_images = int(model.num_images)
    names = [output_names(e.stem, num_images, image_index, grid) for e in layouts.examples]
    check_output_names([e.stem for e in layouts.examples], names)
    os.makedirs(out_dir, exist_ok=True)
    todo = [i for i, files in enumerate(names)
            if not (resume and all(os.path.exists(os.path.join(out_dir, name)) for name in files))]
    bar = Progress(len(layouts), "synthesizing", enabled=progress)
    if len(todo) < len(layouts):
        bar.update(len(layouts) - len(todo))
    if todo:
        for batch in layout_batches(layouts.take(todo), tuple(model.output_size), batch_size):
            images = to_uint8(synthesize(model, batch.layout, low_memory=low_memory).numpy())  # [B, k, H, W, 3]
            for item, (example, position) in enumerate(zip(batch.examples, batch.indices)):
                size = tuple(layouts.sizes[todo[position]]) if keep_size else tuple(model.output_size)
                _write_layout(out_dir, example.stem, images[item], size, image_index, grid)
                if on_layout is not None:
                    on_layout(example, batch.classes[item], size)
                bar.update()
    bar.close()
    return [os.path.join(out_dir, name) for files in names for name in files]
