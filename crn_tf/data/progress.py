"""A plain-text progress bar on stderr (no dependencies): redrawn in place on a terminal,
a line every 10% otherwise (so logs stay short)."""
from __future__ import annotations

import sys
import time
from typing import TextIO


def _duration(seconds: float) -> str:
    seconds = int(max(0, seconds))
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


def show_progress(done: int, total: int, start: float, what: str, stream: TextIO | None = None) -> None:
    """Draws `what: [#####     ] done/total  rate/s  ETA` for an operation started at `start`."""
    stream = stream or sys.stderr
    elapsed = max(time.time() - start, 1e-9)
    rate = done / elapsed
    fraction = done / total if total else 1.0
    eta = (total - done) / rate if rate > 0 else 0.0
    width = 30
    bar = "#" * int(round(width * fraction)) + " " * (width - int(round(width * fraction)))
    text = f"{what}: [{bar}] {done}/{total}  {rate:.1f}/s  {'ETA ' + _duration(eta) if done < total else _duration(elapsed)}"
    if getattr(stream, "isatty", lambda: False)():
        stream.write("\r" + text + ("\n" if done >= total else ""))
    else:
        step = max(1, total // 10)
        if done % step and done != total:
            return
        stream.write(text + "\n")
    stream.flush()
