"""Timing of repeated runs: wall-clock and CPU seconds, median and spread.

Used by the benchmark (`crn_tf.bench.run`) and its peak measurement (`crn_tf.bench.peaks`).
"""
from __future__ import annotations

import statistics
import time
from typing import Any, Callable, Sequence


def summarize_times(times: Sequence[float], cpu_times: Sequence[float] | None = None) -> dict[str, Any]:
    """Median and spread (min, max, (max - min) / median) of timed runs, in seconds; with
    `cpu_times`, also the median CPU time of this process per run (all its threads): on a
    shared machine the work done, which the load moves less than the wall time."""
    median = statistics.median(times)
    summary = {
        "median_s": median,
        "min_s": min(times),
        "max_s": max(times),
        "spread": (max(times) - min(times)) / median if median > 0 else 0.0,
        "times_s": list(times),
    }
    if cpu_times:
        summary["cpu_median_s"] = statistics.median(cpu_times)
    return summary


def time_runs(run: Callable[[], Any], runs: int, warmup: int, cpu_times: list | None = None) -> list[float]:
    """Wall-clock seconds of `runs` calls of `run` after `warmup` untimed ones (and each call's
    process CPU seconds appended to `cpu_times`). `run` must return only when its work is
    done (read a scalar of the result back)."""
    for _ in range(warmup):
        run()
    times = []
    for _ in range(runs):
        start, cpu = time.perf_counter(), time.process_time()
        run()
        times.append(time.perf_counter() - start)
        if cpu_times is not None:
            cpu_times.append(time.process_time() - cpu)
    return times


def sync(tensor) -> None:
    """Waits for `tensor` (one element read back: no large copy, works on GPU streams)."""
    import tensorflow as tf

    tf.reshape(tensor, [-1])[0].numpy()
