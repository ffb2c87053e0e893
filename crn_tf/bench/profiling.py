"""Where the time goes: trace a few runs with `tf.profiler.experimental` and sum op times.

The trace (an XSpace protobuf in a temporary log directory, which TensorBoard's profile
plugin also reads) holds one event per executed TensorFlow op, named "op_name:OpType", on
the host's compute-thread lines. The sums are per op type and per op name; ops can run
concurrently on the inter-op threads, so the total can exceed the wall time.
"""
from __future__ import annotations

import collections
import glob
import os
import shutil
import tempfile
from typing import Any, Callable

_SKIP_PREFIXES = ("ThreadpoolListener", "Memory", "ExecutorState", "BasicCPUAllocator", "EagerExecute",
                  "EagerLocalExecute", "TFE_Py")


def read_op_times(logdir: str) -> tuple[collections.Counter, collections.Counter, collections.Counter, int]:
    """(seconds per op type, seconds per op name, events per op type, number of planes read) from
    the newest `*.xplane.pb` under `logdir`."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    paths = sorted(glob.glob(os.path.join(logdir, "**", "*.xplane.pb"), recursive=True), key=os.path.getmtime)
    if not paths:
        raise FileNotFoundError(f"{logdir}: no *.xplane.pb written by the profiler")
    space = xplane_pb2.XSpace()
    with open(paths[-1], "rb") as f:
        space.ParseFromString(f.read())
    by_type, by_name, counts = collections.Counter(), collections.Counter(), collections.Counter()
    planes = 0
    for plane in space.planes:
        if not plane.lines:
            continue
        planes += 1
        for line in plane.lines:
            for event in line.events:
                name = plane.event_metadata[event.metadata_id].name
                if ":" not in name or name.startswith(_SKIP_PREFIXES):
                    continue
                op_name, op_type = name.rsplit(":", 1)
                seconds = event.duration_ps * 1e-12
                by_type[op_type] += seconds
                by_name[op_name] += seconds
                counts[op_type] += 1
    return by_type, by_name, counts, planes


def profile_ops(run: Callable[[], Any], runs: int = 2, top: int = 12, logdir: str | None = None) -> dict[str, Any]:
    """Traces `runs` calls of `run` (already warmed up) and returns the top op types and op names
    by total time per run, in seconds, with their share of all op time."""
    import tensorflow as tf

    own_dir = logdir is None
    logdir = logdir or tempfile.mkdtemp(prefix="crn_profile_")
    try:
        tf.profiler.experimental.start(logdir)
        try:
            for _ in range(runs):
                run()
        finally:
            tf.profiler.experimental.stop()
        by_type, by_name, counts, _ = read_op_times(logdir)
    finally:
        if own_dir:
            shutil.rmtree(logdir, ignore_errors=True)
    total = sum(by_type.values())

    def rows(counter):
        return [
            {"op": op, "seconds_per_run": seconds / runs, "share": seconds / total if total else 0.0}
            for op, seconds in counter.most_common(top)
        ]

    return {
        "runs": runs,
        "op_seconds_per_run": total / runs,
        "by_type": [dict(row, count_per_run=counts[row["op"]] / runs) for row in rows(by_type)],
        "by_name": rows(by_name),
    }


def format_profile(profile: dict[str, Any]) -> str:
    """The top op types and names as text lines."""
    lines = [f"  profile: {profile['op_seconds_per_run']:.3f} s of op time per run ({profile['runs']} traced runs)"]
    lines += [
        f"    {row['share'] * 100:5.1f}%  {row['seconds_per_run']:.4f} s  {row['count_per_run']:6.0f}x  {row['op']}"
        for row in profile["by_type"]
    ]
    lines.append("  top ops by name:")
    lines += [f"    {row['share'] * 100:5.1f}%  {row['seconds_per_run']:.4f} s  {row['op']}" for row in profile["by_name"]]
    return "\n".join(lines)
