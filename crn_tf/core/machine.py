"""The machine a measurement runs on: CPU kind and bf16 path, device, load, and this process's memory.

Used by the benchmark (`crn_tf.bench.run`) to label every figure with where and under what load it
was taken; no TensorFlow import at module level (machine_info imports it).
"""
from __future__ import annotations

import logging
import os
import platform
import time
from typing import Any

logger = logging.getLogger(__name__)



_NO_LIMIT = 2**60  # cgroup v1 reports "no limit" as a huge number


def _read_int(path: str) -> int | None:
    try:
        with open(path) as f:
            text = f.read().strip()
    except OSError:
        return None
    return None if text in ("", "max") else int(text)


def _meminfo_available() -> int | None:
    """MemAvailable of /proc/meminfo in bytes, or None where it cannot be read."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def host_available_bytes() -> int | None:
    """MemAvailable of /proc/meminfo, lowered to a cgroup's limit minus its usage where one is
    set (cgroup v2 `memory.max`, v1 `memory.limit_in_bytes`); None where neither is readable."""
    available = _meminfo_available()
    for limit_file, usage_file in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                                   ("/sys/fs/cgroup/memory/memory.limit_in_bytes",
                                    "/sys/fs/cgroup/memory/memory.usage_in_bytes")):
        limit, usage = _read_int(limit_file), _read_int(usage_file)
        if limit is not None and usage is not None and limit < _NO_LIMIT:
            free = max(0, limit - usage)
            available = free if available is None else min(available, free)
            break
    return available


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (or platform's guess elsewhere)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def bf16_path(flags: set[str] | None = None) -> str:
    """Which bf16 matrix path the CPU has: AMX tiles, AVX-512 BF16 dot products only, or none."""
    flags = cpu_flags() if flags is None else flags
    if "amx_bf16" in flags:
        return "AMX (amx_bf16" + (", avx512_bf16)" if "avx512_bf16" in flags else ")")
    if "avx512_bf16" in flags:
        return "AVX-512 BF16 only (no AMX)"
    return "none (bf16 is converted to fp32)"


def cpu_kind(flags: set[str] | None = None, model: str | None = None) -> str:
    """A short label of the CPU kind for tables: its model name and bf16 path, e.g.
    "AMD EPYC (AVX-512 BF16, no AMX)"."""
    flags = cpu_flags() if flags is None else flags
    path = "AMX" if "amx_bf16" in flags else "AVX-512 BF16, no AMX" if "avx512_bf16" in flags else "no bf16 units"
    return f"{model or cpu_model()} ({path})"


def load_average() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


def machine_info() -> dict[str, Any]:
    """Device, CPU, bf16 path, TensorFlow/Keras versions and threads (imports TensorFlow)."""
    import keras
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        details = tf.config.experimental.get_device_details(gpus[0])
        device = f"GPU: {details.get('device_name', gpus[0].name)}" + (f" (x{len(gpus)})" if len(gpus) > 1 else "")
    else:
        device = f"CPU: {cpu_model()}"
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "device": device,
        "cpu": cpu_model(),
        "cpu_bf16_path": bf16_path(),
        "cpu_kind": cpu_kind(),
        "cores_available": affinity,
        "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads() or affinity,
        "inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads() or affinity,
        "onednn": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "1") != "0",
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "python": platform.python_version(),
    }


# === Memory ===

def _proc_status_bytes(field: str) -> int | None:
    """A memory field of /proc/self/status (e.g. "VmHWM"), in bytes; None where /proc is missing."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def peak_rss_bytes() -> int | None:
    """This process's peak resident set (VmHWM), in bytes; getrusage where /proc is missing."""
    peak = _proc_status_bytes("VmHWM")
    if peak is not None:
        return peak
    try:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    except (ImportError, OSError):
        return None


def current_rss_bytes() -> int | None:
    """This process's resident set now (VmRSS), in bytes."""
    return _proc_status_bytes("VmRSS")


def gpu_memory_reset() -> None:
    import tensorflow as tf

    if tf.config.list_physical_devices("GPU"):
        tf.config.experimental.reset_memory_stats("GPU:0")


def gpu_peak_bytes() -> int | None:
    import tensorflow as tf

    if not tf.config.list_physical_devices("GPU"):
        return None
    return int(tf.config.experimental.get_memory_info("GPU:0")["peak"])


def start_memory_guard(min_available_bytes: int, interval: float = 0.05) -> None:
    """Ends this process (exit 3, one line on stderr) if the machine's available memory falls
    below `min_available_bytes`: a benchmark must not push a shared machine into the OOM killer."""
    import threading

    def watch():
        while True:
            available = host_available_bytes()
            if available is not None and available < min_available_bytes:
                rss = current_rss_bytes() or 0
                logger.error("error: stopped by the memory guard: the machine had %.2f GiB available (< %.2f) at "
                             "this process's RSS %.2f GiB", available / 2**30, min_available_bytes / 2**30, rss / 2**30)
                os._exit(3)
            time.sleep(interval)

    threading.Thread(target=watch, daemon=True, name="memory-guard").start()
