"""Checkpoint directories: the one format for a trained model that every crn_tf tool reads.

A checkpoint directory holds `config.json` (the model's constructor arguments, its label set and
free-form facts such as the training step) and `model.weights.h5` (Keras weights). Demo, export
and evaluate rebuild the model from `config.json`, never from repeated command-line flags.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from typing import Any

from crn_tf.labels import CITYSCAPES, LabelSet, resolve_label_set

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.weights.h5"
FORMAT = "crn_tf-checkpoint"
FORMAT_VERSION = 1


class CheckpointError(ValueError):
    """A path is not a usable checkpoint directory; the message says why and what to do."""


def resolve_checkpoint_dir(path: str | os.PathLike) -> str:
    """The checkpoint directory at `path`: the directory itself, or `path/model` of a training run."""
    path = os.fspath(path)
    if os.path.isfile(os.path.join(path, CONFIG_NAME)):
        return path
    run_model = os.path.join(path, "model")
    if os.path.isfile(os.path.join(run_model, CONFIG_NAME)):
        return run_model
    if os.path.exists(path + ".index") or os.path.exists(path + ".meta"):
        raise CheckpointError(
            f"{path} is a TensorFlow 1 checkpoint of the original release; convert it first with "
            f"`python -m crn_tf.tf1_import {path} OUT_DIR` and pass OUT_DIR"
        )
    if not os.path.exists(path):
        raise CheckpointError(f"{path}: no such checkpoint directory")
    if os.path.isdir(path):
        raise CheckpointError(
            f"{path}: not a crn_tf checkpoint (no {CONFIG_NAME}); expected a checkpoint directory "
            f"({CONFIG_NAME} + {WEIGHTS_NAME}) or a training run directory holding model/"
        )
    raise CheckpointError(f"{path}: is a file; expected a checkpoint directory ({CONFIG_NAME} + {WEIGHTS_NAME})")


def read_config(path: str | os.PathLike) -> dict[str, Any]:
    """The parsed `config.json` of the checkpoint directory at `path`."""
    directory = resolve_checkpoint_dir(path)
    config_path = os.path.join(directory, CONFIG_NAME)
    try:
        with open(config_path) as f:
            config = json.load(f)
    except json.JSONDecodeError as error:
        raise CheckpointError(f"{config_path}: not valid JSON ({error})") from error
    if config.get("format") != FORMAT or "model" not in config:
        raise CheckpointError(f"{config_path}: not a crn_tf checkpoint config (format {config.get('format')!r})")
    if config.get("format_version", 0) > FORMAT_VERSION:
        raise CheckpointError(
            f"{config_path}: written by a newer crn_tf (format {config['format_version']}); upgrade crn_tf"
        )
    return config


def save_model(
    model,
    directory: str | os.PathLike,
    label_set: LabelSet | str | dict | None = None,
    extra: dict[str, Any] | None = None,
) -> str:
    """Writes `model` as a checkpoint directory, atomically (a killed save leaves the old one).

    `label_set` defaults to the model's own (`model.label_set`) or Cityscapes; `extra` holds
    facts to keep beside it (training step, loss, source). Returns the directory.
    """
    from crn_tf import __version__

    label_set = resolve_label_set(label_set if label_set is not None else getattr(model, "label_set", CITYSCAPES))
    if label_set.num_classes != model.num_classes:
        raise ValueError(
            f"label set {label_set.name!r} has {label_set.num_classes} classes but the model takes {model.num_classes}"
        )
    directory = os.path.abspath(os.fspath(directory))
    parent = os.path.dirname(directory)
    os.makedirs(parent, exist_ok=True)
    model_config = {k: v for k, v in model.get_config().items() if k not in ("trainable", "dtype")}
    model_config["recompute"] = False  # a training-time choice, not part of the saved model
    config = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "crn_tf_version": __version__,
        "model": model_config,
        "label_set": label_set.to_dict(),
        "extra": extra or {},
    }
    staging = tempfile.mkdtemp(prefix=os.path.basename(directory) + ".tmp-", dir=parent)
    try:
        model.save_weights(os.path.join(staging, WEIGHTS_NAME))
        with open(os.path.join(staging, CONFIG_NAME), "w") as f:
            json.dump(config, f, indent=2)
        retired = None
        if os.path.exists(directory):
            retired = tempfile.mkdtemp(prefix=os.path.basename(directory) + ".old-", dir=parent)
            os.rmdir(retired)
            os.replace(directory, retired)
        os.replace(staging, directory)
        if retired:
            shutil.rmtree(retired, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return directory


def load_model(path: str | os.PathLike, dtype: str | None = None):
    """Rebuilds the CRN of a checkpoint directory (or a run directory's `model/`) with its weights.

    The returned model carries `label_set` and `checkpoint_info` (the config's `extra`).
    `dtype` is an optional Keras dtype policy, e.g. "mixed_bfloat16".
    """
    from crn_tf.model import CRN

    directory = resolve_checkpoint_dir(path)
    config = read_config(directory)
    weights = os.path.join(directory, WEIGHTS_NAME)
    if not os.path.isfile(weights):
        raise CheckpointError(f"{directory}: {WEIGHTS_NAME} is missing")
    model_config = dict(config["model"])
    if dtype is not None:
        model_config["dtype"] = dtype
    model = CRN(**{k: v for k, v in model_config.items() if k != "trainable"})
    model.build()
    try:
        model.load_weights(weights)
    except Exception as error:  # h5py/Keras raise several types for a bad or mismatched file
        raise CheckpointError(f"{weights}: cannot load weights into the model of {CONFIG_NAME} ({error})") from error
    model.label_set = LabelSet.from_dict(config["label_set"], source=os.path.join(directory, CONFIG_NAME))
    model.checkpoint_info = config.get("extra", {})
    return model
