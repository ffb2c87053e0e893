"""Training options: one dataclass, one argparse parser built from it, saved into the run dir.

As SPADE's `BaseOptions`: the options are printed at start with every non-default marked, and
written to `RUN_DIR/options.json` (machine-readable) and `RUN_DIR/opt.txt` (the same listing)
before step 0, by the chief worker only.

Faithful first: with `--data` given, the defaults are the original's (256p preset, k = 9,
ImageNet VGG, Adam 1e-4, batch 1, MATLAB-bicubic photos, and per preset the release's epochs
and trained modules: 200 / 20 / 5 epochs, all / all / the last two modules at 256p / 512p / 1024p;
docs/faithfulness.md). Without `--data`, `train.py` runs its embedded
small default (a synthetic city, 64x128, width multiplier 1/16, k = 1, random VGG): the fields whose
default is `None` ("auto") are settled by `resolve_options` for whichever case applies. The numbers
per preset and of the small default live in one table, `crn_tf.nn.presets`.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
from fractions import Fraction
from typing import Any, Sequence

from crn_tf.core.files import write_atomic
from crn_tf.core.precision import TRAINING_PRECISIONS
from crn_tf.core.sizes import parse_size
from crn_tf.data.class_weights import CLASS_WEIGHTINGS
from crn_tf.data.resize import (
    DEFAULT_PHOTO_RESIZE,
    PHOTO_RESIZE_HELP,
    PHOTO_RESIZE_METHODS,
    check_photo_resize,
)
from crn_tf.nn.presets import DEFAULT_PRESET, PRESET_TABLE, SMALL_DEFAULT, get_preset

# === The embedded small default run (no --data): its recipe is the preset table's small variant ===
SMOKE_DATA = os.path.join("data", "synthetic_city")
SMOKE_SIZE = SMALL_DEFAULT.size
SMOKE_NUM_TRAIN = 48
SMOKE_NUM_VAL = 4
SMOKE_DEFAULTS: dict[str, Any] = {
    "size": SMOKE_SIZE,
    "width_multiplier": SMALL_DEFAULT.width_multiplier,
    "vgg_weights": SMALL_DEFAULT.vgg_weights,
    "num_images": SMALL_DEFAULT.num_images,
    "epochs": SMALL_DEFAULT.epochs,
    "run_dir": os.path.join("runs", "synthetic_small"),
    "save_every": 200,
    "summary_every": 50,
    "train_modules": SMALL_DEFAULT.train_modules,
}
"""What the auto (`None`) fields become when `--data` is not given."""

PAPER_DEFAULTS: dict[str, Any] = {
    "size": None,  # the preset's own size
    "width_multiplier": 1.0,
    "vgg_weights": "imagenet",
    "num_images": None,  # the preset's k (crn_tf.nn.presets): 9 at 256p, 1 at 512p and 1024p
    "epochs": None,  # the preset's (crn_tf.nn.presets): 200 at 256p, 20 at 512p, 5 at 1024p
    "run_dir": None,  # runs/<preset>
    "save_every": 1000,
    "summary_every": 500,
    "train_modules": None,  # the preset's (crn_tf.nn.presets): last2 at 1024p, else all
}
"""What the auto (`None`) fields become when `--data` is given: the original's schedule."""


def _per_preset(field: str) -> str:
    """E.g. "200 at 256p, 20 at 512p, 5 at 1024p": a field of the preset table, for the help texts."""
    return ", ".join(f"{getattr(row, field)} at {name}" for name, row in PRESET_TABLE.items())


MODEL_FIELDS = ("preset", "size", "width_multiplier", "num_images", "label_set", "mixed_precision")
"""Options that fix the model's variables; a resumed run must keep them."""


def _field(default: Any, help: str, **argparse_kwargs) -> Any:
    return dataclasses.field(default=default, metadata={"help": help, **argparse_kwargs})


@dataclasses.dataclass
class TrainOptions:
    """Everything `train.py` / `crn-train` accepts; `None` means "auto" (see module docstring)."""

    # --- data ---
    data: str | None = _field(None, "training data: a Cityscapes root, a label folder or a paired images/labels dir "
                              "(default: make and use a small synthetic city in data/synthetic_city)")
    val_data: str | None = _field(None, "validation data (same formats); a sample grid PNG is written per epoch")
    label_set: str = _field("cityscapes", "label set: 'cityscapes' or a JSON label-set file")
    split: str = _field("train", "split to train on (Cityscapes roots and paired dirs with train/ val/)")
    val_split: str = _field("val", "split of --val-data to validate on")
    skip_bad: bool = _field(False, "skip bad image/label pairs with a warning instead of stopping")
    photo_resize: str = _field(DEFAULT_PHOTO_RESIZE, PHOTO_RESIZE_HELP, choices=PHOTO_RESIZE_METHODS)
    # --- model ---
    preset: str = _field(DEFAULT_PRESET, "the paper's generator: 256p (k=9, diversity loss), 512p, 1024p",
                         choices=tuple(PRESET_TABLE))
    size: str | None = _field(None, f"output size HxW (default: the preset's; {SMALL_DEFAULT.size} for the small "
                              "default)")
    width_multiplier: float | None = _field(None, "scale every feature width (e.g. 1/16 for small runs)")
    num_images: int | None = _field(None, "k, images per layout (default: the preset's, 9 at 256p, 1 otherwise; "
                                    f"{SMALL_DEFAULT.num_images} for the small default)")
    init_from: str | None = _field(None, "checkpoint (or run dir) whose modules initialise the shared modules, "
                                   "matched by module height (256p -> 512p -> 1024p)")
    train_modules: str | None = _field(None, "modules that train: all, lastN (e.g. last2) or module heights (e.g. "
                                       "512,1024) (default: the preset's, as the original: "
                                       f"{_per_preset('train_modules')}; {SMALL_DEFAULT.train_modules} for the "
                                       "small default)")
    recompute: bool = _field(False, "recompute each refinement module's and each VGG-19 segment's activations in "
                             "the backward pass (same gradients, about half the memory)")
    # --- loss ---
    vgg_weights: str | None = _field(None, "VGG-19 weights: imagenet, a .h5/.mat path, or random "
                                     "(default: imagenet; random for the small default)")
    vgg_pooling: str = _field("avg", "VGG-19 pooling: avg (the original's) or max (Keras' VGG-19 as trained)",
                              choices=("avg", "max"))
    layer_weights: str = _field("original", "perceptual-loss layer weights: original (the release's constants) "
                                "or auto (1/elements, rescaled at --rescale-epoch)", choices=("original", "auto"))
    rescale_epoch: int = _field(100, "with --layer-weights auto: rescale the weights after this epoch")
    diversity_mean_weight: float = _field(0.001, "k > 1: the diversity loss's weight on the mean over the k images "
                                          "(the min gets 1 minus it); larger makes every image, not only the "
                                          "best per class, follow the photo")
    class_weights: str = _field("none", "weigh each layout class's share of the loss: none (every pixel the same, "
                                "the original) or enet (1/ln(1.02 + the class's pixel share in the training "
                                "labels), scaled to a pixel mean of 1: rare classes weigh more)",
                                choices=CLASS_WEIGHTINGS)
    # --- optimisation ---
    epochs: int | None = _field(None, f"epochs (default: the preset's, as the original: {_per_preset('epochs')}; "
                                f"{SMALL_DEFAULT.epochs} for the small default)")
    steps: int | None = _field(None, "stop after this many steps in total (overrides --epochs)")
    batch_size: int = _field(1, "global batch size (split over replicas)")
    lr: float = _field(1e-4, "Adam learning rate")
    seed: int = _field(0, "seed for initialisation and the per-epoch data order")
    mixed_precision: str = _field("off", "off, bf16 or fp16 (with dynamic loss scaling)", choices=TRAINING_PRECISIONS)
    xla: bool = _field(False, "compile the step with XLA (jit_compile)")
    strategy: str = _field("auto", "auto (TF_CONFIG cluster -> multi-worker, several GPUs -> mirrored), "
                           "default, mirrored or multi-worker", choices=("auto", "default", "mirrored", "multi-worker"))
    # --- run directory, logging ---
    run_dir: str | None = _field(None, "run directory: checkpoints, logs, samples, the final model/ "
                                 "(default: runs/<preset>; runs/synthetic_small for the small default)")
    save_every: int | None = _field(None, "checkpoint every N steps (also at each epoch end and on SIGINT/SIGTERM)")
    keep_checkpoints: int = _field(3, "checkpoints kept in RUN_DIR/checkpoints")
    log_every: int = _field(10, "read the loss back and refresh the progress bar every N steps")
    summary_every: int | None = _field(None, "TensorBoard per-layer terms and sample images every N steps")
    num_samples: int = _field(4, "validation layouts shown in the per-epoch grid")


def _parse_float(text: str) -> float:
    """'0.0625' or '1/16' -> 0.0625."""
    try:
        return float(Fraction(text))
    except (ValueError, ZeroDivisionError) as error:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from error


_TYPES = {"int | None": int, "int": int, "float": float, "float | None": _parse_float, "str": str, "str | None": str}


def build_parser() -> argparse.ArgumentParser:
    """The command-line parser of `train.py` / `crn-train`, one flag per `TrainOptions` field."""
    parser = argparse.ArgumentParser(
        prog="crn-train",
        description="Train a Cascaded Refinement Network (Chen & Koltun, ICCV 2017). With no arguments: a "
        "few minutes' CPU run of a small CRN on a synthetic city, then the demo command to try it.",
        argument_default=argparse.SUPPRESS,
    )
    for field in dataclasses.fields(TrainOptions):
        flag = "--" + field.name.replace("_", "-")
        meta = dict(field.metadata)
        help_text = meta.pop("help")
        if field.type == "bool":
            parser.add_argument(flag, action="store_true", help=help_text)
            continue
        kind = _TYPES[str(field.type)]
        if field.name == "lr":
            kind = _parse_float
        parser.add_argument(flag, type=kind, help=help_text + ("" if field.default is None else f" (default: {field.default})"), **meta)
    return parser


def parse_options(argv: Sequence[str] | None = None) -> TrainOptions:
    """Parses command-line flags into TrainOptions (unset flags keep the dataclass defaults)."""
    namespace = build_parser().parse_args(argv)
    return TrainOptions(**vars(namespace))


def is_smoke_run(options: TrainOptions) -> bool:
    """True for the embedded small default run (no --data given)."""
    return options.data is None


def resolve_options(options: TrainOptions) -> TrainOptions:
    """A copy with every auto (`None`) field settled: the small default without --data, else the paper's."""
    defaults = SMOKE_DEFAULTS if is_smoke_run(options) else PAPER_DEFAULTS
    values = dataclasses.asdict(options)
    for key, value in defaults.items():
        if values[key] is None:
            values[key] = value
    if values["data"] is None:
        values["data"] = SMOKE_DATA
        if values["val_data"] is None:
            values["val_data"] = SMOKE_DATA
    if values["run_dir"] is None:
        values["run_dir"] = os.path.join("runs", values["preset"])
    if values["epochs"] is None or values["train_modules"] is None:
        if values["preset"] not in PRESET_TABLE:
            raise ValueError(f"--preset must be one of {', '.join(PRESET_TABLE)}, got {values['preset']!r}")
        preset = get_preset(values["preset"])
        for key in ("epochs", "train_modules"):
            if values[key] is None:
                values[key] = getattr(preset, key)
    resolved = TrainOptions(**values)
    validate_options(resolved)
    return resolved


def validate_options(options: TrainOptions) -> None:
    """Raises ValueError with a one-line message for values no run can use."""
    positive = {"batch_size": options.batch_size, "keep_checkpoints": options.keep_checkpoints,
                "log_every": options.log_every, "num_samples": options.num_samples}
    for name in ("epochs", "steps", "save_every", "summary_every", "num_images"):
        if getattr(options, name) is not None:
            positive[name] = getattr(options, name)
    for name, value in positive.items():
        if value < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be at least 1, got {value}")
    if options.lr <= 0:
        raise ValueError(f"--lr must be positive, got {options.lr}")
    if options.width_multiplier is not None and options.width_multiplier <= 0:
        raise ValueError(f"--width-multiplier must be positive, got {options.width_multiplier}")
    if not 0.0 <= options.diversity_mean_weight < 1.0:
        raise ValueError(f"--diversity-mean-weight must be in [0, 1), got {options.diversity_mean_weight}")
    if options.rescale_epoch < 1:
        raise ValueError(f"--rescale-epoch must be at least 1, got {options.rescale_epoch}")
    if options.size is not None:
        parse_size(options.size)
    parse_train_modules(options.train_modules)
    check_photo_resize(options.photo_resize)


def parse_train_modules(text: str) -> tuple[str, Any]:
    """'all' -> ('all', None); 'last2' -> ('last', 2); '512,1024' -> ('heights', (512, 1024))."""
    text = text.strip().lower()
    if text == "all":
        return "all", None
    if text.startswith("last") and text[4:].isdigit() and int(text[4:]) >= 1:
        return "last", int(text[4:])
    parts = [p.strip() for p in text.split(",")]
    if parts and all(p.isdigit() for p in parts):
        return "heights", tuple(int(p) for p in parts)
    raise ValueError(f"--train-modules must be all, lastN (e.g. last2) or module heights (e.g. 512,1024); got {text!r}")


# === Printing and saving ===
def format_options(options: TrainOptions) -> str:
    """One line per option; values that differ from the default are marked `[default: X]`."""
    lines = ["----------------- Options ---------------"]
    for field in dataclasses.fields(TrainOptions):
        value = getattr(options, field.name)
        default = "auto" if field.default is None else field.default
        mark = "" if value == field.default else f"\t[default: {default}]"
        lines.append(f"{field.name:>22}: {value!s:<28}{mark}")
    lines.append("----------------- End -------------------")
    return "\n".join(lines)


def save_options(options: TrainOptions, run_dir: str | os.PathLike) -> None:
    """Writes `options.json` and `opt.txt` into the run dir (atomically: temp file + rename)."""
    write_atomic(os.path.join(run_dir, "options.json"), json.dumps(dataclasses.asdict(options), indent=2) + "\n")
    write_atomic(os.path.join(run_dir, "opt.txt"), format_options(options) + "\n")


def load_options(run_dir: str | os.PathLike) -> TrainOptions | None:
    """The options saved in a run dir, or None if it has none."""
    path = os.path.join(run_dir, "options.json")
    if not os.path.exists(path):
        return None
    try:
        with open(path) as f:
            data = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{path}: not valid JSON ({error}); restore it, or delete it to resume with the "
                         "options given (they are written again)") from error
    known = {f.name for f in dataclasses.fields(TrainOptions)}
    return TrainOptions(**{k: v for k, v in data.items() if k in known})


def check_resume_compatible(saved: TrainOptions, current: TrainOptions) -> None:
    """A run dir resumes only with the same model: raises ValueError naming the options that differ."""
    changed = [f"--{name.replace('_', '-')} {getattr(saved, name)} -> {getattr(current, name)}"
               for name in MODEL_FIELDS if getattr(saved, name) != getattr(current, name)]
    if changed:
        raise ValueError(
            f"run dir {current.run_dir} holds a run with other model options ({'; '.join(changed)}); "
            "use another --run-dir or the same options"
        )
