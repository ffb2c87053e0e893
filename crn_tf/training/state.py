"""The run directory's resumable state: tf.train checkpoints, and stopping cleanly on signals.

`RunState` checkpoints everything a resumed run needs to continue exactly: the model, the
optimizer (Adam moments, iteration count, loss scale), the loss's layer weights, the step, the
epoch and the position inside the epoch (the data order is a seeded shuffle per epoch, so
epoch + position pins it). Checkpoints go to `RUN_DIR/checkpoints/ckpt-STEP.*`; TensorFlow
writes the data files first and then replaces the small `checkpoint` index file atomically,
so a run killed while saving still resumes from the previous complete checkpoint.
"""
from __future__ import annotations

import os
import shutil
import signal
import sys
from typing import Any

import tensorflow as tf

CHECKPOINT_SUBDIR = "checkpoints"


class RunState:
    """Step, epoch and position counters plus a CheckpointManager over the training objects.

    Create it inside `strategy.scope()`, after the optimizer's variables exist
    (`optimizer.build(variables)`), so restoring fills every slot at once.

    Args:
        run_dir: the run directory.
        trackables: objects to checkpoint by name (model, optimizer, loss, ...).
        keep: checkpoints to keep.
        chief: whether this worker owns the run directory. Other workers of a multi-worker
            run must take part in every save (it is collective) but write to a scratch
            directory that is deleted afterwards; they restore from the chief's directory,
            so the run directory must be on a file system all workers see.
        worker: this worker's index (names the scratch directory).
    """

    def __init__(self, run_dir: str | os.PathLike, trackables: dict[str, Any], keep: int = 3,
                 chief: bool = True, worker: int = 0):
        self.directory = os.path.join(os.fspath(run_dir), CHECKPOINT_SUBDIR)
        self.chief = chief
        self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
        self.position = tf.Variable(0, dtype=tf.int64, trainable=False, name="position")
        self.checkpoint = tf.train.Checkpoint(step=self.step, epoch=self.epoch, position=self.position, **trackables)
        write_dir = self.directory if chief else os.path.join(self.directory, f".worker-{worker}-scratch")
        self.manager = tf.train.CheckpointManager(
            self.checkpoint, write_dir, max_to_keep=keep, step_counter=self.step, checkpoint_name="ckpt"
        )

    @property
    def latest(self) -> str | None:
        """Path prefix of the newest complete checkpoint in the run directory, or None."""
        return tf.train.latest_checkpoint(self.directory)

    def restore(self, path: str | None = None) -> bool:
        """Restores the newest (or the given) checkpoint; False when there is none."""
        path = path or self.latest
        if path is None:
            return False
        status = self.checkpoint.restore(path)
        status.assert_existing_objects_matched()
        return True

    def counters(self) -> tuple[int, int, int]:
        """(step, epoch, position) as Python ints."""
        return int(self.step.numpy()), int(self.epoch.numpy()), int(self.position.numpy())

    def save(self, step: int, epoch: int, position: int) -> str | None:
        """Writes a checkpoint of the current state at `step`; returns its path (chief) or None."""
        self.step.assign(step)
        self.epoch.assign(epoch)
        self.position.assign(position)
        path = self.manager.save(checkpoint_number=step)
        if not self.chief:
            shutil.rmtree(self.manager.directory, ignore_errors=True)
            return None
        return path


class StopRequest:
    """Context manager turning SIGINT/SIGTERM into a flag the loop checks between steps.

    The first signal asks the loop to save a checkpoint and stop; a second SIGINT while that
    is under way raises KeyboardInterrupt as usual.
    """

    SIGNALS = ("SIGINT", "SIGTERM")

    def __init__(self):
        self.signal_name: str | None = None
        self._previous: dict[int, Any] = {}

    @property
    def requested(self) -> bool:
        return self.signal_name is not None

    def _handle(self, signum, frame):
        if self.signal_name is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signal_name = signal.Signals(signum).name
        print(f"\n{self.signal_name} received: saving a checkpoint and stopping after this step "
              "(Ctrl-C again to abort without saving)", file=sys.stderr, flush=True)

    def __enter__(self) -> "StopRequest":
        import threading

        if threading.current_thread() is threading.main_thread():
            for name in self.SIGNALS:
                number = getattr(signal, name)
                self._previous[number] = signal.signal(number, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for number, handler in self._previous.items():
            signal.signal(number, handler)
        self._previous.clear()
