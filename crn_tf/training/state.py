"""The run directory's resumable state: tf.train checkpoints, and stopping cleanly on signals.

`RunState` checkpoints everything a resumed run needs to continue exactly: the model, the
optimizer (Adam moments, iteration count, loss scale), the loss's layer weights, the step, the
epoch and the position inside the epoch (the data order is a seeded shuffle per epoch, so
epoch + position pins it). Checkpoints go to `RUN_DIR/checkpoints/ckpt-STEP.*`.

Nothing a fault does to them is fatal. TensorFlow writes a checkpoint's files before it
replaces the small `checkpoint` state file, so a run killed while saving leaves the previous
checkpoint; `restore` then takes the newest checkpoint that reads back whole (a truncated or
corrupt one is named and skipped, never half-restored) and removes what the killed save left
(`ckpt-N_temp/`). A save that fails (a full disk) removes its partial files and raises
`WriteError`; before each save the free space is checked against the size of the last one.
"""
from __future__ import annotations

import logging
import os
import re
import shutil
import signal
import time
from typing import Any

import tensorflow as tf

from crn_tf.core.files import as_write_error, check_free_space, write_atomic
from crn_tf.weights.checkpoint import (
    CheckpointError,
    newest_readable_checkpoint,
    tf_checkpoint_files,
    tf_checkpoint_prefixes,
    verify_tf_checkpoint,
)

logger = logging.getLogger(__name__)

CHECKPOINT_SUBDIR = "checkpoints"
STATE_FILE = "checkpoint"  # TensorFlow's name for the state file of a checkpoint directory
_LEFTOVER = re.compile(r"^(ckpt-\d+_temp|checkpoint\.tmp[0-9a-f]*|\.worker-\d+-scratch)$")
"""What killed saves leave: TensorFlow's shard folders and state-file temporaries, other workers' scratch."""


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
        self.keep = keep
        self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
        self.position = tf.Variable(0, dtype=tf.int64, trainable=False, name="position")
        self.checkpoint = tf.train.Checkpoint(step=self.step, epoch=self.epoch, position=self.position, **trackables)
        self.write_dir = self.directory if chief else os.path.join(self.directory, f".worker-{worker}-scratch")
        self.unreadable: list[str] = []  # checkpoints the last restore() skipped, one line each
        self._latest: str | None = None
        self._last_size: int | None = None  # bytes of the last checkpoint, for the free-space check
        self._manager: tf.train.CheckpointManager | None = None

    @property
    def manager(self) -> tf.train.CheckpointManager:
        """The CheckpointManager, made at the first save (after restore() has settled the state file)."""
        if self._manager is None:
            self._manager = tf.train.CheckpointManager(
                self.checkpoint, self.write_dir, max_to_keep=self.keep, step_counter=self.step, checkpoint_name="ckpt"
            )
        return self._manager

    @property
    def latest(self) -> str | None:
        """The checkpoint this state last restored or wrote; before either, the newest one on disk (unverified)."""
        if self._latest is not None:
            return self._latest
        existing = [p for p in tf_checkpoint_prefixes(self.directory) if os.path.exists(p + ".index")]
        return existing[0] if existing else None

    def restore(self, path: str | None = None) -> bool:
        """Restores the given checkpoint, or else resumes: the newest one that reads back whole;
        False when there is none.

        Every tensor is read back before anything is restored. On resume, newer checkpoints that do
        not read are skipped and listed in `unreadable` (the caller warns); when checkpoints exist
        but none reads, CheckpointError lists them and says how to start fresh; and the chief
        removes what killed saves left and rewrites the state file to name the restored checkpoint.
        """
        resuming = path is None
        if not resuming:
            problem = verify_tf_checkpoint(path)
            if problem is not None:
                raise CheckpointError(problem)
        else:
            if self.chief:
                self._remove_leftovers()
            path, self.unreadable = newest_readable_checkpoint(self.directory)
            if path is None and self.unreadable:
                listing = "".join(f"\n  {line}" for line in self.unreadable)
                raise CheckpointError(
                    f"no checkpoint in {self.directory} can be read:{listing}\nto start fresh, move or delete "
                    f"{self.directory} (or pass another --run-dir)"
                )
            if path is None:
                if self.chief:
                    _remove(os.path.join(self.directory, STATE_FILE))  # it names nothing that exists
                return False
        try:
            self.checkpoint.restore(path).assert_existing_objects_matched()
        except (AssertionError, ValueError, tf.errors.OpError) as error:
            raise CheckpointError(f"{path}: does not fit this run's model and optimizer ({error})") from error
        self._latest = path
        self._last_size = sum(os.path.getsize(f) for f in tf_checkpoint_files(path))
        if resuming and self.chief:
            self._write_state(path)
        return True

    def counters(self) -> tuple[int, int, int]:
        """(step, epoch, position) as Python ints."""
        return int(self.step.numpy()), int(self.epoch.numpy()), int(self.position.numpy())

    def save(self, step: int, epoch: int, position: int) -> str | None:
        """Writes a checkpoint of the current state at `step`; returns its path (chief) or None.

        Raises WriteError (naming the checkpoint, the step and the cause) when it cannot be
        written, after removing its partial files: the previous checkpoint stays the latest.
        """
        self.step.assign(step)
        self.epoch.assign(epoch)
        self.position.assign(position)
        target = os.path.join(self.write_dir, f"ckpt-{step}")
        if self.chief and self._last_size:
            check_free_space(target, self._last_size, "the last checkpoint", step)
        try:
            path = self.manager.save(checkpoint_number=step)
        except (OSError, tf.errors.OpError) as error:
            self._remove_partial(target)
            raise as_write_error(target, error, step) from error
        if not self.chief:
            shutil.rmtree(self.manager.directory, ignore_errors=True)
            return None
        self._latest = path
        self._last_size = sum(os.path.getsize(f) for f in tf_checkpoint_files(path))
        return path

    # --- repairs -----------------------------------------------------------------------
    def _remove_leftovers(self) -> None:
        """Deletes shard folders, state-file temporaries and scratch folders of killed saves."""
        if not os.path.isdir(self.directory):
            return
        for name in os.listdir(self.directory):
            if _LEFTOVER.match(name):
                path = os.path.join(self.directory, name)
                shutil.rmtree(path, ignore_errors=True) if os.path.isdir(path) else _remove(path)

    def _remove_partial(self, target: str) -> None:
        """After a failed save: its shard folder, its (incomplete) files and state-file temporaries."""
        shutil.rmtree(target + "_temp", ignore_errors=True)
        for path in tf_checkpoint_files(target):
            _remove(path)
        folder = os.path.dirname(target)
        if os.path.isdir(folder):
            for name in os.listdir(folder):
                if name.startswith(STATE_FILE + ".tmp"):
                    _remove(os.path.join(folder, name))

    def _write_state(self, restored: str) -> None:
        """Rewrites the state file: the restored checkpoint is the latest, the older ones on disk
        before it (oldest first), so the manager goes on from it and deletes them in turn."""
        number = _number(restored)
        older = [p for p in reversed(tf_checkpoint_prefixes(self.directory))
                 if _number(p) < number and os.path.exists(p + ".index")]
        listed = older + [restored]  # more than `keep`: the next save deletes the oldest
        stamps = [os.path.getmtime(p + ".index") for p in listed]
        lines = [f'model_checkpoint_path: "{os.path.basename(restored)}"']
        lines += [f'all_model_checkpoint_paths: "{os.path.basename(p)}"' for p in listed]
        lines += [f"all_model_checkpoint_timestamps: {stamp:.6f}" for stamp in stamps]
        lines.append(f"last_preserved_timestamp: {min(stamps + [time.time()]) - 1:.6f}")
        write_atomic(os.path.join(self.directory, STATE_FILE), "\n".join(lines) + "\n")
        self._manager = None  # a manager made before would not know


def _number(prefix: str) -> int:
    return int(prefix.rsplit("-", 1)[1])


def _remove(path: str) -> None:
    try:
        os.remove(path)
    except OSError:
        pass


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
        logger.warning("\n%s received: saving a checkpoint and stopping after this step (Ctrl-C again to abort "
                       "without saving)", self.signal_name)

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
