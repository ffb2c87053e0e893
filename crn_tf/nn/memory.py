"""Memory for inference: what the plain forward pass needs, what the device has, and the
`--low-memory auto` choice between the plain and the banded pass (`crn_tf.nn.inference`).

The estimate is computed from the configuration alone (sizes, widths, dtype, batch), as the
peak of what the plain graph holds at once in its largest module:

* the previous module's features, `B x h/2 x w/2 x d_prev` in the compute dtype;
* conv1's input: the bilinear upsample, which ResizeBilinear writes in float32
  (`B x h x w x d_prev x 4`), its cast to the compute dtype (none in float32), the merged input
  `B x h x w x (d_prev + C)` and oneDNN's blocked copy of it for the convolution (2x);
* conv1's output and the normalised one, `2 x B x h x w x d`;

plus the layout pyramid (input and compute-dtype copies, `B x H x W x C x (4 + s)`) and, under
a mixed policy, one compute-dtype copy of every convolution kernel (the graph may cast them
all at once). A sum of what the module holds, not of what is live at each instant: an upper
bound. At 1024p it is 4.81 GB (fp32) and 3.59 GB (bf16 kernels) against a measured growth of
4.33 and 2.03 GB (BENCHMARKS.md, "1024p in little memory"). The banded pass is chosen when the
estimate is more than the memory available now: `MemAvailable` of /proc/meminfo, lowered to
the cgroup's limit minus its usage where a limit is set (containers); on a GPU, the device's
memory (its logical-device limit or `nvidia-smi`'s total) minus what
`tf.config.experimental.get_memory_info` says TensorFlow uses.
"""
from __future__ import annotations

import shutil
import subprocess

from crn_tf.core.machine import host_available_bytes

LOW_MEMORY_CHOICES = ("auto", "on", "off")
"""The values of the CLIs' `--low-memory` (a bare `--low-memory` means "on")."""


def plain_pass_bytes(model, batch_size: int = 1) -> int:
    """Estimated peak bytes the plain forward pass of `model` allocates above the loaded model
    (see the module docstring for what is counted)."""
    size = 4 if model.compute_dtype == "float32" else 2
    channels = model.num_channels
    peak, previous = 0, 0
    for (height, width), width_d in zip(model.module_sizes, model.widths):
        pixels = batch_size * height * width
        upsample = pixels * previous * (4 + (0 if size == 4 else size))
        merged = 2 * pixels * (previous + channels) * size
        outputs = 2 * pixels * width_d * size
        held = pixels // 4 * previous * size
        peak = max(peak, held + upsample + merged + outputs)
        previous = width_d
    height, width = model.output_size
    layout = batch_size * height * width * channels * (4 + size) * 4 // 3  # the pyramid: 1 + 1/4 + 1/16 ...
    # Kernels stored in float32 but computed in bf16/fp16 (a mixed policy) are cast at every call.
    kernels = 0 if model.dtype_policy.variable_dtype == model.compute_dtype else size * sum(
        int(w.shape.num_elements()) for w in model.weights if len(w.shape) == 4
    )
    return peak + layout + kernels


def gpu_total_bytes(tf, gpu) -> int | None:
    """The first GPU's memory: its logical-device memory limit if one is configured, else the
    total `nvidia-smi` reports; None if neither is known."""
    configs = tf.config.get_logical_device_configuration(gpu) or []
    limits = [c.memory_limit for c in configs if getattr(c, "memory_limit", None)]
    if limits:
        return int(limits[0]) * 2**20  # memory_limit is in MB
    if shutil.which("nvidia-smi"):
        try:
            out = subprocess.run(["nvidia-smi", "--query-gpu=memory.total", "--format=csv,noheader,nounits", "-i", "0"],
                                 capture_output=True, text=True, timeout=10).stdout.strip()
            return int(out.splitlines()[0]) * 2**20  # MiB
        except (OSError, ValueError, IndexError, subprocess.SubprocessError):
            return None
    return None


def available_bytes() -> tuple[int | None, str]:
    """Memory available to the forward pass now, and where the figure comes from."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        total = gpu_total_bytes(tf, gpus[0])
        if total is None:
            return None, "GPU memory size unknown (no logical-device limit, no nvidia-smi)"
        used = int(tf.config.experimental.get_memory_info("GPU:0")["current"])
        return max(0, total - used), "GPU:0 memory minus TensorFlow's current use (get_memory_info)"
    return host_available_bytes(), "MemAvailable (/proc/meminfo, cgroup limit)"


def plain_pass_fits(model, batch_size: int = 1) -> tuple[bool, str]:
    """Whether the plain forward pass fits the memory available, and a one-line reason."""
    need = plain_pass_bytes(model, batch_size)
    have, source = available_bytes()
    if have is None:
        return True, f"auto: the plain pass needs about {need / 2**30:.2f} GiB; available memory unknown ({source})"
    fits = need <= have
    return fits, (f"auto: the plain pass needs about {need / 2**30:.2f} GiB, {have / 2**30:.2f} GiB available "
                  f"({source}): {'fits' if fits else 'does not fit'}")


def choose_low_memory(choice: bool | str, model, batch_size: int = 1) -> tuple[bool, str]:
    """`--low-memory` auto / on / off (or a bool) -> whether to run the banded pass, and why."""
    if isinstance(choice, bool):
        return choice, f"low_memory={choice}"
    if choice not in LOW_MEMORY_CHOICES:
        raise ValueError(f"low_memory must be one of {LOW_MEMORY_CHOICES} or a bool, got {choice!r}")
    if choice != "auto":
        return choice == "on", f"--low-memory {choice}"
    fits, reason = plain_pass_fits(model, batch_size)
    return not fits, reason


def low_memory_argument(text: str) -> str:
    """argparse type of `--low-memory [auto|on|off]`."""
    if text not in LOW_MEMORY_CHOICES:
        import argparse

        raise argparse.ArgumentTypeError(f"choose one of {', '.join(LOW_MEMORY_CHOICES)}, got {text!r}")
    return text


def add_low_memory_flag(parser, help_text: str) -> None:
    """The `--low-memory [auto|on|off]` flag of demo, evaluate and export (default auto; bare = on)."""
    parser.add_argument("--low-memory", nargs="?", const="on", default="auto", type=low_memory_argument,
                        metavar="{auto,on,off}",
                        help=help_text + " (default: %(default)s; a bare --low-memory means on)")

