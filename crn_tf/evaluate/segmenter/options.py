"""The options of a segmenter run: one dataclass, checked before any work (no TensorFlow import).

The flags of `python -m crn_tf.evaluate.segmenter train` map one to one onto `SegmenterOptions`;
they are saved to `OUT/segmenter_options.json`, and a resumed run must keep `MODEL_FIELDS`.
"""
from __future__ import annotations

import dataclasses

from crn_tf.core.sizes import parse_size
from crn_tf.data.class_weights import CLASS_WEIGHTINGS

OPTIONS_NAME = "segmenter_options.json"
MODEL_FIELDS = ("size", "label_set", "base_width", "depth", "norm")
"""Options that fix the network's variables; a resumed run must keep them."""


MAX_BLUR_FACTOR = 3.0
"""The default `--max-blur`: shrink by up to this factor and enlarge back, the softness of a 2-3x
upsampled image (augment.py); a larger one also covers softer images (docs/evaluate.md)."""


@dataclasses.dataclass
class SegmenterOptions:
    """What `train_segmenter` does; the flags of `python -m crn_tf.evaluate.segmenter train` map onto these."""

    data: str
    out: str
    size: str = "128x256"
    label_set: str = "cityscapes"
    split: str = "train"
    val_data: str | None = None  # default: `data`
    val_split: str = "val"  # "none": no validation score
    epochs: int = 20
    steps: int | None = None  # overrides epochs
    batch_size: int = 8
    lr: float = 1e-3
    lr_schedule: str = "cosine"  # "cosine" (to 0 over the run) or "constant"
    seed: int = 0
    base_width: int = 32
    depth: int = 4
    norm: str = "batch"
    flip: bool = True
    augment: str = "none"  # "photometric": seeded blur, gain and contrast jitter (augment.py)
    max_blur: float = MAX_BLUR_FACTOR  # with "photometric": the largest blur factor
    class_weights: str = "none"  # "none" (plain mean over non-void pixels) or "enet" (1 / ln(1.02 + share))
    mixed_precision: str = "off"
    skip_bad: bool = False
    save_every: int = 500
    keep_checkpoints: int = 2
    log_every: int = 10
    progress: bool = True


def validate(options: SegmenterOptions) -> None:
    """Raises ValueError with a one-line message for values no run can use."""
    height, width = parse_size(options.size, 8)
    for name in ("epochs", "batch_size", "base_width", "depth", "save_every", "keep_checkpoints", "log_every"):
        if getattr(options, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(options, name)}")
    if min(height, width) < 2 ** (options.depth - 1):
        raise ValueError(f"--size {options.size} is too small for --depth {options.depth}: the deepest level works at "
                         f"1/{2 ** (options.depth - 1)} of it")
    if options.steps is not None and options.steps < 1:
        raise ValueError(f"--steps must be at least 1, got {options.steps}")
    if options.lr <= 0:
        raise ValueError(f"--lr must be positive, got {options.lr}")
    if options.lr_schedule not in ("cosine", "constant"):
        raise ValueError(f"--lr-schedule must be cosine or constant, got {options.lr_schedule!r}")
    if options.class_weights not in CLASS_WEIGHTINGS:
        raise ValueError(f"--class-weights must be one of {', '.join(CLASS_WEIGHTINGS)}, got {options.class_weights!r}")
    if options.augment not in ("none", "photometric"):
        raise ValueError(f"--augment must be none or photometric, got {options.augment!r}")
    if not options.max_blur >= 1.0:
        raise ValueError(f"--max-blur must be at least 1 (1: no blur), got {options.max_blur}")
    if options.mixed_precision not in ("off", "bf16"):
        raise ValueError(f"--mixed-precision must be off or bf16, got {options.mixed_precision!r}")
