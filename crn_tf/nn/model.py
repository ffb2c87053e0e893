"""The Cascaded Refinement Network generator (Chen & Koltun, ICCV 2017), built from a preset or any size.

https://arxiv.org/abs/1707.09405. A cascade of refinement modules M_0..M_n: M_0 works at the
base size (4x8 for Cityscapes), each next one doubles height and width; every module sees the
layout area-downsampled to its own size. Tensors are `(batch, height, width, channels)`.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import keras
import tensorflow as tf

from crn_tf.core.sizes import parse_size
from crn_tf.nn.layers import RefinementModule
from crn_tf.nn.ops import area_downsample
from crn_tf.nn.presets import PRESET_TABLE, get_preset


def paper_width(height: int) -> int:
    """Feature width d_i of a module working at `height` rows, as in the paper and release."""
    if height <= 64:
        return 1024
    if height <= 256:
        return 512
    if height <= 512:
        return 128
    return 32


# === Presets: views of the one table (crn_tf.nn.presets), kept as the public names they were ===
PRESETS: dict[str, dict[str, Any]] = {name: row.generator_args() for name, row in PRESET_TABLE.items()}
"""Preset name -> CRN arguments. Each has 20 input channels (19 Cityscapes classes + void)."""

PRESET_TRAINING: dict[str, dict[str, Any]] = {name: row.training() for name, row in PRESET_TABLE.items()}
"""How the original trained each preset: loss constants, diversity loss, initialisation, trained modules
and epochs (demo_256p.py `range(1,201)`, demo_512p.py `range(1,21)`, demo_1024p.py `range(1,6)`)."""


def paper_widths(height: int, num_modules: int) -> list[int]:
    """The paper's width for each module of a cascade ending at `height` rows, M_0 first."""
    return [paper_width(height // 2**i) for i in reversed(range(num_modules))]


def default_num_modules(height: int) -> int:
    """Modules needed so that M_0 works at 4 rows (7 for 256, 8 for 512, 9 for 1024)."""
    if height < 4 or height % 4 or (height // 4) & (height // 4 - 1):
        raise ValueError(
            f"output height {height} is not 4 times a power of two; pass num_modules to choose the base size"
        )
    return int(math.log2(height // 4)) + 1


@keras.saving.register_keras_serializable(package="crn_tf")
class CRN(keras.Model):
    """Cascaded Refinement Network: a one-hot semantic layout in, k photographic images out.

    Args:
        output_size: (height, width). The model's own size; inputs must have it.
        num_classes: int. Semantic classes; the layout has num_classes + 1 channels (void last).
            Defaults to 19 (Cityscapes).
        num_images: int. k, the images synthesized per layout (9 for the paper's diverse
            256p model). Defaults to 1.
        widths: sequence of int, one per module (M_0 first). Defaults to the paper's widths
            for each module's height (`paper_width`).
        num_modules: int. Defaults to what puts M_0 at 4 rows. Height and width must be
            divisible by 2 ** (num_modules - 1).
        align_corners: bool. Bilinear x2 upsampling with aligned corners, as the original.
        recompute: bool. Recompute each module's activations in the backward pass
            (`tf.recompute_grad`): less memory for training, same gradients.

    Input: float layout `(batch, height, width, num_classes + 1)`.
    Output: float32 images `(batch, num_images, height, width, 3)`, RGB, about 0..255; image j
    comes from output channels (j, k + j, 2k + j), the original's layout.

    Example:
    >>> model = CRN(output_size=(32, 64), widths=(8, 8, 8, 8))
    >>> model(tf.one_hot(tf.zeros((1, 32, 64), tf.int32), 20)).shape
    TensorShape([1, 1, 32, 64, 3])
    """

    def __init__(
        self,
        output_size: Sequence[int] = (256, 512),
        num_classes: int = 19,
        num_images: int = 1,
        widths: Sequence[int] | None = None,
        num_modules: int | None = None,
        align_corners: bool = True,
        recompute: bool = False,
        **kwargs,
    ):
        kwargs.setdefault("name", "crn")
        super().__init__(**kwargs)
        # === Validate and settle the geometry ===
        self.output_size = parse_size(output_size)
        height, width = self.output_size
        self.num_modules = int(num_modules) if num_modules is not None else default_num_modules(height)
        factor = 2 ** (self.num_modules - 1)
        if self.num_modules < 1 or height % factor or width % factor:
            raise ValueError(
                f"output size {height}x{width} is not divisible as the model needs: with {self.num_modules} "
                f"modules, height and width must be multiples of {factor}"
            )
        self.base_size = (height // factor, width // factor)
        self.module_sizes = [(self.base_size[0] * 2**i, self.base_size[1] * 2**i) for i in range(self.num_modules)]
        if widths is None:
            widths = paper_widths(height, self.num_modules)
        self.widths = tuple(int(w) for w in widths)
        if len(self.widths) != self.num_modules or min(self.widths) < 1:
            raise ValueError(f"widths must be {self.num_modules} positive ints (one per module), got {list(widths)}")
        if num_classes < 1 or num_images < 1:
            raise ValueError(f"num_classes and num_images must be >= 1, got {num_classes} and {num_images}")
        self.num_classes = int(num_classes)
        self.num_images = int(num_images)
        self.align_corners = bool(align_corners)
        self.recompute = bool(recompute)

        # === Layers, named after the original's variable scopes (g_{height}_...) ===
        self.refinement_modules = [
            RefinementModule(w, align_corners=self.align_corners, name=f"g_{h}", dtype=self.dtype_policy)
            for w, (h, _) in zip(self.widths, self.module_sizes)
        ]
        for module, (h, _) in zip(self.refinement_modules, self.module_sizes):
            module.height = h
        # The 1x1 output conv runs in float32 even under mixed precision: bf16 cannot hold 0..255
        # to a level.
        self.output_conv = keras.layers.Conv2D(
            3 * self.num_images, 1, use_bias=True, name=f"g_{height}_conv100", dtype="float32"
        )

    def _trackable_children(self, save_type="checkpoint", **kwargs):
        """Adds the refinement modules to what `tf.train.Checkpoint` saves.

        Keras keeps them in a tracked list, which TensorFlow's checkpointing does not follow: without
        this, a training checkpoint held only the output conv (and the trained variables through the
        optimizer), so frozen modules (`--train-modules`) came back untrained on resume.
        """
        children = super()._trackable_children(save_type, **kwargs)
        if save_type == "checkpoint":
            for module in self.refinement_modules:
                children.setdefault(module.name, module)
        return children

    @property
    def num_channels(self) -> int:
        """Channels of the layout input: classes + void."""
        return self.num_classes + 1

    @property
    def input_shape_expected(self) -> tuple[None, int, int, int]:
        return (None, *self.output_size, self.num_channels)

    def build(self, input_shape=None):
        channels = self.num_channels
        previous = 0
        for module, (h, w), width in zip(self.refinement_modules, self.module_sizes, self.widths):
            module.build((None, h, w, previous + channels) if previous == 0 else [(None, h // 2, w // 2, previous), (None, h, w, channels)])
            previous = width
        self.output_conv.build((None, *self.output_size, previous))
        self.built = True

    def _check_layout(self, layout: tf.Tensor) -> None:
        expected = (*self.output_size, self.num_channels)
        shape = tuple(layout.shape[1:])
        if len(layout.shape) != 4:
            raise ValueError(f"CRN expects a layout of shape (batch, {expected[0]}, {expected[1]}, {expected[2]}), got {tuple(layout.shape)}")
        if all(d is not None for d in shape) and shape != expected:
            raise ValueError(
                f"CRN expects a layout of shape (batch, {expected[0]}, {expected[1]}, {expected[2]}) "
                f"(its output size {expected[0]}x{expected[1]}, {self.num_classes} classes + void), got {tuple(layout.shape)}"
            )

    def run_module(self, index: int, features: tf.Tensor | None, layout: tf.Tensor) -> tf.Tensor:
        """Module `index` on the previous features (None for M_0) and the full-size layout."""
        module = self.refinement_modules[index]
        scaled = area_downsample(layout, self.module_sizes[index])  # (B, h_i, w_i, C)
        if features is None:
            return module(scaled)
        if self.recompute:
            return tf.recompute_grad(lambda f, s: module([f, s]))(features, scaled)
        return module([features, scaled])

    def to_images(self, features: tf.Tensor) -> tf.Tensor:
        """Last features (B, H, W, d) -> images (B, k, H, W, 3) in about 0..255, float32."""
        return self.arrange_images(self.output_conv(tf.cast(features, tf.float32)))  # conv: (B, H, W, 3k)

    def arrange_images(self, x: tf.Tensor) -> tf.Tensor:
        """The output conv's channels (B, H, W, 3k) -> images (B, k, H, W, 3) in about 0..255."""
        x = (x + 1.0) / 2.0 * 255.0
        height, width = self.output_size
        x = tf.reshape(x, (-1, height, width, 3, self.num_images))  # channel c*k + j -> [c, j]
        return tf.transpose(x, (0, 4, 1, 2, 3))

    def call(self, layout):
        self._check_layout(layout)
        layout = tf.cast(layout, self.compute_dtype)  # (B, H, W, C)
        features = None
        for index in range(self.num_modules):
            features = self.run_module(index, features, layout)  # (B, h_i, w_i, d_i)
        return self.to_images(features)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.num_images, *self.output_size, 3)

    # === Config ===
    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "output_size": list(self.output_size),
                "num_classes": self.num_classes,
                "num_images": self.num_images,
                "widths": list(self.widths),
                "num_modules": self.num_modules,
                "align_corners": self.align_corners,
                "recompute": self.recompute,
            }
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for key in ("trainable", "dtype"):
            config.pop(key, None)
        return cls(**config)

    @classmethod
    def from_preset(
        cls,
        preset: str,
        num_images: int | None = None,
        width_multiplier: float = 1.0,
        **overrides,
    ) -> "CRN":
        """The paper's 256p / 512p / 1024p generator (7 / 8 / 9 modules).

        `num_images` defaults to the preset's (9 at 256p, 1 otherwise); `width_multiplier`
        scales every width (for small runs); `overrides` replace any other argument.
        """
        args = get_preset(preset).generator_args()
        if num_images is not None:
            args["num_images"] = num_images
        if "output_size" in overrides and "widths" not in overrides:
            args["widths"] = None  # the paper's width for each module's height at the new size
        args.update(overrides)
        if width_multiplier != 1.0:
            if args.get("widths") is None:
                height = parse_size(args["output_size"])[0]
                args["widths"] = paper_widths(height, args.get("num_modules") or default_num_modules(height))
            args["widths"] = scale_widths(args["widths"], width_multiplier)
        return cls(**args)


def scale_widths(widths: Sequence[int], multiplier: float) -> list[int]:
    """Each width times `multiplier`, rounded, at least 1."""
    if multiplier <= 0:
        raise ValueError(f"width multiplier must be positive, got {multiplier}")
    return [max(1, int(round(w * multiplier))) for w in widths]

