"""What a training run does besides the steps: actions called at the loop's boundaries.

As tensorflow/models' `official/core/actions.py` hands the work between train loops to the
controller as actions, `Trainer.fit` runs the steps and calls each `Action` of its list, in
list order, at these boundaries:

- `epoch_begin(loop)`: an epoch (or the rest of a resumed one) starts;
- `step_end(loop, logs)`: after every step; `logs` (a `StepLogs`) when the losses were just read
  back and checked (every `log_every` steps and at each checkpoint boundary), else None;
- `epoch_end(loop)`: after an epoch's last step, before its checkpoint;
- `save(loop)`: a checkpoint boundary: every `save_every` steps, an epoch's end, the last step
  and a stop on SIGINT/SIGTERM;
- `train_end(loop)`: `fit` returns (not when it raises).

train.py's run (`crn_tf.training.run`) hands over, in this order: `ShowProgress`,
`WriteLossLog`, `WriteSummaries`, `RescaleLayerWeights`, `SaveSampleGrid`, `SaveCheckpoint`,
`ExportModel`; so at an epoch's end the "auto" layer weights are rescaled and the sample grid
drawn before the checkpoint holds them, and the model directory is written after it.
"""
from __future__ import annotations

import dataclasses
import logging
import os
from typing import Any, Callable, Mapping

import numpy as np
import tensorflow as tf

from crn_tf.core.files import WriteError
from crn_tf.core.progress import Progress
from crn_tf.loss.vgg import FEATURE_NAMES
from crn_tf.training.callbacks import LossLog
from crn_tf.training.data import Samples
from crn_tf.training.state import RunState
from crn_tf.training.visualizer import Visualizer, sample_rows

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class Loop:
    """Where the loop is when an action is called (the loop's own record: actions only read it)."""

    step: int  # steps done, over all epochs
    epoch: int  # the epoch being run, from 0
    position: int  # steps done in it
    epochs: int  # the epoch this fit ends in, counted from 1 (the progress bar's "epoch 3/200")
    steps_per_epoch: int
    total_steps: int  # the step this fit ends at
    stopping: bool = False  # SIGINT/SIGTERM came: this step's boundary is the last one

    @property
    def epoch_done(self) -> bool:
        """The epoch's last step has run."""
        return self.position >= self.steps_per_epoch

    @property
    def finished(self) -> bool:
        """The last step of this fit has run."""
        return self.step >= self.total_steps

    @property
    def epochs_done(self) -> int:
        """Complete epochs so far."""
        return self.epoch + 1 if self.epoch_done else self.epoch

    @property
    def resume_point(self) -> tuple[int, int]:
        """(epoch, position) a run resumed from a checkpoint of this step goes on from."""
        return (self.epoch + 1, 0) if self.epoch_done else (self.epoch, self.position)


@dataclasses.dataclass(frozen=True)
class StepLogs:
    """The losses read back from the device, averaged over the steps since the last read-back."""

    loss: float
    terms: np.ndarray  # [n] the loss's terms: the CRN's 6 weighted layers in FEATURE_NAMES order, the segmenter's 1
    images_per_sec: float
    learning_rate: float
    seconds: float  # wall time of the steps since the last read-back


class Action:
    """Work at the loop's boundaries; each hook does nothing unless an action overrides it."""

    def epoch_begin(self, loop: Loop) -> None:
        """An epoch (or the rest of a resumed one) starts."""

    def step_end(self, loop: Loop, logs: StepLogs | None) -> None:
        """A step ran; `logs` when its losses were read back."""

    def epoch_end(self, loop: Loop) -> None:
        """The epoch's last step ran; its checkpoint comes next."""

    def save(self, loop: Loop) -> None:
        """A checkpoint boundary."""

    def train_end(self, loop: Loop) -> None:
        """`fit` returns."""


class ShowProgress(Action):
    """The per-epoch progress bar (`crn_tf.core.progress.Progress`) on stderr, drawn directly.

    Args:
        images_per_step: the global batch size (the bar counts images per second).
        enabled: False draws nothing (the other workers of a multi-worker run).
        stream: where to draw; defaults to sys.stderr.
    """

    def __init__(self, images_per_step: int, enabled: bool = True, stream=None):
        self.images_per_step = images_per_step
        self.enabled = enabled
        self.stream = stream
        self.bar: Progress | None = None

    def epoch_begin(self, loop: Loop) -> None:
        self.bar = Progress(loop.steps_per_epoch, f"epoch {loop.epoch + 1}/{loop.epochs}", enabled=self.enabled,
                            stream=self.stream, done=loop.position, unit="img", per_step=self.images_per_step)

    def step_end(self, loop: Loop, logs: StepLogs | None) -> None:
        if logs is not None:
            self.bar.update_to(loop.position, extra=f"loss {logs.loss:.4g}", rate=logs.images_per_sec)

    def save(self, loop: Loop) -> None:
        if loop.epoch_done or loop.finished or loop.stopping:  # this fit's part of the epoch ends here
            self.bar.close("interrupted" if loop.stopping else "")


class WriteLossLog(Action):
    """One `RUN_DIR/loss_log.txt` line each time the losses are read back (`callbacks.LossLog`)."""

    def __init__(self, loss_log: LossLog):
        self.loss_log = loss_log

    def step_end(self, loop: Loop, logs: StepLogs | None) -> None:
        if logs is not None:
            self.loss_log.write(loop.step, loop.epoch, logs.loss, logs.images_per_sec)


class WriteSummaries(Action):
    """TensorBoard: the scalars each time the losses are read back; every `every` steps, the first
    sample's layout, reference photo and k synthesized images. The events file is closed at the end.

    Args:
        visualizer: the run's `Visualizer` (disabled on other workers: then nothing is written).
        generate: layouts -> images, the trainer's inference call (`CRNTrainer.generate`).
        samples: the samples; None writes no images.
        every: steps between the images; None or 0 writes none.
    """

    def __init__(self, visualizer: Visualizer, generate: Callable, samples: Samples | None = None,
                 every: int | None = None):
        self.visualizer = visualizer
        self.generate = generate
        self.samples = samples
        self.every = every

    def step_end(self, loop: Loop, logs: StepLogs | None) -> None:
        if logs is not None:
            scalars = {"loss/total": logs.loss, "learning_rate": logs.learning_rate,
                       "images_per_sec": logs.images_per_sec}
            scalars.update({f"loss/{name}": value for name, value in zip(FEATURE_NAMES, logs.terms)})
            self.visualizer.scalars(loop.step, scalars)
        if self.samples is not None and self.every and loop.step % self.every == 0 and self.visualizer.enabled:
            fake = np.asarray(self.generate(tf.constant(self.samples.layouts[:1])))[0]
            self.visualizer.images(loop.step, self.samples.classes[0], fake, self.samples.images[0])

    def train_end(self, loop: Loop) -> None:
        self.visualizer.flush()


class RescaleLayerWeights(Action):
    """`--layer-weights auto`: after epoch `rescale_epoch`, `CRNLoss.maybe_rescale` sets the layer
    weights from the loss's statistics (once; the checkpoint of that epoch holds them)."""

    def __init__(self, loss):
        self.loss = loss

    def epoch_end(self, loop: Loop) -> None:
        if getattr(self.loss, "auto", False) and self.loss.maybe_rescale(loop.epochs_done):
            weights = ", ".join(f"{n} {w:.4g}" for n, w in zip(FEATURE_NAMES, self.loss.layer_weights.numpy()))
            logger.info("layer weights rescaled after epoch %d: %s", loop.epochs_done, weights)


class SaveSampleGrid(Action):
    """After each epoch: `web/images/epochNNN_val.png` (a row per sample: layout | reference |
    k synthesized) and the page listing them (`Visualizer.save_grid`)."""

    def __init__(self, visualizer: Visualizer, generate: Callable, samples: Samples):
        self.visualizer = visualizer
        self.generate = generate
        self.samples = samples

    def epoch_end(self, loop: Loop) -> None:
        if not self.visualizer.enabled or self.samples is None:
            return
        images, layouts, classes = self.samples
        fakes = np.asarray(self.generate(tf.constant(layouts)))
        self.visualizer.save_grid(loop.epochs_done, sample_rows(classes, fakes, self.visualizer.label_set, images),
                                  step=loop.step)


class SaveCheckpoint(Action):
    """A `RunState` checkpoint at every checkpoint boundary: model, optimizer, loss and counters."""

    def __init__(self, state: RunState):
        self.state = state

    def save(self, loop: Loop) -> None:
        self.state.save(loop.step, *loop.resume_point)


class ExportModel(Action):
    """`RUN_DIR/model/`, the checkpoint directory demo.py reads (`crn_tf.weights.checkpoint.save_model`),
    after each epoch's checkpoint and when fit returns; its config.json also records the step, the
    epochs done and `info`.

    Args:
        model: the CRN.
        directory: where the model directory goes (swapped in atomically).
        label_set: the run's label set, saved with it.
        info: more entries for config.json (preset, run directory, options).
        enabled: False on the other workers of a multi-worker run.
    """

    def __init__(self, model, directory: str | os.PathLike, label_set, info: Mapping[str, Any] | None = None,
                 enabled: bool = True):
        self.model = model
        self.directory = os.fspath(directory)
        self.label_set = label_set
        self.info = dict(info or {})
        self.enabled = enabled

    def save(self, loop: Loop) -> None:
        if loop.epoch_done:
            self.write(loop)

    def train_end(self, loop: Loop) -> None:
        self.write(loop)

    def write(self, loop: Loop) -> None:
        """Writes the model directory now; a failed write raises WriteError naming the step."""
        if not self.enabled:
            return
        from crn_tf.weights.checkpoint import save_model

        try:
            save_model(self.model, self.directory, self.label_set,
                       extra={"step": loop.step, "epochs": loop.epochs_done, **self.info})
        except WriteError as error:
            error.step = loop.step
            raise
