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

from crn_tf.files import write_atomic
from crn_tf.images import save_image, to_uint8
from crn_tf.labels import LabelSet, classes_to_colors, onehot_to_classes

_GRID_NAME = re.compile(r"^epoch(\d+)_(.+)\.png$")


def colorize_layout(layout: np.ndarray, label_set: LabelSet) -> np.ndarray:
    """One-hot layout [..., H, W, C+1] -> uint8 colours [..., H, W, 3] (void black)."""
    return classes_to_colors(onehot_to_classes(layout), label_set)


def sample_rows(layouts: np.ndarray, fakes: np.ndarray, label_set: LabelSet,
                reals: np.ndarray | None = None, gap: int = 2) -> np.ndarray:
    """A uint8 grid: one row per sample, columns layout | reference (if given) | fake_0 .. fake_{k-1}.

    layouts [N, H, W, C+1], fakes [N, k, H, W, 3] (floats about 0..255), reals [N, H, W, 3].
    """
    layouts = np.asarray(layouts)
    fakes = np.asarray(fakes)
    count, k, height, width, _ = fakes.shape
    columns = 1 + (reals is not None) + k
    grid = np.full((count * (height + gap) - gap, columns * (width + gap) - gap, 3), 255, np.uint8)
    for row in range(count):
        tiles = [colorize_layout(layouts[row], label_set)]
        if reals is not None:
            tiles.append(to_uint8(reals[row]))
        tiles.extend(to_uint8(fakes[row, j]) for j in range(k))
        top = row * (height + gap)
        for column, tile in enumerate(tiles):
            left = column * (width + gap)
            grid[top : top + height, left : left + width] = tile
    return grid


def _plugin_metadata(plugin: str):
    from tensorflow.core.framework import summary_pb2

    metadata = summary_pb2.SummaryMetadata()
    metadata.plugin_data.plugin_name = plugin
    return metadata


def _write_images(tag: str, images: np.ndarray, step: int) -> None:
    """uint8 [n, H, W, 3] -> one TensorBoard image summary (the images plugin's [w, h, png...] tensor)."""
    import tensorflow as tf

    height, width = images.shape[1:3]
    encoded = [tf.io.encode_png(image) for image in images]
    tensor = tf.stack([tf.constant(str(width)), tf.constant(str(height))] + encoded)
    tf.summary.write(tag, tensor, step=step, metadata=_plugin_metadata("images"))


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
        self._writer = None

    @property
    def writer(self):
        if self._writer is None:
            import tensorflow as tf

            self._writer = tf.summary.create_file_writer(self.log_dir)
        return self._writer

    # --- TensorBoard ---------------------------------------------------------------------
    # Written with the core `tf.summary.write` and the scalars/images plugins' metadata, the
    # format `tf.summary.scalar/image` produce, so logging needs no `tensorboard` package
    # (only viewing them does: `pip install tensorboard; tensorboard --logdir RUN_DIR/logs`).
    def scalars(self, step: int, values: Mapping[str, float]) -> None:
        """Writes each value as a TensorBoard scalar at `step`."""
        if not self.enabled:
            return
        import tensorflow as tf

        with self.writer.as_default(step=step):
            for name, value in values.items():
                tf.summary.write(name, tf.constant(float(value), tf.float32), step=step,
                                 metadata=_plugin_metadata("scalars"))

    def images(self, step: int, layout: np.ndarray, fake: np.ndarray, real: np.ndarray | None = None) -> None:
        """One example as TensorBoard images: `samples/layout`, `samples/reference`, `samples/synthesized` (k)."""
        if not self.enabled:
            return
        with self.writer.as_default(step=step):
            _write_images("samples/layout", colorize_layout(layout, self.label_set)[None], step)
            if real is not None:
                _write_images("samples/reference", to_uint8(real)[None], step)
            _write_images("samples/synthesized", to_uint8(fake), step)

    def flush(self) -> None:
        if self.enabled and self._writer is not None:
            self._writer.flush()

    # --- sample grids and the page -------------------------------------------------------
    def save_grid(self, epoch: int, grid: np.ndarray, label: str = "val") -> str | None:
        """Writes `web/images/epoch{epoch:03d}_{label}.png` and regenerates `web/index.html`."""
        if not self.enabled:
            return None
        path = os.path.join(self.image_dir, f"epoch{epoch:03d}_{label}.png")
        save_image(path, grid)
        self.write_page()
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
        title = f"CRN training samples: {html.escape(os.path.basename(os.path.abspath(self.run_dir)))}"
        lines = [
            "<!DOCTYPE html>",
            "<html><head><meta charset='utf-8'>",
            f"<title>{title}</title>",
            "<style>body{font-family:sans-serif;margin:1.5em}img{max-width:100%}h2{font-size:1.1em}</style>",
            "</head><body>",
            f"<h1>{title}</h1>",
            "<p>Each row: layout | reference photo | the synthesized images. Newest epoch first.</p>",
        ]
        for epoch, label, name in entries:
            lines.append(f"<h2>epoch {epoch} ({html.escape(label)})</h2>")
            lines.append(f"<img src='images/{html.escape(name)}' alt='epoch {epoch} {html.escape(label)}'>")
        lines.append("</body></html>")
        return write_atomic(os.path.join(self.web_dir, "index.html"), "\n".join(lines) + "\n")
