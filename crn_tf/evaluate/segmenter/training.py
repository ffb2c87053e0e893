"""Training the segmenter: photo -> label pairs through the project's data pipeline, resumable.

The data are read exactly as train.py reads them (`crn_tf.training.data.EpochData`: the
up-front scan, the seeded per-epoch order, `--skip-bad`); each step takes a batch of photos
(float 0..255) and their one-hot layouts, flips a seeded half of them horizontally, and takes
one Adam step on the cross-entropy of the non-void pixels (`masked_cross_entropy`). The state
(network, Adam, step, epoch, position) is checkpointed in `OUT/checkpoints` by the training's
own `RunState`, every `save_every` steps, at each epoch end and on SIGINT/SIGTERM; running the
same command again resumes. After each epoch the validation split is scored and the SavedModel
`OUT/saved_model` is rewritten, so a stopped run always leaves a usable segmenter. The loop is
train.py's own (`crn_tf.training.loop.Trainer.fit`); what the segmenter does at its boundaries
is its list of actions (progress bar, loss log, step timer, `ValidateAndExport`, checkpoint).
"""
from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from crn_tf.core.files import write_atomic
from crn_tf.core.precision import PRECISION_POLICIES
from crn_tf.core.sizes import parse_size
from crn_tf.data.class_weights import class_pixel_counts, enet_class_weights
from crn_tf.evaluate.segmentation import (
    SAVED_MODEL_SUBDIR,
    confusion_matrix,
    scores_from_confusion,
)
from crn_tf.evaluate.segmenter.augment import MAX_BLUR_FACTOR, flip_half, photometric_jitter
from crn_tf.evaluate.segmenter.export import export_segmenter
from crn_tf.evaluate.segmenter.network import (
    SegmentationUNet,
    masked_cross_entropy,
)
from crn_tf.evaluate.segmenter.options import (
    MODEL_FIELDS,
    OPTIONS_NAME,
    SegmenterOptions,
    validate,
)
from crn_tf.labels import LabelSet, resolve_label_set
from crn_tf.training.actions import Action, Loop, SaveCheckpoint, ShowProgress, StepLogs, WriteLossLog
from crn_tf.training.callbacks import LossLog
from crn_tf.training.loop import Trainer
from crn_tf.training.state import RunState

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class SegmenterResult:
    """How a run ended and where its segmenter is."""

    out: str
    saved_model: str
    step: int
    status: str  # "finished" or "interrupted"
    resumed_from: int | None
    last_loss: float | None
    val_scores: dict | None
    seconds_per_step: float | None
    model: SegmentationUNet  # the network as it ended


def check_resume_compatible(out: str, options: SegmenterOptions) -> None:
    """OUT resumes only with the same network: raises ValueError naming the options that differ."""
    path = os.path.join(out, OPTIONS_NAME)
    if not os.path.exists(path):
        return
    with open(path) as f:
        saved = json.load(f)
    changed = [f"--{name.replace('_', '-')} {saved.get(name)} -> {getattr(options, name)}"
               for name in MODEL_FIELDS if saved.get(name) != getattr(options, name)]
    if changed:
        raise ValueError(f"{out} holds a segmenter run with other network options ({'; '.join(changed)}); "
                         "use another --out or the same options")


class SegmenterTrainer(Trainer):
    """The network, Adam and the compiled step of one run; `fit` is the training's own loop (`Trainer`).

    Args:
        model: a `SegmentationUNet` (built).
        learning_rate: Adam's learning rate, or a Keras schedule of the step.
        flip: mirror a seeded half of each batch.
        seed: seed of the flips and the jitter.
        class_weights: float [C] per-class loss weights, or None (every non-void pixel counts the same).
        augment: "none" or "photometric" (seeded blur, gain and contrast: `augment.photometric_jitter`).
        max_blur: with "photometric", the largest blur factor.
        batch_size: images per step (the progress bar's and the loss log's images per second).
    """

    def __init__(self, model: SegmentationUNet, learning_rate, flip: bool = True, seed: int = 0,
                 class_weights: np.ndarray | None = None, augment: str = "none", batch_size: int = 1,
                 max_blur: float = MAX_BLUR_FACTOR):
        self.model = model
        self.class_weights = None if class_weights is None else tf.constant(class_weights, tf.float32)
        self.flip = bool(flip)
        self.augment = augment
        self.max_blur = float(max_blur)
        self.seed = tf.constant(int(seed), tf.int64)
        self.global_batch_size = int(batch_size)
        self.optimizer = keras.optimizers.Adam(learning_rate=learning_rate)
        self.variables = list(model.trainable_variables)
        self.optimizer.build(self.variables)
        self.train_step = tf.function(self._train_step)
        self.predict = tf.function(lambda images: tf.argmax(self.model(images, training=False), axis=-1,
                                                            output_type=tf.int32))

    def _train_step(self, iterator):
        """One Adam step on the next batch; the flips and jitter are seeded by the step (Adam's iterations)."""
        images, layouts = next(iterator)
        step = tf.cast(self.optimizer.iterations, tf.int64)
        if self.flip:
            images, layouts = flip_half(images, layouts, self.seed, step)
        if self.augment == "photometric":
            images = photometric_jitter(images, self.seed, step, self.max_blur)
        with tf.GradientTape() as tape:
            logits = self.model(images, training=True)  # (B, H, W, C) float32
            loss = masked_cross_entropy(logits, layouts, self.class_weights)
        gradients = tape.gradient(loss, self.variables)
        self.optimizer.apply(gradients, self.variables)
        return loss, tf.reshape(loss, [1])

    def score(self, dataset: tf.data.Dataset, num_classes: int) -> dict:
        """mIoU, pixel accuracy and per-class IoU of the network on (image, class ids) batches."""
        matrix = np.zeros((num_classes, num_classes + 1), np.int64)
        for images, classes in dataset:
            predicted = self.predict(images).numpy()
            matrix += confusion_matrix(classes.numpy(), predicted, num_classes)
        scores = scores_from_confusion(matrix)
        return {k: scores[k] for k in ("miou", "pixel_accuracy", "per_class_iou", "pixels_scored")}


def _learning_rate(options: SegmenterOptions, total_steps: int):
    if options.lr_schedule == "constant":
        return options.lr
    return keras.optimizers.schedules.CosineDecay(options.lr, decay_steps=max(total_steps, 1))


def _validation_data(options: SegmenterOptions, size, label_set: LabelSet):
    if options.val_split == "none":
        return None
    from crn_tf.training.data import EpochData

    val = EpochData(options.val_data or options.data, size, label_set, options.val_split, 1, shuffle=False,
                    skip_bad=options.skip_bad)
    return val.labelled_batches(options.batch_size), val.num_examples


def _format_scores(scores: dict) -> str:
    return f"mIoU {scores['miou']:.4f}, pixel accuracy {scores['pixel_accuracy']:.4f}"


def train_segmenter(options: SegmenterOptions) -> SegmenterResult:
    """Trains (or resumes) the segmenter of `options.out`; returns where its SavedModel is.

    Raises ValueError / DataError / LabelError for bad input (before step 0), and
    NonFiniteLossError when the loss goes NaN (the last good checkpoint is kept).
    """
    from crn_tf.training.data import EpochData

    validate(options)
    out = os.fspath(options.out)
    size = parse_size(options.size, 8)
    label_set = resolve_label_set(options.label_set)

    # === Data (scanned before anything is built) ===
    data = EpochData(options.data, size, label_set, options.split, options.batch_size, options.seed,
                     skip_bad=options.skip_bad)
    validation = _validation_data(options, size, label_set)
    steps_per_epoch = data.steps_per_epoch
    total = options.steps if options.steps is not None else options.epochs * steps_per_epoch
    epochs = math.ceil(total / steps_per_epoch)

    # === Options, network, optimizer, checkpoint ===
    check_resume_compatible(out, options)
    os.makedirs(out, exist_ok=True)
    write_atomic(os.path.join(out, OPTIONS_NAME), json.dumps(dataclasses.asdict(options), indent=2) + "\n")
    keras.utils.set_random_seed(options.seed)
    policy = PRECISION_POLICIES[options.mixed_precision]
    model = SegmentationUNet(label_set.num_classes, options.base_width, options.depth, options.norm,
                             **({"dtype": policy} if policy else {}))
    model.build()
    class_weights = None
    if options.class_weights == "enet":
        class_weights = enet_class_weights(class_pixel_counts(data.scanned, size, label_set))
        logger.info("class weights (enet): %s",
                    ", ".join(f"{n} {w:.3g}" for n, w in zip(label_set.names, class_weights)))
    trainer = SegmenterTrainer(model, _learning_rate(options, total), flip=options.flip, augment=options.augment,
                               seed=options.seed, class_weights=class_weights, batch_size=options.batch_size,
                               max_blur=options.max_blur)
    state = RunState(out, {"model": model, "optimizer": trainer.optimizer}, keep=options.keep_checkpoints)
    logger.info(f"segmenter: U-Net, {options.depth} levels, widths {model.widths}, {options.norm} norm, "
                f"{model.count_params():,} parameters, {options.mixed_precision} precision; {data.num_examples} "
                f"training examples at {size[0]}x{size[1]}, {steps_per_epoch} steps per epoch at batch size "
                f"{options.batch_size}")
    resumed_from = None
    if state.latest is not None:
        state.restore()
        resumed_from = state.counters()[0]
        logger.info("resumed from step %d of %s", resumed_from, state.latest)

    # === The loop: the training's own (Trainer.fit), with the segmenter's actions ===
    saved_model = os.path.join(out, SAVED_MODEL_SUBDIR)
    loss_log = LossLog(os.path.join(out, "loss_log.txt"))
    loss_log.resume(resumed_from or 0)  # what a killed run logged after its last checkpoint goes
    timer = TimeSteps()
    export = ValidateAndExport(trainer, validation, saved_model, label_set,
                               lambda step, epochs, scores: _info(options, size, step, epochs, scores))
    actions = [ShowProgress(options.batch_size, enabled=options.progress), WriteLossLog(loss_log), timer, export,
               SaveCheckpoint(state)]
    result = trainer.fit(data, state, epochs=epochs, max_steps=total, actions=actions,
                         save_every=options.save_every, log_every=options.log_every)
    if export.exported_step != result.step and (result.step != resumed_from or not os.path.exists(saved_model)):
        export.export(result.step, result.epoch, export.scores)
    return SegmenterResult(out, saved_model, result.step, result.status, resumed_from, result.last_loss,
                           export.scores, timer.seconds_per_step, model)


class TimeSteps(Action):
    """Seconds per step over the read-back windows, leaving out a process's first (it traces the step)."""

    def __init__(self):
        self.seconds, self.steps, self.last_step = 0.0, 0, None

    def step_end(self, loop: Loop, logs: StepLogs | None) -> None:
        if logs is None:
            return
        if self.last_step is not None:
            self.seconds += logs.seconds
            self.steps += loop.step - self.last_step
        self.last_step = loop.step

    @property
    def seconds_per_step(self) -> float | None:
        return self.seconds / self.steps if self.steps else None


class ValidateAndExport(Action):
    """At each epoch's end: the validation split's scores (logged), then the SavedModel rewritten
    (`export_segmenter`), so a stopped run always leaves a usable segmenter."""

    def __init__(self, trainer: SegmenterTrainer, validation, saved_model: str, label_set: LabelSet, info):
        self.trainer, self.validation, self.saved_model = trainer, validation, saved_model
        self.label_set, self.info = label_set, info
        self.scores: dict | None = None
        self.exported_step: int | None = None

    def epoch_end(self, loop: Loop) -> None:
        if self.validation is not None:
            self.scores = self.trainer.score(self.validation[0], self.label_set.num_classes)
            logger.info("epoch %d: val %s (%d images)", loop.epochs_done, _format_scores(self.scores),
                        self.validation[1])
        self.export(loop.step, loop.epochs_done, self.scores)

    def export(self, step: int, epochs: int, scores: dict | None) -> None:
        export_segmenter(self.trainer.model, self.saved_model, self.label_set, self.info(step, epochs, scores))
        self.exported_step = step


def _info(options: SegmenterOptions, size, step: int, epochs: int, scores: dict | None) -> dict[str, Any]:
    """What the SavedModel's note records about its training."""
    return {"size": list(size), "step": int(step), "epochs": int(epochs), "val": scores,
            "val_data": os.path.abspath(options.val_data or options.data), "val_split": options.val_split,
            "data": os.path.abspath(options.data), "options": dataclasses.asdict(options)}
