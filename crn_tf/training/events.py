"""TensorBoard event files whose write errors are seen.

`tf.summary.create_file_writer` drops events silently when the disk is full (no error, a
truncated file). `EventFile` writes the same records (the `Event` protos tf.summary writes, in a
TFRecord file named `events.out.tfevents.*`) with `tf.io.TFRecordWriter`, which raises: a
failed write becomes a WriteError, and the file is cut back to its last complete record.
"""
from __future__ import annotations

import itertools
import os
import socket
import time
from typing import Mapping

import numpy as np

from crn_tf.core.files import as_write_error

_COUNTER = itertools.count()


def plugin_metadata(plugin: str):
    """The SummaryMetadata that makes TensorBoard show a tensor with `plugin` ("scalars", "images")."""
    from tensorflow.core.framework import summary_pb2

    metadata = summary_pb2.SummaryMetadata()
    metadata.plugin_data.plugin_name = plugin
    return metadata


class EventFile:
    """One events file in `log_dir`, created at the first write; every write is flushed."""

    def __init__(self, log_dir: str | os.PathLike):
        self.log_dir = os.fspath(log_dir)
        self.path: str | None = None
        self._writer = None
        self._complete = 0  # bytes of complete records on disk

    def _open(self, step: int | None = None) -> None:
        import tensorflow as tf
        from tensorflow.core.util import event_pb2

        name = (f"events.out.tfevents.{int(time.time())}.{socket.gethostname()}.{os.getpid()}."
                f"{next(_COUNTER)}.v2")
        path = os.path.join(self.log_dir, name)
        try:
            os.makedirs(self.log_dir, exist_ok=True)
            self._writer = tf.io.TFRecordWriter(path)
        except (OSError, tf.errors.OpError) as error:
            raise as_write_error(path, error, step) from error
        self.path = path
        self._write([event_pb2.Event(wall_time=time.time(), file_version="brain.Event:2")], step)

    def _write(self, events: list, step: int | None = None) -> None:
        import tensorflow as tf

        try:
            for event in events:
                self._writer.write(event.SerializeToString())
            self._writer.flush()
        except (OSError, tf.errors.OpError) as error:
            path = self.path
            self._cut_back()
            raise as_write_error(path, error, step) from error
        self._complete = os.path.getsize(self.path)

    def _cut_back(self) -> None:
        """After a failed write: the file ends at its last complete record again (or goes, if it has none)."""
        try:
            self._writer.close()
        except Exception:  # the close flushes the failed records again
            pass
        self._writer = None
        try:
            if self._complete:
                os.truncate(self.path, self._complete)
            else:
                os.remove(self.path)
        except OSError:
            pass
        self.path, self._complete = None, 0

    def write(self, step: int, values: Mapping[str, tuple[np.ndarray, str]]) -> None:
        """One event at `step` holding each `tag: (tensor value, plugin name)`."""
        import tensorflow as tf
        from tensorflow.core.util import event_pb2

        if self._writer is None:
            self._open(step)
        event = event_pb2.Event(wall_time=time.time(), step=int(step))
        for tag, (value, plugin) in values.items():
            summary_value = event.summary.value.add(tag=tag, metadata=plugin_metadata(plugin))
            summary_value.tensor.CopyFrom(tf.make_tensor_proto(value))
        self._write([event], step)

    def session_start(self, step: int) -> None:
        """Marks a resumed run: TensorBoard drops the events of this run directory logged at `step` or
        later by the run that was killed."""
        from tensorflow.core.util import event_pb2

        if self._writer is None:
            self._open(step)
        event = event_pb2.Event(wall_time=time.time(), step=int(step))
        event.session_log.status = event_pb2.SessionLog.START
        self._write([event], step)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
