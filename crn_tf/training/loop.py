"""`Trainer.fit`, the one training loop, and `CRNTrainer`, its CRN step (GradientTape, Adam, tf.distribute).

The step is one `tf.function` over a distributed iterator: `next(iterator)`, `strategy.run`
of the per-replica step (forward, VGG loss, gradients, Adam update), and the reduction of the
loss and its per-layer terms. Nothing in it runs Python per step, it is traced once
(`trainer.trace_count`), and the host reads the loss back only every `log_every` steps, so a
GPU never waits on the host between steps. The per-example loss is averaged with
`tf.nn.compute_average_loss(..., global_batch_size=...)`, so the summed gradients of all
replicas are those of the global batch's mean loss, whatever the number of replicas.

Speed options: `mixed_precision` "bf16" / "fp16" (fp16 with keras' dynamic LossScaleOptimizer),
`xla` (the forward and backward pass compiled with `jit_compile`; the optimizer update stays
outside, where tf.distribute merges the replicas' gradients), and the model's own
`recompute` flag (gradient checkpointing per refinement module).

`fit` (in `Trainer`, which the segmenter's trainer shares) runs the steps and nothing else:
the progress bar, the loss log, TensorBoard, the sample grid, the "auto" layer-weight rescale,
the checkpoints and the model directory are actions it calls at the loop's boundaries
(`crn_tf.training.actions`).
"""
from __future__ import annotations

import dataclasses
import math
import time
from typing import Callable, Sequence

import keras
import numpy as np
import tensorflow as tf

from crn_tf.nn import inference
from crn_tf.training.actions import Action, Loop, StepLogs
from crn_tf.training.state import RunState, StopRequest

MIXED_PRECISION = ("off", "bf16", "fp16")

ADAM_HYPERPARAMETERS = {"beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-8}
"""The original's `tf.train.AdamOptimizer(learning_rate=lr)` defaults (Keras' own epsilon is 1e-7).

Keras 3's Adam update is TF1's (bias correction folded into the step size, epsilon added to
sqrt(v) outside the correction), so with these values the two move the weights identically."""


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or Inf; the run stopped without saving over the last good checkpoint."""


@dataclasses.dataclass
class FitResult:
    """How `CRNTrainer.fit` ended."""

    step: int
    epoch: int
    position: int
    status: str  # "finished", "interrupted"
    last_loss: float | None
    checkpoint: str | None


def epoch_iterator(strategy: tf.distribute.Strategy, data, epoch: int, position: int = 0):
    """Iterator over epoch `epoch` of `data` (an `EpochData`) distributed by `strategy`, `position` steps in."""

    def dataset_fn(context: tf.distribute.InputContext) -> tf.data.Dataset:
        dataset = data.dataset(epoch, context)
        replicas_here = context.num_replicas_in_sync // context.num_input_pipelines
        return dataset.skip(position * replicas_here) if position else dataset

    return iter(strategy.distribute_datasets_from_function(dataset_fn))


class Trainer:
    """The step loop and its actions, shared by everything this project trains (the CRN, the segmenter).

    A subclass sets `optimizer`, `global_batch_size` and `train_step(iterator) -> (loss, terms [n])`
    (a `tf.function`: one trace for every epoch's iterator), and may override `epoch_iterator`.
    """

    optimizer: keras.optimizers.Optimizer
    global_batch_size: int = 1
    train_step: Callable

    def epoch_iterator(self, data, epoch: int, position: int = 0):
        """Iterator over epoch `epoch` of `data` (an `EpochData`), `position` steps in."""
        return iter(data.dataset(epoch).skip(position))

    @property
    def learning_rate(self) -> float:
        return float(keras.ops.convert_to_numpy(self.optimizer.learning_rate))

    def fit(
        self,
        data,
        state: RunState,
        epochs: int,
        max_steps: int | None = None,
        actions: Sequence[Action] = (),
        save_every: int = 1000,
        log_every: int = 10,
    ) -> FitResult:
        """Trains from the state's (step, epoch, position) to `epochs` epochs or `max_steps` steps.

        Runs the steps and calls `actions` (`crn_tf.training.actions`) at the boundaries: the
        losses are read back every `log_every` steps and at each checkpoint boundary (every
        `save_every` steps, each epoch's end, the last step, and when SIGINT or SIGTERM arrives:
        then fit returns with status "interrupted"). The checkpoints themselves are an action
        (`SaveCheckpoint(state)`), as are the logs, the sample grid and the model directory.
        Raises NonFiniteLossError when a loss is NaN or Inf, before any action sees that step,
        so the last checkpoint stays the last good one; an action's WriteError goes up as it is.
        """
        steps_per_epoch = data.steps_per_epoch
        total = epochs * steps_per_epoch if max_steps is None else int(max_steps)
        if max_steps is not None:  # --steps overrides --epochs
            epochs = math.ceil(total / steps_per_epoch)
        step, epoch, position = state.counters()
        loop = Loop(step, epoch, position, epochs, steps_per_epoch, total)
        last_loss = None
        with StopRequest() as stop:
            while not loop.finished and not stop.requested:
                if loop.epoch_done:
                    loop.epoch, loop.position = loop.epoch + 1, 0
                iterator = self.epoch_iterator(data, loop.epoch, loop.position)
                for action in actions:
                    action.epoch_begin(loop)
                pending: list = []
                window_start = time.monotonic()
                while not loop.epoch_done and not loop.finished:
                    pending.append(self.train_step(iterator))
                    loop.step, loop.position = loop.step + 1, loop.position + 1
                    loop.stopping = stop.requested
                    save_now = (loop.step % save_every == 0 or loop.epoch_done or loop.finished or loop.stopping)
                    logs = None
                    if save_now or loop.step % log_every == 0:
                        logs = self._read_back(pending, loop.step, window_start)
                        last_loss, pending, window_start = logs.loss, [], time.monotonic()
                    for action in actions:
                        action.step_end(loop, logs)
                    if stop.requested and not loop.stopping:  # the signal came during this step's actions
                        loop.stopping = True
                        if not save_now:  # its losses are checked before the checkpoint, not logged
                            last_loss = self._read_back(pending, loop.step, window_start).loss
                            pending, save_now = [], True
                    if save_now:
                        if loop.epoch_done:
                            for action in actions:
                                action.epoch_end(loop)
                        for action in actions:
                            action.save(loop)
                    if loop.stopping:
                        break
                if loop.epoch_done:
                    loop.epoch, loop.position = loop.epoch + 1, 0
            status = "interrupted" if stop.requested else "finished"
        for action in actions:
            action.train_end(loop)
        return FitResult(loop.step, loop.epoch, loop.position, status, last_loss, state.latest)

    def _read_back(self, pending: list, step: int, window_start: float) -> StepLogs:
        """The losses of the steps run since `window_start` (one host sync), averaged; their speed;
        NonFiniteLossError on NaN/Inf."""
        losses = tf.stack([loss for loss, _ in pending]).numpy()
        terms = tf.stack([terms for _, terms in pending]).numpy()
        seconds = time.monotonic() - window_start
        bad = np.flatnonzero(~np.isfinite(losses))
        if bad.size:
            first = step - len(pending) + 1 + int(bad[0])
            raise NonFiniteLossError(f"the loss became {losses[bad[0]]} at step {first}")
        images_per_sec = len(pending) * self.global_batch_size / max(seconds, 1e-9)
        return StepLogs(float(losses.mean()), terms.mean(axis=0), images_per_sec, self.learning_rate, seconds)


class CRNTrainer(Trainer):
    """Trains a CRN with a CRNLoss under a tf.distribute strategy.

    Build `model` and `loss` inside `strategy.scope()` and set which modules train
    (`crn_tf.training.modules.set_trainable_modules`) before creating the trainer: it makes
    Adam in the same scope and builds its slots for `model.trainable_variables`.

    Args:
        model: a built `crn_tf.nn.model.CRN`.
        loss: a `crn_tf.loss.perceptual.CRNLoss`.
        strategy: tf.distribute strategy; defaults to the current one.
        learning_rate: Adam's learning rate. Defaults to 1e-4, as the original; beta1 0.9, beta2 0.999 and
            epsilon 1e-8 are the original's too (`ADAM_HYPERPARAMETERS`).
        global_batch_size: examples per step over all replicas.
        mixed_precision: "off", "bf16" or "fp16". With "fp16" the optimizer is wrapped in
            `keras.optimizers.LossScaleOptimizer` and the loss is scaled before the gradients.
            (The model's dtype policy is set when it is built, `modules.build_model`.)
        xla: compile the forward and backward pass with XLA.

    Example (benchmark use, one replica):
        trainer = CRNTrainer(model, loss, global_batch_size=1)
        iterator = iter(tf.data.Dataset.from_tensors((image, layout)).repeat())
        loss_value, terms = trainer.train_step(iterator)
    """

    def __init__(self, model, loss, strategy: tf.distribute.Strategy | None = None, learning_rate: float = 1e-4,
                 global_batch_size: int = 1, mixed_precision: str = "off", xla: bool = False):
        if mixed_precision not in MIXED_PRECISION:
            raise ValueError(f"mixed_precision must be one of {MIXED_PRECISION}, got {mixed_precision!r}")
        self.strategy = strategy or tf.distribute.get_strategy()
        self.model = model
        self.loss = loss
        self.global_batch_size = int(global_batch_size)
        self.mixed_precision = mixed_precision
        self.xla = bool(xla)
        self.trace_count = 0
        with self.strategy.scope():
            optimizer = keras.optimizers.Adam(learning_rate=learning_rate, **ADAM_HYPERPARAMETERS)
            if mixed_precision == "fp16":
                optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
            self.optimizer = optimizer
            self.variables = list(model.trainable_variables)
            if not self.variables:
                raise ValueError("the model has no trainable variables (check --train-modules)")
            self.optimizer.build(self.variables)
        self._gradients = tf.function(self.compute_gradients, jit_compile=True) if self.xla else self.compute_gradients
        self.train_step = tf.function(self._train_step)
        self.generate = inference.forward_function(model, banded=False)  # the sample images: inference's traced pass

    # === The step ===
    def compute_gradients(self, image: tf.Tensor, layout: tf.Tensor):
        """Per replica: (gradients, this replica's share of the mean loss, its per-layer terms [6])."""
        with tf.GradientTape() as tape:
            fake = self.model(layout, training=True)  # (B, k, H, W, 3) float32
            per_layer = self.loss.per_layer(image, fake, layout)  # (B, 6) float32, weighted
            per_example = tf.reduce_sum(per_layer, axis=-1)  # (B,)
            loss = tf.nn.compute_average_loss(per_example, global_batch_size=self.global_batch_size)
            objective = self.optimizer.scale_loss(loss) if self.mixed_precision == "fp16" else loss
        gradients = tape.gradient(objective, self.variables)
        terms = tf.reduce_sum(per_layer, axis=0) / self.global_batch_size  # (6,)
        return gradients, loss, terms

    def replica_step(self, image: tf.Tensor, layout: tf.Tensor):
        """Per replica: gradients, then the Adam update (gradients are summed over replicas)."""
        gradients, loss, terms = self._gradients(image, layout)
        self.optimizer.apply(gradients, self.variables)
        return loss, terms

    def _train_step(self, iterator):
        self.trace_count += 1  # Python side effect: runs only while tracing
        image, layout = next(iterator)
        loss, terms = self.strategy.run(self.replica_step, args=(image, layout))
        reduce = tf.distribute.ReduceOp.SUM
        return self.strategy.reduce(reduce, loss, axis=None), self.strategy.reduce(reduce, terms, axis=None)

    def distribute(self, dataset_fn: Callable[[tf.distribute.InputContext], tf.data.Dataset]):
        """An iterator over `strategy.distribute_datasets_from_function(dataset_fn)`."""
        return iter(self.strategy.distribute_datasets_from_function(dataset_fn))

    def epoch_iterator(self, data, epoch: int, position: int = 0):
        """Iterator over epoch `epoch` of `data` (an `EpochData`), `position` steps in."""
        return epoch_iterator(self.strategy, data, epoch, position)
