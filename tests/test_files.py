"""crn_tf.files: atomic writes (temporary file beside the target, then a rename)."""
import os

import numpy as np
import pytest

from crn_tf.files import atomic_directory, atomic_path, write_atomic


def test_write_text_and_bytes_creating_the_folder(tmp_path):
    text_path = tmp_path / "new" / "report.md"
    assert write_atomic(text_path, "é\n") == str(text_path)
    assert text_path.read_bytes() == "é\n".encode("utf-8")
    write_atomic(tmp_path / "model.tflite", b"\x00\x01")
    assert (tmp_path / "model.tflite").read_bytes() == b"\x00\x01"
    assert sorted(os.listdir(tmp_path)) == ["model.tflite", "new"]


def test_temporary_name_keeps_the_extension_and_an_error_keeps_the_old_file(tmp_path):
    target = tmp_path / "features.npz"
    with atomic_path(target) as temporary:
        assert temporary == str(tmp_path / f"features.tmp-{os.getpid()}.npz")
        np.savez(temporary, x=np.arange(3))  # np.savez would append .npz to any other name
    with np.load(target) as data:
        np.testing.assert_array_equal(data["x"], [0, 1, 2])
    old = target.read_bytes()
    with pytest.raises(RuntimeError):
        with atomic_path(target) as temporary:
            with open(temporary, "wb") as f:
                f.write(b"half")
            raise RuntimeError("killed mid-write")
    assert target.read_bytes() == old and os.listdir(tmp_path) == ["features.npz"]


def test_atomic_directory_replaces_the_whole_folder_or_nothing(tmp_path):
    target = tmp_path / "out" / "saved_model"
    with atomic_directory(target) as staging:
        assert os.path.dirname(staging) == str(tmp_path / "out") and os.listdir(staging) == []
        (tmp_path / "out" / os.path.basename(staging) / "a.txt").write_text("1")
    assert os.listdir(target) == ["a.txt"]
    with atomic_directory(target) as staging:
        with open(os.path.join(staging, "b.txt"), "w") as f:
            f.write("2")
    assert os.listdir(target) == ["b.txt"]  # the old folder's files are gone with it
    with pytest.raises(RuntimeError):
        with atomic_directory(target) as staging:
            with open(os.path.join(staging, "c.txt"), "w") as f:
                f.write("half")
            raise RuntimeError("killed while writing")
    assert os.listdir(target) == ["b.txt"] and sorted(os.listdir(tmp_path / "out")) == ["saved_model"]
