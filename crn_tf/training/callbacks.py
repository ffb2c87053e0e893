"""The training loss log file (the per-epoch progress bar is `crn_tf.core.progress.Progress`)."""
from __future__ import annotations

import os
import time

from crn_tf.core.files import as_write_error, write_atomic


class LossLog:
    """Appends one tab-separated line per logged step to `RUN_DIR/loss_log.txt` (as SPADE).

    Each line is one `write` to a file opened for appending; a write that fails (a full disk)
    is cut off again and raises WriteError, so the file never holds half a line of this run.
    `resume(step)` drops what a killed run logged after its last checkpoint (and a half line a
    crash may have left), so each step is in the log once.
    """

    HEADER = "step\tepoch\tloss\timages_per_sec\ttime\n"

    def __init__(self, path: str | os.PathLike, enabled: bool = True):
        self.path = os.fspath(path)
        self.enabled = enabled
        if enabled and not os.path.exists(self.path):
            write_atomic(self.path, self.HEADER)

    def write(self, step: int, epoch: int, loss: float, images_per_sec: float) -> None:
        if not self.enabled:
            return
        self._append(f"{step}\t{epoch}\t{loss:.6g}\t{images_per_sec:.4g}\t{time.strftime('%Y-%m-%d %H:%M:%S')}\n",
                     step)

    def _append(self, line: str, step: int | None = None) -> None:
        data = line.encode("utf-8")
        try:
            descriptor = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError as error:
            raise as_write_error(self.path, error, step) from error
        try:
            size = os.fstat(descriptor).st_size
            try:
                written = 0
                while written < len(data):
                    written += os.write(descriptor, data[written:])
            except OSError as error:
                try:
                    os.ftruncate(descriptor, size)
                except OSError:
                    pass
                raise as_write_error(self.path, error, step) from error
        finally:
            os.close(descriptor)

    def resume(self, step: int) -> int:
        """Keeps the lines of steps up to `step` (the restored checkpoint's); returns how many went.

        Lines that do not parse (a half line at the end) go too; the file is rewritten atomically.
        """
        if not self.enabled or not os.path.exists(self.path):
            return 0
        with open(self.path, encoding="utf-8", errors="replace") as f:
            lines = f.read().split("\n")
        tail, lines = lines[-1], lines[:-1]  # text after the last newline: a half-written line
        body = lines[1:] if lines and lines[0] + "\n" == self.HEADER else lines
        kept = [line for line in body if _logged_step(line) is not None and _logged_step(line) <= step]
        dropped = len(body) - len(kept) + bool(tail)
        if dropped or not lines or lines[0] + "\n" != self.HEADER:
            write_atomic(self.path, self.HEADER + "".join(line + "\n" for line in kept))
        return dropped

    def read(self) -> list[dict]:
        """The logged lines as dicts (for tests and reports)."""
        rows = []
        with open(self.path) as f:
            next(f)
            for line in f:
                step, epoch, loss, speed, stamp = line.rstrip("\n").split("\t")
                rows.append({"step": int(step), "epoch": int(epoch), "loss": float(loss),
                             "images_per_sec": float(speed), "time": stamp})
        return rows


def _logged_step(line: str) -> int | None:
    """The step of a complete log line, None for anything else."""
    fields = line.split("\t")
    if len(fields) != 5 or not fields[0].isdigit():
        return None
    try:
        float(fields[2]), float(fields[3])
    except ValueError:
        return None
    return int(fields[0])
