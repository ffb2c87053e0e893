"""Choosing the tf.distribute strategy from what the machine (and TF_CONFIG) offers.

`auto`: MultiWorkerMirroredStrategy when TF_CONFIG names a cluster of more than one task,
MirroredStrategy over all GPUs when there are several, the default strategy otherwise (one GPU
or the CPU). The strategy must be created before any other TensorFlow work in the process.
TensorFlow is imported only to make one, so `is_chief_task` answers at start-up, at once.
"""
from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Sequence

if TYPE_CHECKING:
    import tensorflow as tf

STRATEGIES = ("auto", "default", "mirrored", "multi-worker")


def tf_config_cluster() -> dict | None:
    """The `cluster` of the TF_CONFIG environment variable, or None when unset/single-task."""
    text = os.environ.get("TF_CONFIG", "").strip()
    if not text:
        return None
    try:
        config = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"TF_CONFIG is not valid JSON ({error})") from error
    cluster = config.get("cluster") or {}
    tasks = sum(len(addresses) for addresses in cluster.values())
    return cluster if tasks > 1 else None


def select_strategy(kind: str = "auto", devices: Sequence[str] | None = None) -> tf.distribute.Strategy:
    """A strategy by name ("auto", "default", "mirrored", "multi-worker").

    `devices` is passed to MirroredStrategy (e.g. two logical CPUs in tests); by default it
    mirrors over every GPU.
    """
    import tensorflow as tf

    if kind not in STRATEGIES:
        raise ValueError(f"unknown strategy {kind!r}; choose one of {', '.join(STRATEGIES)}")
    if kind == "auto":
        if tf_config_cluster() is not None:
            kind = "multi-worker"
        elif devices is not None or len(tf.config.list_physical_devices("GPU")) > 1:
            kind = "mirrored"
        else:
            kind = "default"
    if kind == "multi-worker":
        if tf_config_cluster() is None:
            raise ValueError("--strategy multi-worker needs TF_CONFIG naming a cluster of several tasks")
        return tf.distribute.MultiWorkerMirroredStrategy()
    if kind == "mirrored":
        return tf.distribute.MirroredStrategy(devices=list(devices) if devices else None)
    return tf.distribute.get_strategy()


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """True on the worker that writes files (task 0 of a cluster; always true on one machine)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    if resolver.task_type == "chief":
        return True
    cluster = resolver.cluster_spec().as_dict()
    return resolver.task_type == "worker" and resolver.task_id == 0 and "chief" not in cluster


def is_chief_task(kind: str = "auto") -> bool:
    """`is_chief` of the strategy `select_strategy(kind)` will make, from TF_CONFIG alone (no TensorFlow)."""
    if kind not in ("auto", "multi-worker") or tf_config_cluster() is None:
        return True
    task = json.loads(os.environ["TF_CONFIG"]).get("task") or {}
    if task.get("type") == "chief":
        return True
    return task.get("type") == "worker" and int(task.get("index", 0)) == 0 and "chief" not in tf_config_cluster()


def worker_index(strategy: tf.distribute.Strategy) -> int:
    """This worker's index in the cluster (0 on one machine)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or resolver.task_id is None:
        return 0
    return int(resolver.task_id)


def describe_strategy(strategy: tf.distribute.Strategy) -> str:
    """E.g. 'MirroredStrategy, 2 replicas' for the start-up banner."""
    import tensorflow as tf

    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        name = "MultiWorkerMirroredStrategy"
    elif isinstance(strategy, tf.distribute.MirroredStrategy):
        name = "MirroredStrategy"
    elif type(strategy).__name__.startswith("_Default"):
        name = "default strategy"
    else:
        name = type(strategy).__name__
    return f"{name}, {strategy.num_replicas_in_sync} replica{'s' if strategy.num_replicas_in_sync != 1 else ''}"
