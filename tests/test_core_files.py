"""crn_tf.core.files: atomic writes (temporary file beside the target, then a rename)."""
import os

import numpy as np
import pytest

from crn_tf.core.files import atomic_directory, atomic_path, write_atomic


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


def test_a_failed_write_is_a_one_line_write_error_naming_the_path_and_the_cause(tmp_path, monkeypatch):
    import errno

    from crn_tf.core.files import WriteError, describe_cause

    target = tmp_path / "options.json"
    target.write_text("old")
    real_replace = os.replace

    def full_disk(source, destination):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "replace", full_disk)
    with pytest.raises(WriteError) as failed:
        write_atomic(target, "new")
    monkeypatch.setattr(os, "replace", real_replace)
    assert str(failed.value) == f"cannot write {target}: no space left on device"
    assert failed.value.errno == errno.ENOSPC and isinstance(failed.value, OSError)
    failed.value.step, failed.value.advice = 7, "the last checkpoint is kept"
    assert str(failed.value) == f"cannot write {target} at step 7: no space left on device; the last checkpoint is kept"
    assert target.read_text() == "old" and os.listdir(tmp_path) == ["options.json"]
    # TensorFlow and h5py errors carry the cause in their text only.
    assert describe_cause(RuntimeError("file write failed: errno = 28, error message = 'No space left on device'")) \
        == "no space left on device"
    assert describe_cause(ValueError("something else\nentirely")) == "something else entirely"


def test_free_space_check_and_temporary_file_clean_up(tmp_path, monkeypatch):
    import shutil

    from crn_tf.core.files import WriteError, check_free_space, remove_temporary_files

    check_free_space(tmp_path / "not" / "yet", 1, "the last one")  # measured at the nearest existing parent
    monkeypatch.setattr(shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(10 << 20, 9 << 20, 1536))
    with pytest.raises(WriteError, match=r"cannot write .*ckpt-4 at step 4: no space left on device "
                                         r"\(1.5 KB free, the last checkpoint took 2.0 MB\)"):
        check_free_space(tmp_path / "ckpt-4", 2 << 20, "the last checkpoint", step=4)
    for name in ("a.tmp-123.png", "b.tmp-9.npz", "c.png", "d.tmp-x.png"):
        (tmp_path / name).write_bytes(b"")
    assert sorted(remove_temporary_files(tmp_path)) == ["a.tmp-123.png", "b.tmp-9.npz"]
    assert sorted(os.listdir(tmp_path)) == ["c.png", "d.tmp-x.png"]
