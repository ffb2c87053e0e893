"""The PyTorch peers of the benchmark: the same generator and training step written in PyTorch
(`shared/peers/torch_crn.py`, `torch_crn_train.py`), timed with another Python that has torch.

The peers print their own figures; `run_torch_peer` runs one for the benchmark's preset and
precision and reads its median back, with the load average before and after.
"""
from __future__ import annotations

import os
import subprocess
from typing import Any

from crn_tf.core.machine import load_average

PEER_SCRIPTS = {"generator": "torch_crn.py", "train": "torch_crn_train.py"}


class PeerError(ValueError):
    """The PyTorch peer could not be run or its output not read; the message says why."""


def peer_script(config, part: str) -> str:
    """The PyTorch peer of `part`: --torch-script (generator) / --torch-train-script (training
    step), by default torch_crn.py / torch_crn_train.py beside --torch-script, or in the
    project's ../shared/peers/."""
    if part == "generator" and config.torch_script:
        return config.torch_script
    if part == "train" and config.torch_train_script:
        return config.torch_train_script
    folder = (os.path.dirname(os.path.abspath(config.torch_script)) if config.torch_script else
              os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "shared", "peers"))
    return os.path.join(folder, PEER_SCRIPTS[part])


def run_torch_peer(config, part: str) -> dict[str, Any]:
    """Times the PyTorch peer of `part` (shared/peers/torch_crn.py: the generator;
    torch_crn_train.py: the training step, with torch's own peaks) with a Python that has torch."""
    script = peer_script(config, part)
    if not os.path.isfile(script):
        raise PeerError(f"{script}: no such file (pass --torch-script / --torch-train-script)")
    if part == "generator":
        command = [config.torch_python, script, config.preset, config.precision, str(config.runs)]
    else:
        command = [config.torch_python, script, "cpu", config.preset, config.precision, str(config.runs)]
    start_load = load_average()
    try:
        process = subprocess.run(command, capture_output=True, text=True)
    except OSError as error:
        raise PeerError(f"cannot run the PyTorch peer with {config.torch_python}: {error}") from error
    if process.returncode != 0:
        raise PeerError(f"the PyTorch peer failed (exit {process.returncode}): {process.stderr.strip()[-500:]}")
    lines = process.stdout.strip().splitlines()
    try:
        if part == "generator":
            median = float(lines[-1].split("median")[1].split()[0])
        else:  # "... train step 36512.3 ms (peak mem ...), generator forward 8030.2 ms"
            median = float(lines[-1].split("train step")[1].split()[0]) / 1000
    except (IndexError, ValueError) as error:
        raise PeerError(f"{script}: unexpected output {lines[-1:]!r}") from error
    return {"command": " ".join(command), "output": lines[-1], "peaks": lines[:-1], "median_s": median,
            "load_average": [start_load, load_average()]}
