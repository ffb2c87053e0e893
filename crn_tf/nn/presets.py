"""The paper's recipe per preset, as one data table: the generator, its loss and how it trained.

One row per published generator (256p, 512p, 1024p; the authors' release, demo_<preset>.py), and
the small variant `python train.py` runs with no arguments. `CRN.from_preset`, train's option
resolution, `CRNLoss`'s default weights, the TF1 import and download checks and the benchmark all
read it from here; `crn_tf.nn.model.PRESETS` / `PRESET_TRAINING` and
`crn_tf.loss.perceptual.PRESET_LAYER_WEIGHTS` are views of it. Plain Python, no TensorFlow import,
so option parsing and the benchmark's parent process stay fast.

Adding a model size is one `Preset` row in `PRESET_TABLE`.
"""
from __future__ import annotations

import dataclasses
from typing import Any

SINGLE_IMAGE_WEIGHTS = (1.0, 1 / 2.6, 1 / 4.8, 1 / 3.7, 1 / 5.6, 10 / 1.5)
"""The release's single-image loss constants (demo_512p.py, demo_1024p.py), on per-element means."""
DIVERSITY_WEIGHTS = (1.0, 1 / 1.6, 1 / 2.3, 1 / 1.8, 1 / 2.8, 10 / 0.8)
"""The release's diversity loss constants (demo_256p.py, k = 9), on per-element means."""


@dataclasses.dataclass(frozen=True)
class Preset:
    """One published generator and how the original trained it.

    `layer_weights` are the loss's constants for the layers `crn_tf.loss.vgg.FEATURE_NAMES`
    (input, conv1_2, ..., conv5_2); `init_from` names the preset whose weights the original
    started from (None: from scratch); `train_modules` is a `--train-modules` value.
    """

    name: str
    output_size: tuple[int, int]
    widths: tuple[int, ...]  # one per module, M_0 first
    num_images: int  # k, images per layout
    layer_weights: tuple[float, ...]
    diversity: bool  # the k-image diversity loss instead of the single-image loss
    init_from: str | None
    train_modules: str
    epochs: int
    num_classes: int = 19  # Cityscapes' evaluation classes; the layout adds void

    def generator_args(self) -> dict[str, Any]:
        """The `CRN` constructor arguments of this generator (`crn_tf.nn.model.PRESETS[name]`)."""
        return {"output_size": self.output_size, "num_images": self.num_images, "widths": self.widths}

    def training(self) -> dict[str, Any]:
        """How the original trained it (`crn_tf.nn.model.PRESET_TRAINING[name]`); `layer_weights`
        is the name of the constants, a key of `crn_tf.loss.perceptual.PRESET_LAYER_WEIGHTS`."""
        return {"layer_weights": self.name, "diversity": self.diversity, "init_from": self.init_from,
                "train_modules": self.train_modules, "epochs": self.epochs}


PRESET_TABLE: dict[str, Preset] = {
    preset.name: preset
    for preset in (
        # demo_256p.py: 7 modules, k = 9, diversity loss, from scratch, `range(1,201)` epochs.
        Preset("256p", (256, 512), (1024,) * 5 + (512,) * 2, 9, DIVERSITY_WEIGHTS, True, None, "all", 200),
        # demo_512p.py: 8 modules, every 256p module restored, all trained, `range(1,21)`.
        Preset("512p", (512, 1024), (1024,) * 5 + (512,) * 2 + (128,), 1, SINGLE_IMAGE_WEIGHTS, False,
               "256p", "all", 20),
        # demo_1024p.py: 9 modules, every 512p module restored, only g_512 and g_1024 trained, `range(1,6)`.
        Preset("1024p", (1024, 2048), (1024,) * 5 + (512,) * 2 + (128, 32), 1, SINGLE_IMAGE_WEIGHTS, False,
               "512p", "last2", 5),
    )
}
"""Preset name -> its row, in the order the original trained them (256p -> 512p -> 1024p)."""

DEFAULT_PRESET = "256p"
"""The preset train.py and the benchmark use unless told otherwise."""


@dataclasses.dataclass(frozen=True)
class SmallVariant:
    """A preset shrunk for the embedded default run (`python train.py` with no --data): minutes on
    a CPU, nothing downloaded. It overrides the preset's size, widths, k, epochs and VGG weights."""

    output_size: tuple[int, int]
    width_multiplier: float
    num_images: int  # k = 1 keeps the CPU run to minutes (VGG sees k + 1 images a step)
    epochs: int
    train_modules: str
    vgg_weights: str  # "random": no ImageNet weights to fetch

    @property
    def size(self) -> str:
        """The output size as a `--size` value, e.g. "64x128"."""
        return f"{self.output_size[0]}x{self.output_size[1]}"


SMALL_DEFAULT = SmallVariant(output_size=(64, 128), width_multiplier=1 / 16, num_images=1, epochs=12,
                             train_modules="all", vgg_weights="random")
"""The small default: the default preset's generator at 64x128 (5 modules), every width x1/16, k = 1."""


def get_preset(name: str) -> Preset:
    """The table's row for `name`; ValueError naming the choices for any other name."""
    if name not in PRESET_TABLE:
        raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESET_TABLE)}")
    return PRESET_TABLE[name]


def uses_diversity(preset: str, num_images: int) -> bool:
    """Whether a run of `preset` with k = `num_images` takes the diversity loss: the preset's own
    choice at its own k, else whenever k > 1 (one image has nothing to diversify)."""
    row = get_preset(preset)
    return row.diversity if num_images == row.num_images else num_images > 1


def release_layer_weights(diversity: bool, preset: str | None = None) -> str:
    """The name of the release's loss constants for a loss: the preset's own when its loss is that
    one, else those of the first preset trained with it (256p for diversity, 512p for one image)."""
    if preset is not None and get_preset(preset).diversity == diversity:
        return preset
    return next(row.name for row in PRESET_TABLE.values() if row.diversity == diversity)
