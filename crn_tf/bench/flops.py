"""FLOP counts of the CRN generator and of a training step, from the model's configuration.

Only convolutions are counted: a k_h x k_w convolution from c_in to c_out channels over an
output of H x W pixels costs 2 * H * W * k_h * k_w * c_in * c_out FLOPs (one multiply and one add
per weight and output pixel). Layer norm, LReLU, resampling, the loss's elementwise terms and
Adam's update are left out: together they are well under 1% of the convolutions at every preset.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

VGG19_CONVS: tuple[tuple[str, int, int, int], ...] = (
    # (name, c_in, c_out, downsampling factor of its input)
    ("conv1_1", 3, 64, 1), ("conv1_2", 64, 64, 1),
    ("conv2_1", 64, 128, 2), ("conv2_2", 128, 128, 2),
    ("conv3_1", 128, 256, 4), ("conv3_2", 256, 256, 4), ("conv3_3", 256, 256, 4), ("conv3_4", 256, 256, 4),
    ("conv4_1", 256, 512, 8), ("conv4_2", 512, 512, 8), ("conv4_3", 512, 512, 8), ("conv4_4", 512, 512, 8),
    ("conv5_1", 512, 512, 16), ("conv5_2", 512, 512, 16), ("conv5_3", 512, 512, 16), ("conv5_4", 512, 512, 16),
)
"""VGG-19's 3x3 convolutions (SAME padding, a 2x2 pool before each new block)."""


def conv_flops(height: int, width: int, kernel: int | Sequence[int], in_channels: int, out_channels: int) -> int:
    """2 * H * W * k_h * k_w * c_in * c_out: multiply-adds of one SAME/stride-1 convolution, times two."""
    kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
    return 2 * height * width * kh * kw * in_channels * out_channels


@dataclass(frozen=True)
class ConvCount:
    """One convolution of a network: where it is and what it costs per image."""

    name: str
    height: int
    width: int
    kernel: int
    in_channels: int
    out_channels: int

    @property
    def flops(self) -> int:
        return conv_flops(self.height, self.width, self.kernel, self.in_channels, self.out_channels)


def generator_convs(
    module_sizes: Sequence[Sequence[int]], widths: Sequence[int], num_channels: int, num_images: int
) -> list[ConvCount]:
    """Every convolution of a CRN: conv1 (3x3 on [upsampled features, layout]) and conv2 (3x3)
    of each module, then the 1x1 output conv to 3k channels."""
    convs, previous = [], 0
    for (h, w), d in zip(module_sizes, widths):
        convs.append(ConvCount(f"g_{h}/conv1", h, w, 3, previous + num_channels, d))
        convs.append(ConvCount(f"g_{h}/conv2", h, w, 3, d, d))
        previous = d
    h, w = module_sizes[-1]
    convs.append(ConvCount(f"g_{h}/conv100", h, w, 1, previous, 3 * num_images))
    return convs


def model_convs(model) -> list[ConvCount]:
    """`generator_convs` of a CRN instance (reads its geometry, builds nothing)."""
    return generator_convs(model.module_sizes, model.widths, model.num_channels, model.num_images)


def generator_flops(model) -> int:
    """Forward FLOPs of a CRN per layout (all k images together)."""
    return sum(c.flops for c in model_convs(model))


def vgg19_convs(height: int, width: int, last_layer: str = "conv5_2") -> list[ConvCount]:
    """VGG-19's convolutions on an H x W image, up to and including `last_layer` (the deepest
    layer the CRN loss compares)."""
    names = [name for name, *_ in VGG19_CONVS]
    if last_layer not in names:
        raise ValueError(f"unknown VGG-19 layer {last_layer!r}; choose one of {names}")
    convs = []
    for name, cin, cout, factor in VGG19_CONVS[: names.index(last_layer) + 1]:
        # The original's 2x2 average pools use SAME padding: each halving rounds up.
        h, w = height, width
        for _ in range(factor.bit_length() - 1):
            h, w = -(-h // 2), -(-w // 2)
        convs.append(ConvCount(f"vgg/{name}", h, w, 3, cin, cout))
    return convs


def vgg19_flops(height: int, width: int, last_layer: str = "conv5_2") -> int:
    """Forward FLOPs of VGG-19 up to `last_layer` on one H x W image."""
    return sum(c.flops for c in vgg19_convs(height, width, last_layer))


@dataclass(frozen=True)
class TrainStepFlops:
    """FLOPs of one training step per layout, split by where they are spent."""

    generator_forward: int
    generator_backward: int
    vgg_forward: int
    vgg_backward: int

    @property
    def total(self) -> int:
        return self.generator_forward + self.generator_backward + self.vgg_forward + self.vgg_backward

    def as_dict(self) -> dict[str, int]:
        return {
            "generator_forward": self.generator_forward,
            "generator_backward": self.generator_backward,
            "vgg_forward": self.vgg_forward,
            "vgg_backward": self.vgg_backward,
            "total": self.total,
        }


def train_step_flops(model, last_vgg_layer: str = "conv5_2") -> TrainStepFlops:
    """FLOPs of one training step (generator + VGG loss + backward) per layout.

    Generator: forward F, backward = the weight gradient of every conv (F again) plus the data
    gradient of every conv but the first (whose input is the layout, not a variable's
    function): about 3F. VGG (frozen): forward on the k fake images and the real one, then
    the data gradient back into the k fakes only (no weight gradients): (2k + 1) x one image.
    """
    convs = model_convs(model)
    forward = sum(c.flops for c in convs)
    backward = forward + forward - convs[0].flops
    height, width = model.output_size
    per_image = vgg19_flops(height, width, last_vgg_layer)
    k = model.num_images
    return TrainStepFlops(forward, backward, (k + 1) * per_image, k * per_image)
