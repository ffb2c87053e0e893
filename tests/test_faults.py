"""Faults lose nothing: unreadable checkpoints, failed writes (a full disk), kills during a save,
two processes on one directory, damaged cache entries. Each fault is injected deterministically;
the full disk also for real on a small tmpfs when the tests run as root.
(crn_tf.core.locks itself: tests/test_core_locks.py.)
"""
import glob
import json
import logging
import os
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import write_city
from fault_helpers import (
    flip_byte,
    kill,
    leftovers,
    start_train,
    stopped_at,
    truncate_half,
)

from crn_tf.core.files import WriteError
from crn_tf.labels import CITYSCAPES
from crn_tf.loss.perceptual import CRNLoss
from crn_tf.nn.model import CRN
from crn_tf.training.actions import SaveCheckpoint
from crn_tf.training.callbacks import LossLog
from crn_tf.training.cli import main as train_main
from crn_tf.training.data import EpochData
from crn_tf.training.events import EventFile
from crn_tf.training.loop import CRNTrainer
from crn_tf.training.modules import init_from_checkpoint
from crn_tf.training.state import RunState
from crn_tf.weights.checkpoint import (
    CheckpointError,
    load_model,
    save_model,
    verify_tf_checkpoint,
)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SIZE, WIDTHS = (32, 64), (8, 8, 8, 8)
TINY = ["--size", "32x64", "--width-multiplier", "1/128", "--vgg-weights", "random", "--preset", "512p",
        "--lr", "1e-3", "--log-every", "1", "--strategy", "default"]
DATA = "-00000-of-00001"


@pytest.fixture(scope="module")
def city(tmp_path_factory):
    """4 training scenes: an epoch is 4 steps at batch size 1."""
    return write_city(tmp_path_factory, 4, 1, SIZE, seed=4)


def tiny_trainer(vgg, seed=0):
    keras.utils.set_random_seed(seed)
    model = CRN(output_size=SIZE, widths=WIDTHS)
    model.build()
    return CRNTrainer(model, CRNLoss(vgg), learning_rate=1e-3)


def run_state(trainer, directory):
    return RunState(directory, {"model": trainer.model, "optimizer": trainer.optimizer, "loss": trainer.loss})


def weights_of(model):
    return [v.numpy().copy() for v in model.weights]


# === 1. Resume from the newest readable checkpoint ===
def test_restore_skips_unreadable_checkpoints_naming_them_and_never_half_restores(city, vgg, tmp_path):
    trainer = tiny_trainer(vgg)
    state = run_state(trainer, tmp_path)
    trainer.fit(EpochData(city, SIZE, CITYSCAPES, global_batch_size=1), state, epochs=2, max_steps=6,
                actions=[SaveCheckpoint(state)], save_every=2)
    ckpts = tmp_path / "checkpoints"
    reference = tiny_trainer(vgg, seed=2)
    run_state(reference, tmp_path).restore(str(ckpts / "ckpt-2"))
    truncate_half(ckpts / f"ckpt-6.data{DATA}")  # a crash of the machine, a partial copy
    flip_byte(ckpts / f"ckpt-4.data{DATA}")
    for leftover in ("ckpt-8_temp", ".worker-1-scratch"):  # what killed saves leave
        (ckpts / leftover).mkdir()
    (ckpts / "checkpoint.tmp0a1b").write_text("")
    fresh = tiny_trainer(vgg, seed=1)
    state = run_state(fresh, tmp_path)
    assert state.restore() and state.counters() == (2, 0, 2)
    assert state.unreadable == [f"{ckpts}/ckpt-6.data{DATA}: truncated (Read less bytes than requested)",
                                f"{ckpts}/ckpt-4.data{DATA}: corrupt (checksum does not match)"]
    for mine, theirs in zip(weights_of(fresh.model) + [v.numpy() for v in fresh.optimizer.variables],
                            weights_of(reference.model) + [v.numpy() for v in reference.optimizer.variables]):
        np.testing.assert_array_equal(mine, theirs)
    assert tf.train.latest_checkpoint(str(ckpts)) == str(ckpts / "ckpt-2")  # the state file names it now
    assert leftovers(ckpts) == []
    # None readable: one error listing each, how to start fresh, and the model untouched.
    (ckpts / "ckpt-2.index").write_bytes(b"not an index" * 10)
    untouched = tiny_trainer(vgg, seed=3)
    before = weights_of(untouched.model)
    with pytest.raises(CheckpointError) as error:
        run_state(untouched, tmp_path).restore()
    assert str(error.value).splitlines() == [
        f"no checkpoint in {ckpts} can be read:",
        f"  {ckpts}/ckpt-6.data{DATA}: truncated (Read less bytes than requested)",
        f"  {ckpts}/ckpt-4.data{DATA}: corrupt (checksum does not match)",
        f"  {ckpts}/ckpt-2.index: not an sstable (bad magic number)",
        f"to start fresh, move or delete {ckpts} (or pass another --run-dir)"]
    for a, b in zip(weights_of(untouched.model), before):
        np.testing.assert_array_equal(a, b)


def test_only_the_chief_worker_takes_the_run_directorys_lock(monkeypatch):
    from crn_tf.training.strategy import is_chief_task

    for cluster, task, kind, chief in [
        ({"worker": ["a:1", "b:1"]}, {"type": "worker", "index": 0}, "auto", True),
        ({"worker": ["a:1", "b:1"]}, {"type": "worker", "index": 1}, "auto", False),
        ({"worker": ["a:1", "b:1"]}, {"type": "worker", "index": 1}, "default", True),  # TF_CONFIG unused
        ({"chief": ["a:1"], "worker": ["b:1"]}, {"type": "worker", "index": 0}, "multi-worker", False),
        ({"chief": ["a:1"], "worker": ["b:1"]}, {"type": "chief", "index": 0}, "auto", True),
    ]:
        monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": cluster, "task": task}))
        assert is_chief_task(kind) == chief, (cluster, task, kind)


def test_load_model_and_init_from_fall_back_to_the_runs_newest_readable_checkpoint(tmp_path, caplog):
    keras.utils.set_random_seed(0)
    model = CRN(output_size=SIZE, widths=WIDTHS)
    model.build()
    run = tmp_path / "run"
    state = RunState(run, {"model": model})
    save_model(model, run / "model", extra={"step": 3})
    for variable in model.weights:  # trained on: the checkpoint of step 5 holds other weights
        variable.assign(variable + 0.25)
    state.save(5, 1, 1)
    truncate_half(run / "model" / "model.weights.h5")
    with caplog.at_level(logging.WARNING, logger="crn_tf.weights.checkpoint"):
        loaded = load_model(run)
    assert f"{run}/model/model.weights.h5: cannot load weights" in caplog.text
    assert f"using the model of {run}/checkpoints/ckpt-5 (step 5) instead" in caplog.text
    assert loaded.checkpoint_info["step"] == 5
    for a, b in zip(weights_of(loaded), weights_of(model)):
        np.testing.assert_array_equal(a, b)
    plain = tmp_path / "plain"
    save_model(model, plain)
    truncate_half(plain / "model.weights.h5")
    with pytest.raises(CheckpointError, match=f"{plain}/model.weights.h5: cannot load weights"):
        load_model(plain)  # a checkpoint directory alone has nothing to fall back on
    truncate_half(run / "checkpoints" / f"ckpt-5.data{DATA}")
    with pytest.raises(CheckpointError) as error:
        load_model(run)
    lines = str(error.value).splitlines()
    assert lines[0] == f"no readable model in {run}:" and lines[1].startswith(f"  {run}/model/model.weights.h5: ")
    assert lines[2] == f"  {run}/checkpoints/ckpt-5.data{DATA}: truncated (Read less bytes than requested)"
    target = CRN(output_size=SIZE, widths=WIDTHS)
    target.build()
    before = weights_of(target)
    with pytest.raises(CheckpointError, match=r"(?s)^--init-from .*no readable model.*leave it out to train from "):
        init_from_checkpoint(target, str(run))
    for a, b in zip(weights_of(target), before):
        np.testing.assert_array_equal(a, b)


# === 2. A failed write: one line (path, step, cause), no temporary files, the last checkpoint intact ===
def test_a_failed_checkpoint_save_removes_its_files_and_keeps_the_last_one(vgg, tmp_path, monkeypatch):
    from tensorflow.python.ops import gen_io_ops

    trainer = tiny_trainer(vgg)
    state = run_state(trainer, tmp_path)
    ckpts = tmp_path / "checkpoints"
    state.save(2, 0, 2)
    seen = []

    def full_disk(prefixes, destination, delete_old_dirs=True):  # after the shards, as a real ENOSPC
        seen.append(sorted(os.listdir(ckpts)))
        raise tf.errors.ResourceExhaustedError(None, None, f"{destination}_temp/part-00000-of-00001.data{DATA}"
                                                           ".tempstate1; No space left on device")

    monkeypatch.setattr(gen_io_ops, "merge_v2_checkpoints", full_disk)
    with pytest.raises(WriteError) as error:
        state.save(4, 0, 4)
    assert str(error.value) == f"cannot write {ckpts}/ckpt-4 at step 4: no space left on device"
    assert "ckpt-4_temp" in seen[0]
    assert sorted(os.listdir(ckpts)) == ["checkpoint", f"ckpt-2.data{DATA}", "ckpt-2.index"]
    assert verify_tf_checkpoint(str(ckpts / "ckpt-2")) is None and state.latest == str(ckpts / "ckpt-2")
    monkeypatch.undo()
    import shutil

    free = shutil.disk_usage(ckpts)
    monkeypatch.setattr(shutil, "disk_usage", lambda path: free._replace(free=100 << 10))
    size = sum(os.path.getsize(ckpts / n) for n in os.listdir(ckpts) if n.startswith("ckpt-2."))
    with pytest.raises(WriteError, match=rf"ckpt-6 at step 6: no space left on device \(100.0 KB free, the last "
                                         rf"checkpoint took {size / 1024:.1f} KB\)"):
        state.save(6, 1, 2)  # said before writing anything
    assert sorted(os.listdir(ckpts)) == ["checkpoint", f"ckpt-2.data{DATA}", "ckpt-2.index"]


def full_disk_after(real_write, budget):
    """An os.write that writes `budget` bytes in all, then fails as a full disk does."""
    left = [budget]

    def write(descriptor, data):
        if left[0] <= 0:
            raise OSError(28, os.strerror(28))
        count = real_write(descriptor, data[: left[0]])
        left[0] -= count
        return count

    return write


def test_loss_log_events_grid_and_model_dir_fail_cleanly(tmp_path, monkeypatch, rng):
    log = LossLog(tmp_path / "loss_log.txt")
    log.write(1, 0, 2.5, 3.0)
    before = (tmp_path / "loss_log.txt").read_text()
    monkeypatch.setattr(os, "write", full_disk_after(os.write, 10))  # half a line, then the disk is full
    with pytest.raises(WriteError, match=rf"^cannot write {tmp_path}/loss_log.txt at step 2: no space left on device$"):
        log.write(2, 0, 1.5, 3.0)
    monkeypatch.undo()
    assert (tmp_path / "loss_log.txt").read_text() == before  # cut back: no half line
    # A crash's half line and the lines of steps after the checkpoint go on resume.
    with open(tmp_path / "loss_log.txt", "a") as f:
        f.write("2\t0\t1.5\t3\t2026-01-01 00:00:00\n3\t0\t1.25\t3\t2026-01-01 00:00:00\n4\t0\t1.")
    assert log.resume(2) == 2 and [r["step"] for r in log.read()] == [1, 2]

    events = EventFile(tmp_path / "logs")
    events.write(3, {"loss/total": (np.float32(1.5), "scalars")})
    good = os.path.getsize(events.path)

    class FailingFlush:
        def __init__(self, writer):
            self.writer = writer

        def write(self, record):
            self.writer.write(record)

        def flush(self):
            self.writer.flush()  # the record reaches the file, then the write fails
            raise tf.errors.ResourceExhaustedError(None, None, "No space left on device")

        def close(self):
            self.writer.close()

    path = events.path
    events._writer = FailingFlush(events._writer)
    with pytest.raises(WriteError, match=rf"^cannot write {path} at step 4: no space left on device$"):
        events.write(4, {"loss/total": (np.float32(1.25), "scalars")})
    assert os.path.getsize(path) == good  # cut back to its last complete record
    steps = [(e.step, v.tag) for e in tf.compat.v1.train.summary_iterator(path) for v in e.summary.value]
    assert steps == [(3, "loss/total")]

    from PIL import Image

    from crn_tf.training.visualizer import Visualizer

    monkeypatch.setattr(Image.Image, "save", lambda *a, **k: (_ for _ in ()).throw(OSError(28, os.strerror(28))))
    with pytest.raises(WriteError, match=r"epoch001_val.png at step 8: no space left on device"):
        Visualizer(tmp_path, CITYSCAPES).save_grid(1, np.zeros((4, 4, 3), np.uint8), step=8)
    monkeypatch.undo()
    assert leftovers(tmp_path / "web") == []

    # h5py reports a full disk only as an "Exception ignored" while it frees its objects.
    keras.utils.set_random_seed(0)
    model = CRN(output_size=SIZE, widths=WIDTHS)
    model.build()
    save_model(model, tmp_path / "model", extra={"step": 4})
    real_save = CRN.save_weights

    def silently_truncated(self, path, report=True):
        real_save(self, path)
        truncate_half(path)
        if report:
            sys.unraisablehook(type("Unraisable", (), {"exc_value": RuntimeError(
                "Can't decrement id ref count (file write failed: errno = 28, error message = "
                "'No space left on device')")})())

    for report, cause in ((True, "no space left on device"), (False, "the written file does not read back")):
        monkeypatch.setattr(CRN, "save_weights", lambda self, path: silently_truncated(self, path, report))
        with pytest.raises(WriteError, match=rf"^cannot write {tmp_path}/model.partial/model.weights.h5: {cause}"):
            save_model(model, tmp_path / "model", extra={"step": 8})
        monkeypatch.undo()
        assert load_model(tmp_path / "model").checkpoint_info["step"] == 4  # the previous one, whole
        assert leftovers(tmp_path) == []


def test_the_cli_reports_a_failed_save_in_one_line_and_the_same_command_resumes(city, tmp_path, monkeypatch,
                                                                                  capsys):
    from tensorflow.python.ops import gen_io_ops

    real_merge = gen_io_ops.merge_v2_checkpoints

    def full_at_step_4(prefixes, destination, delete_old_dirs=True):
        if str(destination.numpy().decode() if hasattr(destination, "numpy") else destination).endswith("ckpt-4"):
            raise tf.errors.ResourceExhaustedError(None, None, "part-00000; No space left on device")
        return real_merge(prefixes, destination, delete_old_dirs=delete_old_dirs)

    run = tmp_path / "run"
    argv = [*TINY, "--data", city, "--run-dir", str(run), "--steps", "6", "--save-every", "2"]
    monkeypatch.setattr(gen_io_ops, "merge_v2_checkpoints", full_at_step_4)
    assert train_main(argv) == 4
    err = capsys.readouterr().err
    failure = [line for line in err.splitlines() if line.startswith("crn-train:")]
    assert failure == [f"crn-train: error: cannot write {run}/checkpoints/ckpt-4 at step 4: no space left on device; "
                       f"the last good checkpoint, {run}/checkpoints/ckpt-2, is intact; free some space (or fix the "
                       "cause) and run the same command again to resume from it"]
    assert "Traceback" not in err and leftovers(run) == []
    monkeypatch.undo()
    assert train_main(argv) == 0
    assert "resumed from step 2 " in capsys.readouterr().err
    assert [r["step"] for r in LossLog(run / "loss_log.txt").read()] == [1, 2, 3, 4, 5, 6]


# === 2b. The disk fills for real: a small tmpfs (root only) ===
@pytest.fixture
def small_disk(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root (CI runs as root)")
    mount = tmp_path / "disk"
    mount.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=12m", "tmpfs", str(mount)], capture_output=True,
                            text=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(disk, leave):
    """Grows (or shrinks) DISK/filler so that `leave` bytes stay free."""
    import shutil

    filler = disk / "filler"
    size = os.path.getsize(filler) if filler.exists() else 0
    with open(filler, "ab") as f:
        f.truncate(max(0, size + shutil.disk_usage(disk).free - leave))
    with open(filler, "r+b") as f:  # tmpfs counts only written pages
        f.write(b"\0" * os.path.getsize(filler))


@pytest.mark.slow
def test_a_full_disk_for_real_stops_in_one_line_and_the_same_command_resumes(city, small_disk, capsys):
    run, other = small_disk / "run", small_disk / "other"
    argv = [*TINY, "--data", city, "--save-every", "2"]
    assert train_main([*argv, "--run-dir", str(run), "--steps", "2"]) == 0
    size = sum(os.path.getsize(p) for p in glob.glob(str(run / "checkpoints" / "ckpt-2.*")))
    capsys.readouterr()
    # Not enough room for another checkpoint: said before writing it (the last one's size).
    fill(small_disk, size // 2)
    assert train_main([*argv, "--run-dir", str(run), "--steps", "6"]) == 4
    err = capsys.readouterr().err
    assert "resumed from step 2 " in err and "Traceback" not in err
    line, = [line for line in err.splitlines() if line.startswith("crn-train:")]
    assert line.startswith(f"crn-train: error: cannot write {run}/checkpoints/ckpt-4 at step 4: no space left on "
                           "device (") and f"the last checkpoint took {size / 1024:.1f} KB)" in line
    assert f"the last good checkpoint, {run}/checkpoints/ckpt-2, is intact" in line
    # A first checkpoint that does not fit: TensorFlow's own ENOSPC, its ckpt-2_temp/ removed.
    fill(small_disk, size // 2)
    assert train_main([*argv, "--run-dir", str(other), "--steps", "6"]) == 4
    line, = [line for line in capsys.readouterr().err.splitlines() if line.startswith("crn-train:")]
    assert line.startswith(f"crn-train: error: cannot write {other}/checkpoints/ckpt-2 at step 2: no space left on "
                           "device; no checkpoint was written yet")
    assert leftovers(run) == leftovers(other) == []
    assert verify_tf_checkpoint(str(run / "checkpoints" / "ckpt-2")) is None
    os.remove(small_disk / "filler")  # space again: the same command resumes
    assert train_main([*argv, "--run-dir", str(run), "--steps", "6"]) == 0
    assert "resumed from step 2 " in capsys.readouterr().err
    assert [r["step"] for r in LossLog(run / "loss_log.txt").read()] == [1, 2, 3, 4, 5, 6]
    assert load_model(run).checkpoint_info["step"] == 6 and leftovers(run) == []


# === 3. SIGKILL at any moment of a save; one run per run directory ===
@pytest.mark.slow
def test_a_run_killed_at_any_moment_of_a_save_resumes_losing_at_most_the_steps_since_the_last(city, tmp_path):
    """One run directory, killed five times at five moments of a save; every restart resumes from the
    previous complete checkpoint, and the last ends with the weights of an uninterrupted run."""
    from crn_tf.training.options import parse_options
    from crn_tf.training.run import train

    run = tmp_path / "run"
    argv = [*TINY, "--data", city, "--run-dir", str(run), "--steps", "12", "--save-every", "2",
            "--summary-every", "3"]
    kills = [("loss-log", 5, 4), ("checkpoint-shards", 6, 4), ("checkpoint-state", 6, 4), ("model-weights", 8, 6),
             ("model-swap", 12, 8)]  # (where, at the save of step, the checkpoint the run had resumed from)
    for index, (point, step, resumed) in enumerate(kills):
        (tmp_path / "mark").unlink(missing_ok=True)
        err = kill(stopped_at(tmp_path, start_train(tmp_path, argv, point, step), point))
        assert (f"resumed from step {resumed} " in err) == (index > 0), err[-2000:]
        if point == "model-swap":  # readers take the previous model/ meanwhile
            assert load_model(run).checkpoint_info["step"] == 4
    last = start_train(tmp_path, argv)
    _, err = last.communicate(timeout=240)
    assert last.returncode == 0, err[-3000:]
    assert "resumed from step 12 " in err and "done: 12 steps" in err
    assert [r["step"] for r in LossLog(run / "loss_log.txt").read()] == list(range(1, 13))
    assert leftovers(run) == []
    assert sorted(os.listdir(run / "checkpoints")) == ["checkpoint"] + [
        f"ckpt-{n}.{kind}" for n in (10, 12, 8) for kind in (f"data{DATA}", "index")]
    resumed = load_model(run)
    assert resumed.checkpoint_info["step"] == 12
    reference = train(parse_options([*argv[:-6], "--run-dir", str(tmp_path / "straight"), "--steps", "12",
                                     "--save-every", "2"]))
    for a, b in zip(weights_of(resumed), weights_of(reference.trainer.model)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


@pytest.mark.slow
def test_a_second_train_py_on_a_run_dir_is_refused_at_once_and_a_dead_ones_lock_taken_over(city, tmp_path):
    run = tmp_path / "run"
    argv = [*TINY, "--data", city, "--run-dir", str(run), "--steps", "4", "--save-every", "2"]
    first = stopped_at(tmp_path, start_train(tmp_path, argv, "checkpoint-state", 2), "checkpoint-state")
    try:
        started = time.monotonic()
        second = subprocess.run([sys.executable, os.path.join(ROOT, "train.py"), *argv], capture_output=True,
                                text=True, env=dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="2"),
                                timeout=240)
        refused_in = time.monotonic() - started
    finally:
        kill(first)
    assert second.returncode == 5, second.stderr[-3000:]
    line, = [line for line in second.stderr.splitlines() if line.startswith("crn-train:")]
    assert line.startswith(f"crn-train: error: {run} is in use by another process: pid {first.pid} on ")
    assert "strategy:" not in second.stderr and refused_in < 60  # before the data scan and the model
    assert [r["step"] for r in LossLog(run / "loss_log.txt").read()] == [1, 2]
    third = subprocess.run([sys.executable, os.path.join(ROOT, "train.py"), *argv], capture_output=True, text=True,
                           env=dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="2"), timeout=240)
    assert third.returncode == 0, third.stderr[-3000:]
    assert f"warning: {run} was locked by pid {first.pid} on " in third.stderr
    assert "no longer running; taking the lock over" in third.stderr and "resumed from step 2 " in third.stderr
    assert not (run / "crn_tf.lock").exists()


# === 5. Caches: a damaged entry is recomputed, never read as data ===
def test_a_damaged_feature_cache_entry_is_recomputed(tmp_path, rng):
    from crn_tf.core.images import save_png
    from crn_tf.evaluate.features import folder_features
    from crn_tf.evaluate.inception import FeatureExtractor

    paths = []
    for index in range(3):
        paths.append(str(tmp_path / f"image_{index}.png"))
        save_png(paths[-1], rng.integers(0, 256, (8, 16, 3), dtype=np.uint8))
    calls = []

    def mean_colour(images):
        calls.append(len(images))
        return images.mean(axis=(1, 2))

    extractor = FeatureExtractor("mean colour", "mean-colour-v1", False, "test", 3, mean_colour)
    expected = np.stack([np.asarray(__import__("PIL.Image").Image.open(p), np.float64).mean(axis=(0, 1))
                         for p in paths])
    cache = tmp_path / "cache"
    np.testing.assert_allclose(folder_features(paths, extractor, cache), expected)
    entry, = glob.glob(str(cache / "*.npz"))
    intact = open(entry, "rb").read()
    damages = {"truncated": lambda: truncate_half(entry), "a flipped byte": lambda: flip_byte(entry),
               "another file list": lambda: np.savez(entry, features=expected, files=np.array(paths[::-1]),
                                                     extractor=extractor.key)}
    for name, damage in damages.items():
        open(entry, "wb").write(intact)
        damage()
        calls.clear()
        np.testing.assert_allclose(folder_features(paths, extractor, cache), expected, err_msg=name)
        assert calls, f"{name}: read as data"
        calls.clear()
        np.testing.assert_allclose(folder_features(paths, extractor, cache), expected)
        assert not calls, f"{name}: the recomputed entry was not written back"


def test_prepare_writes_again_a_corrupt_output_and_drops_a_killed_runs_temporaries(city, tmp_path):
    from crn_tf.data import find_examples, make_dataset
    from crn_tf.data.prepare import prepare

    prepare(city, tmp_path, size=(16, 32), progress=False)
    first = [v.numpy() for v in next(iter(make_dataset(tmp_path, batch_size=4, shuffle=False)))]
    stems = [e.stem for e in find_examples(city)]
    label = tmp_path / "train" / "labels" / f"{stems[1]}.png"
    data = label.read_bytes()
    flip_byte(label, data.index(b"IDAT") + 8)  # a bit flip inside the pixel data: the header still reads
    (tmp_path / "train" / "images" / f"{stems[0]}.tmp-4242.png").write_bytes(data[:20])  # a killed run's
    result = prepare(city, tmp_path, size=(16, 32), progress=False)
    assert (result["written"], result["skipped"]) == (1, len(stems) - 1)
    assert label.read_bytes() == data and leftovers(tmp_path) == []
    again = [v.numpy() for v in next(iter(make_dataset(tmp_path, batch_size=4, shuffle=False)))]
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
