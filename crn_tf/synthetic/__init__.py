"""The synthetic city: procedural street scenes (photo + Cityscapes labels) written as a dataset.

Cityscapes cannot be downloaded here, so tests, the default training run and the demo use these
scenes. `plan` lays a scene out in world metres from its seed, `canvas` is the drawing surface
and camera, `ground` and `objects` draw it far to near, `render` finishes the photo, and
`writer` writes scenes as a Cityscapes tree, a paired dataset or a label folder
(`python -m crn_tf.synthetic`, docs/synthetic.md).
"""
from crn_tf.synthetic.render import render_scene, render_scene_full
from crn_tf.synthetic.writer import (
    CITYSCAPES_ID_COLORS,
    label_ids_to_colors,
    scene_seed,
    write_label_folder,
    write_paired_dataset,
    write_synthetic_city,
)

__all__ = [
    "CITYSCAPES_ID_COLORS",
    "label_ids_to_colors",
    "render_scene",
    "render_scene_full",
    "scene_seed",
    "write_label_folder",
    "write_paired_dataset",
    "write_synthetic_city",
]
