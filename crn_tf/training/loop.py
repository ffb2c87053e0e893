"""`CRNTrainer`: the custom training loop (GradientTape, Adam, tf.distribute).

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
"""
from __future__ import annotations

import dataclasses
import math
import sys
import time
from typing import IO, Callable

import keras
import numpy as np
import tensorflow as tf

from crn_tf.core.progress import Progress
from crn_tf.loss.perceptual import LAYER_NAMES
from crn_tf.nn import inference
from crn_tf.training.callbacks import LossLog
from crn_tf.training.state import RunState, StopRequest
from crn_tf.training.visualizer import Visualizer, sample_rows

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


class CRNTrainer:
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

        def dataset_fn(context: tf.distribute.InputContext) -> tf.data.Dataset:
            dataset = data.dataset(epoch, context)
            replicas_here = context.num_replicas_in_sync // context.num_input_pipelines
            return dataset.skip(position * replicas_here) if position else dataset

        return self.distribute(dataset_fn)

    @property
    def learning_rate(self) -> float:
        return float(keras.ops.convert_to_numpy(self.optimizer.learning_rate))

    # === The loop ===
    def fit(
        self,
        data,
        state: RunState,
        epochs: int,
        max_steps: int | None = None,
        visualizer: Visualizer | None = None,
        loss_log: LossLog | None = None,
        samples: tuple[np.ndarray, np.ndarray] | None = None,
        save_every: int = 1000,
        log_every: int = 10,
        summary_every: int | None = None,
        on_epoch_end: Callable[[int, int], None] | None = None,
        verbose: bool = True,
        stream: IO[str] | None = None,
    ) -> FitResult:
        """Trains from the state's (step, epoch, position) to `epochs` epochs or `max_steps` steps.

        Saves a checkpoint every `save_every` steps, at each epoch's end and when SIGINT or
        SIGTERM arrives (then returns with status "interrupted"). Raises NonFiniteLossError
        when a loss is NaN or Inf, without saving: the last checkpoint stays the last good one;
        and WriteError (naming the step) when a checkpoint, the loss log or a summary cannot be written.
        `samples` (images, layouts) are drawn each epoch into a grid PNG and, every
        `summary_every` steps, to TensorBoard. `on_epoch_end(epochs_done, step)` runs after
        each epoch's checkpoint (e.g. to write the model directory).
        """
        stream = stream if stream is not None else sys.stderr
        steps_per_epoch = data.steps_per_epoch
        total = epochs * steps_per_epoch if max_steps is None else int(max_steps)
        if max_steps is not None:  # --steps overrides --epochs
            epochs = math.ceil(total / steps_per_epoch)
        step, epoch, position = state.counters()
        last_loss, checkpoint, status = None, state.latest, "finished"
        with StopRequest() as stop:
            while step < total and not stop.requested:
                if position >= steps_per_epoch:
                    epoch, position = epoch + 1, 0
                iterator = self.epoch_iterator(data, epoch, position)
                bar = Progress(steps_per_epoch, f"epoch {epoch + 1}/{epochs}", enabled=verbose, stream=stream,
                               done=position, unit="img", per_step=self.global_batch_size)
                pending: list = []
                window_start, window_steps = time.monotonic(), 0
                while position < steps_per_epoch and step < total:
                    loss, terms = self.train_step(iterator)
                    step, position, window_steps = step + 1, position + 1, window_steps + 1
                    pending.append((loss, terms))
                    epoch_done = position == steps_per_epoch
                    save_now = step % save_every == 0 or epoch_done or step == total or stop.requested
                    if step % log_every == 0 or save_now:
                        last_loss, mean_terms = self._check_losses(pending, step)
                        pending = []
                        elapsed = time.monotonic() - window_start
                        speed = window_steps * self.global_batch_size / max(elapsed, 1e-9)
                        window_start, window_steps = time.monotonic(), 0
                        bar.update_to(position, extra=f"loss {last_loss:.4g}", rate=speed)
                        if loss_log is not None:
                            loss_log.write(step, epoch, last_loss, speed)
                        if visualizer is not None:
                            scalars = {"loss/total": last_loss, "learning_rate": self.learning_rate,
                                       "images_per_sec": speed}
                            scalars.update({f"loss/{name}": value for name, value in zip(LAYER_NAMES, mean_terms)})
                            visualizer.scalars(step, scalars)
                    if visualizer is not None and samples is not None and summary_every and step % summary_every == 0:
                        self._summary_images(visualizer, step, samples)
                    if stop.requested and not save_now:  # the signal came in after the check above
                        last_loss, _ = self._check_losses(pending, step) if pending else (last_loss, None)
                        pending, save_now = [], True
                    if save_now:
                        if epoch_done:
                            self._end_epoch(epoch + 1, visualizer, samples, step)
                        checkpoint = state.save(step, epoch + 1 if epoch_done else epoch, 0 if epoch_done else position) \
                            or checkpoint
                    if stop.requested:
                        status = "interrupted"
                        break
                bar.close("interrupted" if stop.requested else "")
                if position >= steps_per_epoch:
                    if on_epoch_end is not None:
                        on_epoch_end(epoch + 1, step)
                    epoch, position = epoch + 1, 0
            if stop.requested:
                status = "interrupted"
        if visualizer is not None:
            visualizer.flush()
        return FitResult(step, epoch, position, status, last_loss, checkpoint)

    def _check_losses(self, pending: list, step: int) -> tuple[float, np.ndarray]:
        """Reads back the pending losses (one host sync); raises NonFiniteLossError on NaN/Inf."""
        losses = tf.stack([loss for loss, _ in pending]).numpy()
        terms = tf.stack([terms for _, terms in pending]).numpy()
        bad = np.flatnonzero(~np.isfinite(losses))
        if bad.size:
            first = step - len(pending) + 1 + int(bad[0])
            raise NonFiniteLossError(f"the loss became {losses[bad[0]]} at step {first}")
        return float(losses.mean()), terms.mean(axis=0)

    def _end_epoch(self, epochs_done: int, visualizer: Visualizer | None, samples, step: int | None = None) -> None:
        """After an epoch, before its checkpoint: the "auto" rescale and the sample grid."""
        if getattr(self.loss, "auto", False) and self.loss.maybe_rescale(epochs_done):
            print(f"layer weights rescaled after epoch {epochs_done}: "
                  + ", ".join(f"{n} {w:.4g}" for n, w in zip(LAYER_NAMES, self.loss.layer_weights.numpy())),
                  file=sys.stderr)
        if visualizer is not None and samples is not None and visualizer.enabled:
            images, layouts = samples
            fakes = self.generate(tf.constant(layouts)).numpy()
            visualizer.save_grid(epochs_done, sample_rows(layouts, fakes, visualizer.label_set, images), step=step)

    def _summary_images(self, visualizer: Visualizer, step: int, samples) -> None:
        if not visualizer.enabled:
            return
        images, layouts = samples
        fake = self.generate(tf.constant(layouts[:1])).numpy()[0]
        visualizer.images(step, layouts[0], fake, images[0])
