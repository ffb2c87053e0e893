"""Precisions, as one table: their names on the command lines and the Keras dtype policies they stand for.

train.py and demo.py spell float32 `--mixed-precision off`, the benchmark `--precision fp32`; both
names are one row. Kept free of TensorFlow imports, so tools that start fast (the benchmark's
parent process) can use it.
"""
from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Precision:
    """One precision: its two names and what a model is built with in it.

    `training_policy`: the Keras policy of a training step's generator and VGG (None = float32;
    the mixed policies keep float32 variables). `inference_policy`: the policy a model is loaded
    with to synthesize (None = float32). Inference never updates the weights, so its kernels are
    stored in the compute dtype, which is what the mixed policy casts them to at every call: the
    same outputs, bit for bit, at a fraction of the weight memory and without the per-call casts.
    The layer norms' gamma and beta and the output conv stay float32 under every policy
    (`crn_tf.nn.layers`, `crn_tf.nn.model`).
    """

    name: str  # the benchmark's --precision: fp32, bf16, fp16
    mixed_precision: str  # train.py's / demo.py's --mixed-precision and CRNTrainer's: off, bf16, fp16
    training_policy: str | None
    inference_policy: str | None
    compute_dtype: str  # what the convolutions run in

    @property
    def names(self) -> tuple[str, ...]:
        """Every name this precision answers to (e.g. ("fp32", "off"))."""
        return tuple(dict.fromkeys((self.name, self.mixed_precision)))


PRECISION_TABLE: tuple[Precision, ...] = (
    Precision("fp32", "off", None, None, "float32"),
    Precision("bf16", "bf16", "mixed_bfloat16", "bfloat16", "bfloat16"),
    Precision("fp16", "fp16", "mixed_float16", "float16", "float16"),  # training: with dynamic loss scaling
)
"""Every precision, float32 first."""

TRAINING_PRECISIONS: tuple[str, ...] = tuple(p.mixed_precision for p in PRECISION_TABLE)
"""The values of train.py's --mixed-precision: off, bf16, fp16."""
BENCH_PRECISIONS: tuple[str, ...] = tuple(p.name for p in PRECISION_TABLE)
"""The values of the benchmark's --precision: fp32, bf16, fp16."""


def get_precision(name: str) -> Precision:
    """The row of a precision name (either spelling); ValueError naming the choices otherwise."""
    for precision in PRECISION_TABLE:
        if name in precision.names:
            return precision
    choices = [n for precision in PRECISION_TABLE for n in precision.names]
    raise ValueError(f"unknown precision {name!r}; choose one of {choices}")


PRECISION_POLICIES: dict[str, str | None] = {n: p.training_policy for p in PRECISION_TABLE for n in p.names}
"""A --mixed-precision / --precision name -> the Keras dtype policy of training (None = float32);
a view of `PRECISION_TABLE`."""

INFERENCE_POLICIES: dict[str, str | None] = {n: p.inference_policy for p in PRECISION_TABLE for n in p.names}
"""A precision name -> the Keras dtype policy a model is loaded with for inference (demo, the
benchmark's generator; None = float32); a view of `PRECISION_TABLE` (see `Precision`)."""
