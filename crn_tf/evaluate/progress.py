"""A plain-text progress bar on stderr (no dependency), quiet when `enabled` is False."""
from __future__ import annotations

import sys
import time


class Progress:
    """`label [#####.....] 12/50 (3.1/s, eta 12s)`, redrawn in place on a terminal, else a line per 10%."""

    def __init__(self, total: int, label: str, enabled: bool = True, stream=None, width: int = 30):
        self.total = max(int(total), 0)
        self.label = label
        self.enabled = enabled
        self.stream = stream or sys.stderr
        self.width = width
        self.count = 0
        self.start = time.monotonic()
        self._interactive = hasattr(self.stream, "isatty") and self.stream.isatty()
        self._last_decile = -1
        self._draw()

    def update(self, amount: int = 1) -> None:
        self.count = min(self.count + amount, self.total) if self.total else self.count + amount
        self._draw()

    def close(self) -> None:
        if self.enabled and self._interactive:
            self.stream.write("\n")
            self.stream.flush()

    def _draw(self) -> None:
        if not self.enabled:
            return
        fraction = self.count / self.total if self.total else 1.0
        decile = int(fraction * 10)
        if not self._interactive and decile == self._last_decile:
            return
        self._last_decile = decile
        elapsed = time.monotonic() - self.start
        rate = self.count / elapsed if elapsed > 0 else 0.0
        eta = (self.total - self.count) / rate if rate > 0 else float("nan")
        filled = int(round(fraction * self.width))
        bar = "#" * filled + "." * (self.width - filled)
        eta_text = f", eta {eta:.0f}s" if eta == eta and self.count < self.total else ""
        speed = f"{rate:.1f}/s" if rate >= 1 or rate == 0 else f"{1 / rate:.1f}s each"
        line = f"{self.label} [{bar}] {self.count}/{self.total} ({speed}{eta_text})"
        self.stream.write(("\r" + line) if self._interactive else (line + "\n"))
        self.stream.flush()
