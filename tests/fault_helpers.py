"""Fault injection for tests/test_faults.py: damaged files, and train.py stopping in the middle of a save.

Run as a script it is train.py with writers that stop at KILL_POINT during the save of step
KILL_STEP (writing the point's name to KILL_MARK, then sleeping) for the test to SIGKILL it there:

    KILL_POINT=model-swap KILL_STEP=12 KILL_MARK=FILE python tests/fault_helpers.py TRAIN_FLAGS...

Without KILL_POINT it is plain train.py. The points:
- loss-log: half of the step's line is in loss_log.txt;
- checkpoint-shards: TensorFlow wrote the shards into ckpt-N_temp/, not yet ckpt-N's own files;
- checkpoint-state: ckpt-N is complete, the `checkpoint` state file still names the one before;
- model-weights: model.partial/ holds the weights, not yet config.json;
- model-swap: model/ is moved aside to model.previous/, the new one is not yet in its place.
"""
import os
import signal
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# === damaging files ===
def flip_byte(path, offset=None):
    data = bytearray(open(path, "rb").read())
    data[len(data) // 2 if offset is None else offset] ^= 0x55
    open(path, "wb").write(bytes(data))


def truncate_half(path):
    os.truncate(path, os.path.getsize(path) // 2)


def leftovers(directory):
    """Temporary files and folders of interrupted writes anywhere under `directory`."""
    names = [os.path.relpath(os.path.join(folder, name), directory)
             for folder, dirs, files in os.walk(directory) for name in dirs + files]
    return [n for n in names if any(mark in os.path.basename(n) for mark in
                                    ("_temp", ".partial", ".previous", ".tmp", "scratch", ".stale", "crn_tf.lock"))]


# === train.py stopped in the middle of a save ===
def start_train(tmp_path, argv, point=None, step=None):
    """This script (train.py stopping at `point` of the save of `step`) in a subprocess."""
    driver = os.path.abspath(__file__)
    env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="2", KILL_MARK=str(tmp_path / "mark"))
    env.pop("TF_CONFIG", None)
    if point:
        env.update(KILL_POINT=point, KILL_STEP=str(step))
    return subprocess.Popen([sys.executable, driver, *argv], env=env, cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def stopped_at(tmp_path, process, point, timeout=240):
    """Waits until the script stops at `point` (then the process is still running); returns the process."""
    import pytest

    mark = tmp_path / "mark"
    deadline = time.monotonic() + timeout
    try:
        while not (mark.exists() and mark.read_text() == point):
            if process.poll() is not None:
                pytest.fail(f"the run ended before {point}: {process.stderr.read()[-3000:]}")
            assert time.monotonic() < deadline, f"not at {point} within {timeout} s"
            time.sleep(0.05)
    except BaseException:
        process.kill()
        raise
    return process


def kill(process):
    """SIGKILL; returns what the process wrote to stderr."""
    process.send_signal(signal.SIGKILL)
    _, err = process.communicate(timeout=60)
    return err


# === the script ===
POINT, STEP = os.environ.get("KILL_POINT"), int(os.environ.get("KILL_STEP", "-1"))
MARK = os.environ.get("KILL_MARK")
saving = {"step": None}  # the step whose checkpoint or model directory is being written


def stop_here(point, step=None):
    if point == POINT and (saving["step"] if step is None else step) == STEP:
        with open(MARK, "w") as f:
            f.write(point)
        time.sleep(600)


def wrap(owner, name, before=None, after=None):
    """Replaces owner.name by a function calling before(*args), the original, then after(*args)."""
    original = getattr(owner, name)

    def wrapper(*args, **kwargs):
        if before:
            before(*args, **kwargs)
        result = original(*args, **kwargs)
        if after:
            after(*args, **kwargs)
        return result

    setattr(owner, name, wrapper)


def main():
    from tensorflow.python.checkpoint import checkpoint_management
    from tensorflow.python.ops import gen_io_ops

    import crn_tf.weights.checkpoint
    from crn_tf.nn.model import CRN
    from crn_tf.training.callbacks import LossLog
    from crn_tf.training.cli import main as train_main
    from crn_tf.training.state import RunState

    wrap(RunState, "save", before=lambda self, step, *rest: saving.update(step=step))
    wrap(gen_io_ops, "merge_v2_checkpoints", before=lambda *a, **k: stop_here("checkpoint-shards"))
    wrap(checkpoint_management, "update_checkpoint_state_internal",
         before=lambda *a, **k: stop_here("checkpoint-state"))
    wrap(crn_tf.weights.checkpoint, "save_model",
         before=lambda model, directory, label_set=None, extra=None: saving.update(step=(extra or {}).get("step")))
    wrap(CRN, "save_weights", after=lambda *a, **k: stop_here("model-weights"))
    wrap(os, "replace", after=lambda source, destination, *a, **k:
         stop_here("model-swap") if str(destination).endswith(".previous") else None)

    def half_a_line(self, line, step=None):
        if POINT == "loss-log" and step == STEP:
            with open(self.path, "a") as f:
                f.write(line[: len(line) // 2])
            stop_here("loss-log", step)

    wrap(LossLog, "_append", before=half_a_line)
    return train_main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
