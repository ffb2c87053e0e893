"""Plain-text training feedback: a per-epoch progress bar on stderr and the loss log file.

No tqdm: the bar is one line rewritten with `\\r` on a terminal; when stderr is a file or a
pipe (CI, nohup) it prints a full line at most every `min_interval` seconds instead.
"""
from __future__ import annotations

import os
import sys
import time
from typing import IO


def format_duration(seconds: float) -> str:
    """3725 -> '1:02:05'; 65 -> '01:05'."""
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


class ProgressBar:
    """`epoch 3/200 [#####.....] 120/2975 loss 12.345 4.2 img/s ETA 11:20` for one epoch.

    Args:
        total: steps in the epoch.
        label: text before the bar, e.g. "epoch 3/200".
        start: steps already done (a resumed epoch starts part-way).
        stream: where to write; defaults to sys.stderr.
        min_interval: seconds between lines when the stream is not a terminal.
    """

    def __init__(self, total: int, label: str, start: int = 0, stream: IO[str] | None = None,
                 min_interval: float = 10.0, width: int = 24):
        self.total = max(1, int(total))
        self.label = label
        self.done = int(start)
        self.stream = stream if stream is not None else sys.stderr
        self.min_interval = min_interval
        self.width = width
        self.interactive = bool(getattr(self.stream, "isatty", lambda: False)())
        self._batch = 1
        self._last_print = 0.0
        self._start = time.monotonic()
        self._line = self.render(self.done, None, None)

    def render(self, done: int, loss: float | None, images_per_sec: float | None) -> str:
        """The bar's text for `done` steps (no I/O)."""
        filled = int(self.width * min(done, self.total) / self.total)
        parts = [f"{self.label} [{'#' * filled}{'.' * (self.width - filled)}] {done}/{self.total}"]
        if loss is not None:
            parts.append(f"loss {loss:.4g}")
        if images_per_sec:
            parts.append(f"{images_per_sec:.3g} img/s")
        if images_per_sec and done < self.total:
            parts.append(f"ETA {format_duration((self.total - done) * self._batch / images_per_sec)}")
        return " ".join(parts)

    def update(self, done: int, loss: float | None = None, images_per_sec: float | None = None,
               batch_size: int = 1) -> None:
        """Shows progress after `done` steps of this epoch."""
        self.done = done
        self._batch = batch_size
        self._line = self.render(done, loss, images_per_sec)
        now = time.monotonic()
        if self.interactive:
            self.stream.write("\r" + self._line.ljust(100)[:max(100, len(self._line))])
            self.stream.flush()
        elif now - self._last_print >= self.min_interval and done < self.total:
            self.stream.write(self._line + "\n")
            self.stream.flush()
            self._last_print = now

    def close(self, message: str = "") -> None:
        """Ends the bar with its last state, the time the epoch took and `message`."""
        text = f"{self._line} | {format_duration(time.monotonic() - self._start)}"
        text += f" | {message}" if message else ""
        self.stream.write(("\r" if self.interactive else "") + text + "\n")
        self.stream.flush()


class LossLog:
    """Appends one tab-separated line per logged step to `RUN_DIR/loss_log.txt` (as SPADE)."""

    HEADER = "step\tepoch\tloss\timages_per_sec\ttime\n"

    def __init__(self, path: str | os.PathLike, enabled: bool = True):
        self.path = os.fspath(path)
        self.enabled = enabled
        if enabled:
            os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
            if not os.path.exists(self.path):
                with open(self.path, "w") as f:
                    f.write(self.HEADER)

    def write(self, step: int, epoch: int, loss: float, images_per_sec: float) -> None:
        if not self.enabled:
            return
        with open(self.path, "a") as f:
            f.write(f"{step}\t{epoch}\t{loss:.6g}\t{images_per_sec:.4g}\t{time.strftime('%Y-%m-%d %H:%M:%S')}\n")

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
