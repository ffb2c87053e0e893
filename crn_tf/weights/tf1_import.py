"""Import the authors' TensorFlow 1 checkpoints into a crn_tf model.

    python -m crn_tf.tf1_import result_256p/model.ckpt checkpoints/crn_256p
    python -m crn_tf.tf1_import result_GTA/model.ckpt checkpoints/crn_gta_256p

The release publishes four generators (`PUBLISHED_CHECKPOINTS`): result_256p, result_512p and
result_1024p on Cityscapes, and result_GTA, the 256p diversity model trained on GTA5 frames
(GTA_Diversity_256p.py: the same generator, so the same variable names and shapes as
result_256p, and the same Cityscapes colour coding of its layouts).

The original names its variables after TF1 slim scopes: `g_{H}_conv{1,2}/weights`,
`g_{H}_conv{1,2}/LayerNorm/{gamma,beta}` per module (H = module height) and
`g_{H}_conv100/{weights,biases}` for the output conv. Kernels are [kh, kw, in, out], as Keras'.
Adam slots and beta powers are ignored. The preset, k and widths are read off the variables.
"""
from __future__ import annotations

import argparse
import os
import re
import sys

import numpy as np

from crn_tf.core.logs import cli_error, cli_main
from crn_tf.core.quiet import quiet_start
from crn_tf.labels import resolve_label_set
from crn_tf.nn.presets import get_preset

_MODULE_VAR = re.compile(r"^g_(\d+)_conv(1|2|100)/(weights|biases|LayerNorm/gamma|LayerNorm/beta)$")


PUBLISHED_CHECKPOINTS: dict[str, tuple[str, str]] = {
    "result_256p": ("256p", "demo_256p.py: Cityscapes, 256x512, k = 9 (diversity loss)"),
    "result_512p": ("512p", "demo_512p.py: Cityscapes, 512x1024, k = 1"),
    "result_1024p": ("1024p", "demo_1024p.py: Cityscapes, 1024x2048, k = 1"),
    "result_GTA": ("256p", "GTA_Diversity_256p.py: GTA5 frames, 256x512, k = 9 (diversity loss)"),
}
"""The release's checkpoint folders -> (the crn_tf preset of their generator, what they are)."""


class TF1ImportError(ValueError):
    """The TF1 checkpoint is missing variables or holds misshapen ones; the message lists them."""


def tf1_variable_names(model) -> dict[str, tuple[int, ...]]:
    """The original's variable name -> shape for every weight of `model` (what a checkpoint must hold)."""
    return {name: tuple(variable.shape) for name, variable in _name_map(model).items()}


def _name_map(model) -> dict:
    """Original TF1 name -> the model's Keras variable."""
    mapping = {}
    for module in model.refinement_modules:
        prefix = f"g_{module.height}"
        for index, (conv, norm) in enumerate(((module.conv1, module.norm1), (module.conv2, module.norm2)), start=1):
            mapping[f"{prefix}_conv{index}/weights"] = conv.kernel
            mapping[f"{prefix}_conv{index}/LayerNorm/gamma"] = norm.gamma
            mapping[f"{prefix}_conv{index}/LayerNorm/beta"] = norm.beta
    last = f"g_{model.output_size[0]}_conv100"
    mapping[f"{last}/weights"] = model.output_conv.kernel
    mapping[f"{last}/biases"] = model.output_conv.bias
    return mapping


def _resolve_prefix(path: str) -> str:
    """A checkpoint prefix from a prefix or a directory holding a TF1 `checkpoint` file."""
    import tensorflow as tf

    if os.path.isdir(path):
        latest = tf.train.latest_checkpoint(path)
        if latest is None:
            raise TF1ImportError(f"{path}: a directory without a TensorFlow checkpoint (no 'checkpoint' index file)")
        return latest
    if not os.path.exists(path + ".index"):
        raise TF1ImportError(f"{path}: no TensorFlow checkpoint here ({path}.index does not exist)")
    return path


def read_tf1_checkpoint(path: str) -> dict[str, np.ndarray]:
    """All generator variables (`g_*`, no optimizer slots) of a TF1 checkpoint, by name."""
    import tensorflow as tf

    prefix = _resolve_prefix(path)
    try:
        reader = tf.train.load_checkpoint(prefix)
    except Exception as error:  # corrupt index or data files raise several TF error types
        raise TF1ImportError(f"{prefix}: cannot read the checkpoint ({error})") from error
    names = [n for n in reader.get_variable_to_shape_map() if n.startswith("g_") and "/Adam" not in n]
    if not names:
        raise TF1ImportError(f"{prefix}: holds no CRN generator variables (g_*); is this a CRN checkpoint?")
    return {name: reader.get_tensor(name) for name in names}


def verify_tf1_files(path: str) -> int:
    """Reads every tensor of the checkpoint at `path`, optimizer slots too, so that TensorFlow checks
    each one's length and CRC32C against the index; returns how many. TF1ImportError names a damaged one.

    `read_tf1_checkpoint` reads only the generator; this catches a short or corrupt data file
    (a broken download) anywhere in it.
    """
    import tensorflow as tf

    prefix = _resolve_prefix(path)
    try:
        reader = tf.train.load_checkpoint(prefix)
    except Exception as error:  # corrupt index or data files raise several TF error types
        raise TF1ImportError(f"{prefix}: cannot read the checkpoint ({error})") from error
    names = sorted(reader.get_variable_to_shape_map())
    for name in names:
        try:
            reader.get_tensor(name)
        except Exception as error:  # IndexError for a short file, an OpError for a checksum mismatch
            message = " ".join(str(error).split()) or type(error).__name__
            raise TF1ImportError(f"{prefix}: variable {name} is damaged ({message})") from error
    return len(names)


def infer_model_args(variables: dict[str, np.ndarray], source: str = "checkpoint") -> dict:
    """CRN constructor arguments (size, classes, k, widths) read off the variables' names and shapes."""
    heights: dict[int, int] = {}
    output = None
    for name, value in variables.items():
        match = _MODULE_VAR.match(name)
        if not match:
            continue
        height, conv, kind = int(match.group(1)), match.group(2), match.group(3)
        if conv == "1" and kind == "weights":
            heights[height] = int(value.shape[-1])
        if conv == "100" and kind == "weights":
            output = (height, value)
    if not heights or output is None:
        raise TF1ImportError(f"{source}: cannot tell the network's shape (need g_H_conv1/weights and g_H_conv100/weights)")
    ordered = sorted(heights)
    expected = [ordered[0] * 2**i for i in range(len(ordered))]
    if ordered != expected:
        raise TF1ImportError(f"{source}: module heights {ordered} are not a doubling cascade")
    if output[0] != ordered[-1]:
        raise TF1ImportError(f"{source}: the output conv sits at height {output[0]}, the last module at {ordered[-1]}")
    first = f"g_{ordered[0]}_conv1/weights"
    channels = int(variables[first].shape[2])
    out_channels = int(output[1].shape[-1])
    if out_channels % 3:
        raise TF1ImportError(f"{source}: output conv has {out_channels} channels, not a multiple of 3")
    top = ordered[-1]
    return {
        "output_size": (top, 2 * top),  # the release's layouts are 1:2 (4x8 base)
        "num_classes": channels - 1,
        "num_images": out_channels // 3,
        "widths": [heights[h] for h in ordered],
        "num_modules": len(ordered),
    }


def published_matches(model_args: dict) -> list[str]:
    """The published checkpoints (`PUBLISHED_CHECKPOINTS`) whose generator has these `infer_model_args`:
    e.g. ["result_256p", "result_GTA"] for a 256p diversity model; [] for any other network."""
    def same(preset: str) -> bool:
        spec = get_preset(preset)
        return (tuple(model_args["output_size"]) == spec.output_size and model_args["num_images"] == spec.num_images
                and tuple(model_args["widths"]) == spec.widths and model_args["num_classes"] == spec.num_classes)

    return [name for name, (preset, _) in PUBLISHED_CHECKPOINTS.items() if same(preset)]


def import_tf1(path: str, label_set=None):
    """Builds a CRN and copies every weight of the TF1 checkpoint at `path` into it.

    Raises TF1ImportError listing every missing, misshapen or unexpected variable.
    """
    from crn_tf.nn.model import CRN

    variables = read_tf1_checkpoint(path)
    model = CRN(**infer_model_args(variables, source=path))
    model.build()
    mapping = _name_map(model)
    missing = sorted(set(mapping) - set(variables))
    unexpected = sorted(set(variables) - set(mapping))
    misshapen = [
        f"{name} {list(variables[name].shape)} (model expects {list(var.shape)})"
        for name, var in mapping.items()
        if name in variables and tuple(variables[name].shape) != tuple(var.shape)
    ]
    problems = []
    if missing:
        problems.append("missing: " + ", ".join(missing))
    if misshapen:
        problems.append("misshapen: " + ", ".join(misshapen))
    if unexpected:
        problems.append("unexpected: " + ", ".join(unexpected))
    if problems:
        raise TF1ImportError(f"{path}: does not match a CRN of {model.num_modules} modules; " + "; ".join(problems))
    for name, var in mapping.items():
        var.assign(variables[name].astype(np.float32))
    label_set = resolve_label_set(label_set)
    if label_set.num_classes != model.num_classes:
        raise TF1ImportError(
            f"{path}: the network takes {model.num_classes} classes, label set {label_set.name!r} has {label_set.num_classes}"
        )
    model.label_set = label_set
    return model


@cli_main
def main(argv: list[str] | None = None) -> int:
    argv = quiet_start(argv)
    parser = argparse.ArgumentParser(
        prog="python -m crn_tf.tf1_import",
        description="Convert a checkpoint of the authors' TensorFlow 1 release into a crn_tf checkpoint directory: "
        "result_256p, result_512p, result_1024p (Cityscapes) or result_GTA (the 256p diversity model trained on "
        "GTA5, GTA_Diversity_256p.py).",
    )
    parser.add_argument("prefix", help="checkpoint prefix (e.g. result_256p/model.ckpt, result_GTA/model.ckpt) or its "
                                       "directory")
    parser.add_argument("out_dir", help="checkpoint directory to write (config.json + model.weights.h5)")
    parser.add_argument("--label-set", default="cityscapes", help="label set name or JSON path (default: cityscapes)")
    args = parser.parse_args(argv)
    from crn_tf.weights.checkpoint import save_model

    try:
        model = import_tf1(args.prefix, label_set=args.label_set)
    except (TF1ImportError, ValueError) as error:
        return cli_error(None, error, 2)
    matches = published_matches({"output_size": model.output_size, "num_images": model.num_images,
                                 "widths": model.widths, "num_classes": model.num_classes})
    save_model(model, args.out_dir, extra={"source": "tf1_import", "tf1_checkpoint": os.path.abspath(args.prefix),
                                           "published_generator": matches})
    height, width = model.output_size
    print(
        f"imported {args.prefix}: {model.num_modules} modules, {height}x{width}, k={model.num_images}, "
        f"{model.count_params():,} parameters -> {args.out_dir}"
    )
    if matches:
        print(f"the variables of the published {' and '.join(matches)} generator{'s' if len(matches) > 1 else ''}")
    print(f"try it: python demo.py --checkpoint {args.out_dir} --labels data/samples/256x512/labels")
    return 0


if __name__ == "__main__":
    sys.exit(main())
