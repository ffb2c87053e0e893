"""Checkpoint directories: the one format for a trained model that every crn_tf tool reads.

A checkpoint directory holds `config.json` (the model's constructor arguments, its label set and
free-form facts such as the training step) and `model.weights.h5` (Keras weights). Demo, export
and evaluate rebuild the model from `config.json`, never from repeated command-line flags.

Saving is atomic: the new directory is written as `NAME.partial`, checked to read back, and
swapped in (`NAME` -> `NAME.previous`, `NAME.partial` -> `NAME`); a save killed between the two
renames is read from, and on the next save rolled back to, `NAME.previous`. The tf.train
checkpoints of a training run are read here too (`newest_readable_checkpoint`): every tensor is
read back (CRC-checked) before anything is restored, so a truncated or corrupt file is skipped,
named, and never half-restored.
"""
from __future__ import annotations

import gc
import json
import logging
import os
import re
import shutil
import sys
from typing import Any

from crn_tf.core.files import (
    as_write_error,
    check_free_space,
    describe_cause,
    tree_size,
)
from crn_tf.labels import CITYSCAPES, LabelSet, resolve_label_set

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.weights.h5"
FORMAT = "crn_tf-checkpoint"
FORMAT_VERSION = 1
STAGING_SUFFIX = ".partial"  # a save being written
PREVIOUS_SUFFIX = ".previous"  # the directory a save replaces, until the new one is in place
RUN_CHECKPOINTS = "checkpoints"  # a training run's tf.train checkpoints (crn_tf.training.state)

logger = logging.getLogger(__name__)


class CheckpointError(ValueError):
    """A path is not a usable checkpoint directory; the message says why and what to do."""


def resolve_checkpoint_dir(path: str | os.PathLike) -> str:
    """The checkpoint directory at `path`: the directory itself, or `path/model` of a training run.

    When a save was killed between its two renames, the previous directory (`NAME.previous`) is it.
    """
    path = os.fspath(path)
    run_model = os.path.join(path, "model")
    for candidate in (path, path + PREVIOUS_SUFFIX, run_model, run_model + PREVIOUS_SUFFIX):
        if os.path.isfile(os.path.join(candidate, CONFIG_NAME)):
            return candidate
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
    try:
        os.makedirs(parent, exist_ok=True)
    except OSError as error:
        raise as_write_error(parent, error) from error
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
    _finish_interrupted_save(directory)
    if os.path.isdir(directory):  # the new directory is complete before the old one goes
        check_free_space(parent, tree_size(directory), f"the last save of {os.path.basename(directory)}/")
    staging, previous = directory + STAGING_SUFFIX, directory + PREVIOUS_SUFFIX
    try:
        os.makedirs(staging)
        _save_weights_checked(model, os.path.join(staging, WEIGHTS_NAME))
        config_path = os.path.join(staging, CONFIG_NAME)
        try:
            with open(config_path, "w") as f:
                json.dump(config, f, indent=2)
                f.flush()
                os.fsync(f.fileno())
        except OSError as error:
            raise as_write_error(config_path, error) from error
        try:
            if os.path.exists(directory):
                os.replace(directory, previous)
            os.replace(staging, directory)
        except OSError as error:
            raise as_write_error(directory, error) from error
        shutil.rmtree(previous, ignore_errors=True)
    except BaseException as error:
        shutil.rmtree(staging, ignore_errors=True)
        if os.path.isdir(previous) and not os.path.exists(directory):
            os.replace(previous, directory)  # a rename back: needs no space
        if isinstance(error, OSError):
            raise as_write_error(directory, error) from error
        raise
    return directory


def _finish_interrupted_save(directory: str) -> None:
    """Cleans up after a save killed part-way: the half-written `.partial` goes; a `.previous` left
    by a kill between the two renames becomes the directory again (the last complete save)."""
    previous = directory + PREVIOUS_SUFFIX
    if os.path.isdir(previous):
        if os.path.isfile(os.path.join(directory, CONFIG_NAME)):
            shutil.rmtree(previous, ignore_errors=True)  # the new one was in place; only the clean-up was lost
        elif not os.path.exists(directory):
            os.replace(previous, directory)
    shutil.rmtree(directory + STAGING_SUFFIX, ignore_errors=True)


def _save_weights_checked(model, path: str) -> None:
    """`model.save_weights(path)`, then read back; WriteError if either fails.

    h5py does not raise when the disk fills while it closes the file: it reports the failed
    write as an "Exception ignored" while freeing its objects and leaves a truncated file. Those
    reports are caught here, and the file must read back whole.
    """
    reported: list[BaseException] = []
    hook = sys.unraisablehook

    def collect(unraisable) -> None:
        error = unraisable.exc_value
        if "write failed" in str(error) or describe_cause(error) == "no space left on device":
            reported.append(error)
        else:
            hook(unraisable)  # not h5py's: reported as usual

    sys.unraisablehook = collect
    try:
        model.save_weights(path)
        gc.collect()  # h5py's objects report their failed writes when freed
    except Exception as error:  # h5py and Keras raise OSError, RuntimeError, ValueError ...
        raise as_write_error(path, error) from error
    finally:
        sys.unraisablehook = hook
    if reported:
        raise as_write_error(path, reported[0])
    try:
        import h5py

        with h5py.File(path, "r") as f:
            f.visititems(lambda name, item: item[()] if isinstance(item, h5py.Dataset) else None)
        with open(path, "rb+") as f:
            os.fsync(f.fileno())
    except Exception as error:
        raise as_write_error(path, RuntimeError(f"the written file does not read back ({describe_read_error(error)})"))


def load_model(path: str | os.PathLike, dtype: str | None = None):
    """Rebuilds the CRN of a checkpoint directory (or a run directory's `model/`) with its weights.

    The returned model carries `label_set` and `checkpoint_info` (the config's `extra`).
    `dtype` is an optional Keras dtype policy, e.g. "mixed_bfloat16".
    """
    from crn_tf.nn.model import CRN

    directory = resolve_checkpoint_dir(path)
    config = read_config(directory)
    weights = os.path.join(directory, WEIGHTS_NAME)
    if not os.path.isfile(weights):
        raise CheckpointError(f"{directory}: {WEIGHTS_NAME} is missing")
    model_config = dict(config["model"])
    if dtype is not None:
        model_config["dtype"] = dtype

    def build() -> CRN:
        model = CRN(**{k: v for k, v in model_config.items() if k != "trainable"})
        model.build()
        return model

    model = build()
    info = dict(config.get("extra", {}))
    try:
        model.load_weights(weights)
    except Exception as error:  # h5py/Keras raise several types for a bad or mismatched file
        problem = f"{weights}: cannot load weights into the model of {CONFIG_NAME} ({error})"
        model = _model_from_run_checkpoints(directory, build, problem, info)  # a fresh model: none half-loaded
    model.label_set = LabelSet.from_dict(config["label_set"], source=os.path.join(directory, CONFIG_NAME))
    model.checkpoint_info = info
    return model


def _model_from_run_checkpoints(directory: str, build, problem: str, info: dict):
    """For a training run's `model/` whose weights do not load: the model of the run's newest
    checkpoint that reads back whole, with a warning; else CheckpointError listing every file tried."""
    import tensorflow as tf

    checkpoints = os.path.join(os.path.dirname(directory), RUN_CHECKPOINTS)
    if os.path.basename(directory) not in ("model", "model" + PREVIOUS_SUFFIX) or not os.path.isdir(checkpoints):
        raise CheckpointError(problem)
    prefix, problems = newest_readable_checkpoint(checkpoints)
    if prefix is None:
        listing = "".join(f"\n  {line}" for line in [problem] + problems)
        raise CheckpointError(f"no readable model in {os.path.dirname(directory)}:{listing}")
    model = build()
    reader = tf.train.load_checkpoint(prefix)
    names = reader.get_variable_to_dtype_map()
    if not all(any(name.startswith(f"model/{module.name}/") for name in names) for module in model.refinement_modules):
        listing = "".join(f"\n  {line}" for line in [problem, f"{prefix}: holds only the trained modules (written "
                                                               "by an older crn_tf)"])
        raise CheckpointError(f"no readable model in {os.path.dirname(directory)}:{listing}")
    status = tf.train.Checkpoint(model=model).read(prefix)  # the layout of crn_tf.training.state's checkpoints
    status.expect_partial()  # the optimizer, the loss weights and the counters stay in the file
    status.assert_existing_objects_matched()
    info["step"] = int(reader.get_tensor("step/.ATTRIBUTES/VARIABLE_VALUE"))
    info["weights_from"] = prefix
    logger.warning("warning: %s; using the model of %s (step %d) instead", problem, prefix, info["step"])
    return model


# === tf.train checkpoints of a training run ===
def _numbered_name(name: str) -> re.Pattern:
    return re.compile(rf"^{re.escape(name)}-(\d+)(?:\.index|\.data-\d+-of-\d+)$")


def tf_checkpoint_prefixes(directory: str | os.PathLike, name: str = "ckpt") -> list[str]:
    """Prefixes of the tf.train checkpoints in `directory`, newest (highest number) first.

    Both what the files on disk show and what the `checkpoint` state file names, so neither a
    stale state file (a save killed before updating it) nor a damaged one hides a checkpoint.
    """
    directory = os.fspath(directory)
    pattern = _numbered_name(name)
    numbers = set()
    names = os.listdir(directory) if os.path.isdir(directory) else []
    for entry in names:
        match = pattern.match(entry)
        if match:
            numbers.add(int(match.group(1)))
    try:
        with open(os.path.join(directory, "checkpoint")) as f:
            state = f.read()
    except (OSError, UnicodeDecodeError):
        state = ""
    for listed in re.findall(r'^\s*(?:model_checkpoint_path|all_model_checkpoint_paths):\s*"([^"]*)"', state, re.M):
        match = re.match(rf"^{re.escape(name)}-(\d+)$", os.path.basename(listed))
        if match:
            numbers.add(int(match.group(1)))
    return [os.path.join(directory, f"{name}-{number}") for number in sorted(numbers, reverse=True)]


def tf_checkpoint_files(prefix: str) -> list[str]:
    """The files of a tf.train checkpoint that exist: its `.index` and its `.data-*` shards."""
    folder, base = os.path.split(prefix)
    names = os.listdir(folder) if os.path.isdir(folder) else []
    return sorted(os.path.join(folder, n) for n in names
                  if n == base + ".index" or re.match(rf"^{re.escape(base)}\.data-\d+-of-\d+$", n))


def describe_read_error(error: BaseException) -> str:
    """Why a file did not read, in words: "truncated (...)", "corrupt (checksum does not match)", ..."""
    text = " ".join(str(getattr(error, "message", "") or error).split())
    if "Read less bytes than requested" in text or "truncated" in text.lower() or isinstance(error, EOFError):
        return f"truncated ({text[:150]})"
    if "checksum does not match" in text.lower():
        return "corrupt (checksum does not match)"
    return text[:200] or type(error).__name__


def verify_tf_checkpoint(prefix: str) -> str | None:
    """None when every tensor of the checkpoint reads back (each one CRC-checked); else one line
    naming the bad file and what is wrong. Reads the whole checkpoint, restores nothing."""
    import tensorflow as tf

    files = tf_checkpoint_files(prefix)
    index = prefix + ".index"
    data = [f for f in files if f != index] or [prefix + ".data-00000-of-00001"]
    if index not in files:
        return f"{index}: missing" + (" (its save was interrupted)" if files else "")
    try:
        reader = tf.train.load_checkpoint(prefix)
        names = list(reader.get_variable_to_dtype_map())
    except Exception as error:  # DataLossError, NotFoundError, ...
        return f"{index}: {describe_read_error(error)}"
    try:
        for tensor in names:
            reader.get_tensor(tensor)
    except Exception as error:  # IndexError for a truncated shard, DataLossError for a bad checksum
        missing = [f for f in data if not os.path.exists(f)]
        return f"{', '.join(missing or data)}: {'missing' if missing else describe_read_error(error)}"
    return None


def newest_readable_checkpoint(directory: str | os.PathLike, name: str = "ckpt") -> tuple[str | None, list[str]]:
    """(the newest tf.train checkpoint in `directory` that reads back whole, or None;
    one line per newer checkpoint that does not, naming its bad file)."""
    problems = []
    for prefix in tf_checkpoint_prefixes(directory, name):
        problem = verify_tf_checkpoint(prefix)
        if problem is None:
            return prefix, problems
        problems.append(problem)
    return None, problems
