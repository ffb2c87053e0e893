"""What a run shows: TensorBoard scalars and images, sample grids, and an HTML page of them.

As SPADE's `Visualizer`, one object owns the run's visual outputs (chief worker only):
- `RUN_DIR/logs/train/`: TensorBoard scalars (loss, per-layer terms, lr, images/s) and images
  (the layout colourised, the reference photo, the k synthesized images);
- `RUN_DIR/web/images/epochNNN_<label>.png`: one grid per epoch, a row per sample
  (layout | reference | k synthesized), and `RUN_DIR/web/index.html` listing them, newest first.
"""
from __future__ import annotations

import html
import os
import re
from typing import Mapping

import numpy as np

from crn_tf.core.files import WriteError
from crn_tf.core.images import make_grid, save_image, to_uint8
from crn_tf.core.page import url_attribute, write_document
from crn_tf.labels import LabelSet, classes_to_colors
from crn_tf.training.events import EventFile

_GRID_NAME = re.compile(r"^epoch(\d+)_(.+)\.png$")
_PAGE_STYLE = "body{font-family:sans-serif;margin:1.5em}img{max-width:100%}h2{font-size:1.1em}"


def sample_rows(classes: np.ndarray, fakes: np.ndarray, label_set: LabelSet,
                reals: np.ndarray | None = None, gap: int = 2) -> np.ndarray:
    """A uint8 grid: one row per sample, columns layout | reference (if given) | fake_0 .. fake_{k-1}.

    classes: the layouts' class ids [N, H, W] (255 = void, drawn black); fakes [N, k, H, W, 3]
    (floats about 0..255); reals [N, H, W, 3].
    """
    classes = np.asarray(classes)
    fakes = np.asarray(fakes)
    count, k = fakes.shape[:2]
    tiles = []
    for row in range(count):
        tiles.append(classes_to_colors(classes[row], label_set))
        if reals is not None:
            tiles.append(to_uint8(reals[row]))
        tiles.extend(to_uint8(fakes[row]))
    return make_grid(np.stack(tiles), columns=1 + (reals is not None) + k, gap=gap, fill=255)


def _image_tensor(images: np.ndarray) -> np.ndarray:
    """uint8 [n, H, W, 3] -> the images plugin's tensor: [width, height, png_0, ..., png_{n-1}] as bytes."""
    import tensorflow as tf

    height, width = images.shape[1:3]
    encoded = [tf.io.encode_png(image).numpy() for image in images]
    return np.array([str(width).encode(), str(height).encode()] + encoded, dtype=object)


class Visualizer:
    """TensorBoard writer, per-epoch sample grids and their HTML page for one run directory.

    Args:
        run_dir: the run directory.
        label_set: colours for the layouts.
        enabled: False on non-chief workers: every method is then a no-op.
    """

    def __init__(self, run_dir: str | os.PathLike, label_set: LabelSet, enabled: bool = True):
        self.run_dir = os.fspath(run_dir)
        self.label_set = label_set
        self.enabled = enabled
        self.log_dir = os.path.join(self.run_dir, "logs", "train")
        self.web_dir = os.path.join(self.run_dir, "web")
        self.image_dir = os.path.join(self.web_dir, "images")
        self.events = EventFile(self.log_dir)

    # --- TensorBoard ---------------------------------------------------------------------
    # The scalars and images plugins' format, as `tf.summary.scalar/image` write it, so logging
    # needs no `tensorboard` package (only viewing does: `pip install tensorboard;
    # tensorboard --logdir RUN_DIR/logs`). Written by `EventFile`, which sees a full disk.
    def scalars(self, step: int, values: Mapping[str, float]) -> None:
        """Writes each value as a TensorBoard scalar at `step`."""
        if not self.enabled:
            return
        self.events.write(step, {name: (np.float32(value), "scalars") for name, value in values.items()})

    def images(self, step: int, classes: np.ndarray, fake: np.ndarray, real: np.ndarray | None = None) -> None:
        """One example as TensorBoard images: `samples/layout` (from its class ids [H, W]),
        `samples/reference`, `samples/synthesized` (k)."""
        if not self.enabled:
            return
        values = {"samples/layout": (_image_tensor(classes_to_colors(classes, self.label_set)[None]), "images")}
        if real is not None:
            values["samples/reference"] = (_image_tensor(to_uint8(real)[None]), "images")
        values["samples/synthesized"] = (_image_tensor(to_uint8(fake)), "images")
        self.events.write(step, values)

    def resumed(self, step: int) -> None:
        """A resumed run: TensorBoard forgets what the killed run logged after `step`."""
        if self.enabled:
            self.events.session_start(step)

    def flush(self) -> None:
        """Every write is flushed already; this closes the events file (a later write opens a new one)."""
        if self.enabled:
            self.events.close()

    # --- sample grids and the page -------------------------------------------------------
    def save_grid(self, epoch: int, grid: np.ndarray, label: str = "val", step: int | None = None) -> str | None:
        """Writes `web/images/epoch{epoch:03d}_{label}.png` and regenerates `web/index.html`.

        A failed write raises WriteError naming `step`."""
        if not self.enabled:
            return None
        path = os.path.join(self.image_dir, f"epoch{epoch:03d}_{label}.png")
        try:
            save_image(path, grid)
            self.write_page()
        except WriteError as error:
            error.step = step
            raise
        return path

    def write_page(self) -> str:
        """Regenerates `web/index.html` from the grids on disk (so a resumed run keeps old epochs)."""
        entries = []
        if os.path.isdir(self.image_dir):
            for name in os.listdir(self.image_dir):
                match = _GRID_NAME.match(name)
                if match:
                    entries.append((int(match.group(1)), match.group(2), name))
        entries.sort(key=lambda e: (-e[0], e[1]))
        title = f"CRN training samples: {os.path.basename(os.path.abspath(self.run_dir))}"
        body = ["<p>Each row: layout | reference photo | the synthesized images. Newest epoch first.</p>"]
        for epoch, label, name in entries:
            body.append(f"<h2>epoch {epoch} ({html.escape(label)})</h2>")
            body.append(f'<img src="{url_attribute("images/" + name)}" alt="epoch {epoch} {html.escape(label)}">')
        return write_document(os.path.join(self.web_dir, "index.html"), title, body, style=_PAGE_STYLE)
