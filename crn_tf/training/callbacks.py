"""The training loss log file (the per-epoch progress bar is `crn_tf.progress.Progress`)."""
from __future__ import annotations

import os
import time


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
