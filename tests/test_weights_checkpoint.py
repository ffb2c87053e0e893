"""Checkpoint directories: config.json + weights, written atomically, read by every tool."""
import json
import os

import numpy as np
import pytest

from crn_tf.labels import LabelClass, LabelSet
from crn_tf.nn.model import CRN
from crn_tf.weights.checkpoint import (
    CheckpointError,
    load_model,
    read_config,
    resolve_checkpoint_dir,
    save_model,
)


def tiny(num_classes=19):
    model = CRN(output_size=(16, 32), widths=(4, 4, 4), num_classes=num_classes, num_images=2)
    model.build()
    return model


def test_save_and_load_round_trip(tmp_path, rng):
    model = tiny()
    layout = np.eye(20, dtype=np.float32)[rng.integers(0, 20, (1, 16, 32))]
    directory = save_model(model, tmp_path / "ckpt", extra={"step": 7})
    assert sorted(os.listdir(directory)) == ["config.json", "model.weights.h5"]
    loaded = load_model(directory)
    np.testing.assert_array_equal(loaded(layout).numpy(), model(layout).numpy())
    assert loaded.checkpoint_info == {"step": 7} and loaded.label_set.name == "cityscapes"
    config = read_config(directory)
    assert config["model"]["widths"] == [4, 4, 4] and config["label_set"]["classes"][0]["name"] == "road"


def test_save_replaces_atomically(tmp_path):
    model = tiny()
    save_model(model, tmp_path / "ckpt", extra={"step": 1})
    save_model(model, tmp_path / "ckpt", extra={"step": 2})
    assert read_config(tmp_path / "ckpt")["extra"] == {"step": 2}
    assert os.listdir(tmp_path) == ["ckpt"]  # no staging or retired directories left behind


def test_custom_label_set_is_stored(tmp_path):
    five = LabelSet("five", tuple(LabelClass(f"c{i}", i + 1, (i * 40, 0, 0)) for i in range(5)), void_ids=(0,))
    model = tiny(num_classes=5)
    save_model(model, tmp_path / "ckpt", label_set=five)
    assert load_model(tmp_path / "ckpt").label_set == five
    with pytest.raises(ValueError, match="has 5 classes but the model takes 19"):
        save_model(tiny(), tmp_path / "other", label_set=five)


def test_run_directory_resolves_to_its_model(tmp_path):
    save_model(tiny(), tmp_path / "run" / "model")
    assert resolve_checkpoint_dir(tmp_path / "run") == os.fspath(tmp_path / "run" / "model")


def test_bad_paths_are_clear_errors(tmp_path):
    with pytest.raises(CheckpointError, match="no such checkpoint directory"):
        load_model(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="not a crn_tf checkpoint"):
        load_model(tmp_path / "empty")
    (tmp_path / "model.ckpt.index").write_bytes(b"")
    with pytest.raises(CheckpointError, match="python -m crn_tf.tf1_import"):
        load_model(tmp_path / "model.ckpt")
    save_model(tiny(), tmp_path / "broken")
    (tmp_path / "broken" / "config.json").write_text("{")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_model(tmp_path / "broken")
    save_model(tiny(), tmp_path / "mismatch")
    config = json.loads((tmp_path / "mismatch" / "config.json").read_text())
    config["model"]["widths"] = [8, 8, 8]
    (tmp_path / "mismatch" / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="cannot load weights"):
        load_model(tmp_path / "mismatch")
