"""Rendering a street scene: a planned scene drawn far to near into a photo and its label map.

The camera and scene are planned from the seed (`plan.py`) before any pixel exists, so one seed
gives the same layout at every size; only the pixel-scale grain depends on the size.
"""
from __future__ import annotations

import numpy as np
from PIL import Image, ImageFilter

from crn_tf.core.sizes import parse_size
from crn_tf.synthetic.canvas import Canvas
from crn_tf.synthetic.ground import draw_ground, draw_sides, draw_sky
from crn_tf.synthetic.objects import draw_hood
from crn_tf.synthetic.plan import Scene, plan_scene


# --- the whole picture -------------------------------------------------------------------------
def _finish(c: Canvas, s: Scene) -> np.ndarray:
    """Aerial haze, exposure, tint, vignetting, sensor noise and a touch of lens blur -> uint8."""
    haze = 1.0 - np.exp(-c.depth / s.haze)  # sky has depth 0: no haze
    vignette = s.exposure * (1.0 - 0.25 * ((c.u_all - 1.0) ** 2 * 0.5 + (c.v_all - 0.5) ** 2))
    keep = (1.0 - haze) * vignette
    photo = c.photo * keep[..., None]
    photo += (s.sky_bottom * 0.95) * (haze * vignette)[..., None]
    photo *= s.tint
    photo += 2.0 * c.grain[..., None]
    image = np.clip(photo, 0, 255).astype(np.uint8)
    radius = 0.22 * c.height / 256.0
    if radius >= 0.3:
        image = np.asarray(Image.fromarray(image).filter(ImageFilter.GaussianBlur(radius)))
    return image


def render(scene: Scene, height: int, width: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Draws a planned scene: (photo uint8 [H, W, 3], label ids uint8 [H, W], instance ids int32 [H, W])."""
    canvas = Canvas(height, width, scene.camera, np.random.default_rng([int(seed), 0xA015E]))
    draw_sky(canvas, scene)
    draw_ground(canvas, scene)
    draw_sides(canvas, scene)
    for _, draw in scene.objects:
        draw(canvas, scene)
    draw_hood(canvas, scene)
    photo = _finish(canvas, scene)
    instances = np.where(canvas.instances > 0, canvas.instances, canvas.ids.astype(np.int32))
    return photo, canvas.ids, instances


MIN_SIZE = 8  # smallest height and width a scene is drawn at


def render_scene(size: tuple[int, int] = (256, 512), seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """One street scene: (photo uint8 [H, W, 3], Cityscapes label ids uint8 [H, W]).

    Deterministic per seed; the layout depends on the seed only, so one seed gives the same
    scene at every size (only pixel grain differs).
    """
    photo, label_ids, _ = render_scene_full(size, seed)
    return photo, label_ids


def render_scene_full(size: tuple[int, int], seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Like `render_scene`, plus Cityscapes instance ids (int32: id * 1000 + n for objects, else id)."""
    height, width = parse_size(size, MIN_SIZE)
    return render(plan_scene(seed), height, width, seed)
