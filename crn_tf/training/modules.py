"""Model set-up for training: the generator from options, --init-from, and --train-modules.

The original trained 256p from scratch, initialised 512p from every 256p module and 1024p
from every 512p module, and trained only the last two 1024p modules. Modules are matched by
the height they work at (the original's `g_{H}_...` scopes), so any two cascades share the
modules of the heights both have.
"""
from __future__ import annotations

from typing import Any

from crn_tf.core.precision import get_precision
from crn_tf.core.sizes import parse_size
from crn_tf.nn.model import CRN
from crn_tf.training.options import parse_train_modules


def build_model(preset: str, num_classes: int, size: str | None = None, width_multiplier: float = 1.0,
                num_images: int | None = None, mixed_precision: str = "off", recompute: bool = False) -> CRN:
    """The generator of `preset`, optionally at another size / width / k, built (variables exist)."""
    overrides: dict[str, Any] = {"num_classes": num_classes, "recompute": recompute}
    if size is not None:
        overrides["output_size"] = parse_size(size)
    policy = get_precision(mixed_precision).training_policy
    if policy is not None:
        overrides["dtype"] = policy
    model = CRN.from_preset(preset, num_images=num_images, width_multiplier=width_multiplier, **overrides)
    model.build()
    return model


class InitError(ValueError):
    """--init-from cannot initialise this model; the message names the module and the shapes."""


def copy_shared_modules(target: CRN, source: CRN, source_name: str = "source") -> list[str]:
    """Copies every module (and the output conv) that both models have, matched by height.

    Returns the names of the copied layers. Modules whose variables differ in shape (other
    widths or classes) raise InitError naming them.
    """
    if source.num_classes != target.num_classes:
        raise InitError(
            f"{source_name}: its model takes {source.num_classes} classes, this one {target.num_classes}; "
            "--init-from needs the same label set"
        )
    by_height = {h: module for module, (h, _) in zip(source.refinement_modules, source.module_sizes)}
    pairs = [(module, by_height[h]) for module, (h, _) in zip(target.refinement_modules, target.module_sizes)
             if h in by_height]
    if target.output_conv.name == source.output_conv.name:
        pairs.append((target.output_conv, source.output_conv))
    copied = []
    for mine, theirs in pairs:
        mine_shapes = [tuple(v.shape) for v in mine.weights]
        their_shapes = [tuple(v.shape) for v in theirs.weights]
        if mine_shapes != their_shapes:
            if mine is target.output_conv:
                continue  # another k: the output conv starts fresh, as 256p (k=9) -> 512p (k=1)
            raise InitError(
                f"{source_name}: module {mine.name} has variables of shapes {their_shapes} there but "
                f"{mine_shapes} here (other widths or base size); --init-from needs matching modules"
            )
        for variable, value in zip(mine.weights, theirs.get_weights()):
            variable.assign(value)
        copied.append(mine.name)
    if not copied:
        raise InitError(f"{source_name}: shares no module height with this model; nothing to initialise")
    return copied


def init_from_checkpoint(model: CRN, path: str) -> list[str]:
    """Initialises `model`'s shared modules from a checkpoint directory (or run dir); returns their names."""
    from crn_tf.weights.checkpoint import (
        CheckpointError,
        load_model,
        resolve_checkpoint_dir,
    )
    from crn_tf.weights.download import resolve_checkpoint

    path = resolve_checkpoint(path)  # authors-256p ... -> the cache, downloaded if missing
    try:
        source = load_model(path)  # a model of its own: a load that fails leaves `model` untouched
    except CheckpointError as error:
        raise CheckpointError(f"--init-from {path}: {error}\n(pass another --init-from, or leave it out to "
                              "train from scratch)") from error
    return copy_shared_modules(model, source, resolve_checkpoint_dir(path))


def set_trainable_modules(model: CRN, spec: str) -> list[str]:
    """Freezes the modules --train-modules leaves out; returns the names of those that train.

    `all`; `lastN` (the last N modules; 1024p in the original trained last2); or module heights
    (`512,1024`). The output conv trains with the last module.
    """
    kind, value = parse_train_modules(spec)
    heights = [h for h, _ in model.module_sizes]
    if kind == "all":
        chosen = set(heights)
    elif kind == "last":
        if value > len(heights):
            raise ValueError(f"--train-modules last{value}: the model has only {len(heights)} modules")
        chosen = set(heights[-value:])
    else:
        unknown = sorted(set(value) - set(heights))
        if unknown:
            raise ValueError(f"--train-modules: no module works at height {unknown}; the model's heights are {heights}")
        chosen = set(value)
    names = []
    for module, height in zip(model.refinement_modules, heights):
        module.trainable = height in chosen
        if module.trainable:
            names.append(module.name)
    model.output_conv.trainable = heights[-1] in chosen
    if model.output_conv.trainable:
        names.append(model.output_conv.name)
    return names
