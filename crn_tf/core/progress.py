"""The one plain-text progress bar of every crn_tf command (no tqdm), written to stderr.

On a terminal the bar is one line redrawn in place. In a log file or a pipe (CI, nohup) it
writes a line only when another 10% of the work is done AND `min_interval` seconds have
passed since the last line, plus the final line: at most a dozen lines per bar, never one
per item.
"""
from __future__ import annotations

import sys
import time
from typing import TextIO


def format_duration(seconds: float) -> str:
    """3725 -> '1:02:05'; 65 -> '01:05'."""
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


class Progress:
    """`label [#####.....] 12/50 extra 3.1/s ETA 00:12` over `total` steps.

    Args:
        total: steps to do.
        label: text before the bar, e.g. "synthesizing" or "epoch 3/200".
        enabled: False writes nothing (the commands' --no-progress / --quiet).
        stream: where to write; defaults to sys.stderr.
        done: steps already done (a resumed epoch starts part-way).
        unit: what the rate counts, e.g. "img" -> "4.2 img/s"; default none -> "4.2/s".
        per_step: units per step, e.g. the batch size when a step is one batch of images.
        min_interval: seconds between lines when the stream is not a terminal.
        width: characters of the bar.
    """

    def __init__(self, total: int, label: str, enabled: bool = True, stream: TextIO | None = None, *,
                 done: int = 0, unit: str = "", per_step: int = 1, min_interval: float = 10.0, width: int = 24):
        self.total = max(int(total), 0)
        self.label = label
        self.enabled = enabled
        self.stream = stream if stream is not None else sys.stderr
        self.done = int(done)
        self.unit = unit
        self.per_step = per_step
        self.min_interval = min_interval
        self.width = width
        self.extra: str | None = None
        self.rate: float | None = None  # units per second given by the caller; else measured
        self.interactive = bool(getattr(self.stream, "isatty", lambda: False)())
        self._start = self._last_write = time.monotonic()
        self._start_done = self.done
        self._last_decile = self._decile(self.done)
        self._shown = 0  # characters of the line on screen (terminal)
        self._finished = False
        if self.enabled and self.interactive:
            self._write(self.render(), end="")

    def update(self, amount: int = 1, *, extra: str | None = None, rate: float | None = None) -> None:
        """Advances by `amount` steps; `extra` (e.g. "loss 12.3") and `rate` replace the previous ones."""
        self.update_to(self.done + amount, extra=extra, rate=rate)

    def update_to(self, done: int, *, extra: str | None = None, rate: float | None = None) -> None:
        """Shows progress after `done` steps."""
        self.done = int(done)
        if extra is not None:
            self.extra = extra
        if rate is not None:
            self.rate = rate
        if not self.enabled or self._finished:
            return
        if self.total and self.done >= self.total:
            self.close()
            return
        now = time.monotonic()
        if self.interactive:
            if now - self._last_write >= 0.1:
                self._write(self.render(), end="")
                self._last_write = now
        elif self._decile(self.done) > self._last_decile and now - self._last_write >= self.min_interval:
            self._write(self.render())
            self._last_write, self._last_decile = now, self._decile(self.done)

    def close(self, message: str = "") -> None:
        """Ends the bar (once): its last state, the time it took and `message`."""
        if not self.enabled or self._finished:
            return
        self._finished = True
        text = f"{self.render()} | {format_duration(time.monotonic() - self._start)}"
        self._write(text + (f" | {message}" if message else ""))

    def render(self, done: int | None = None, extra: str | None = None, rate: float | None = None) -> str:
        """The bar's text for `done` steps (default: the current state); no I/O."""
        done = self.done if done is None else done
        extra = self.extra if extra is None else extra
        rate = self.measured_rate() if rate is None else rate
        fraction = min(done / self.total, 1.0) if self.total else 1.0
        filled = int(self.width * fraction)
        parts = [f"{self.label} [{'#' * filled}{'.' * (self.width - filled)}] {done}/{self.total}"]
        if extra:
            parts.append(extra)
        if rate:
            parts.append(self._rate_text(rate))
            if done < self.total:
                parts.append(f"ETA {format_duration((self.total - done) * self.per_step / rate)}")
        return " ".join(parts)

    def measured_rate(self) -> float | None:
        """Units per second: the caller's last `rate`, else measured since the bar started."""
        if self.rate is not None:
            return self.rate
        elapsed = time.monotonic() - self._start
        steps = self.done - self._start_done
        return steps * self.per_step / elapsed if steps > 0 and elapsed > 0 else None

    def _rate_text(self, rate: float) -> str:
        if rate >= 1:
            return f"{rate:.3g} {self.unit}/s" if self.unit else f"{rate:.3g}/s"
        return f"{1 / rate:.3g} s/{self.unit}" if self.unit else f"{1 / rate:.3g} s each"

    def _decile(self, done: int) -> int:
        return int(10 * done / self.total) if self.total else 10

    def _write(self, line: str, end: str = "\n") -> None:
        if self.interactive:
            padding = " " * max(0, self._shown - len(line))
            self.stream.write("\r" + line + padding + end)
            self._shown = 0 if end else len(line)
        else:
            self.stream.write(line + end)
        self.stream.flush()
