"""Training the segmenter: photo -> label pairs through the project's data pipeline, resumable.

The data are read exactly as train.py reads them (`crn_tf.training.data.EpochData`: the
up-front scan, the seeded per-epoch order, `--skip-bad`); each step takes a batch of photos
(float 0..255) and their one-hot layouts, flips a seeded half of them horizontally, and takes
one Adam step on the cross-entropy of the non-void pixels (`masked_cross_entropy`). The state
(network, Adam, step, epoch, position) is checkpointed in `OUT/checkpoints` by the training's
own `RunState`, every `save_every` steps, at each epoch end and on SIGINT/SIGTERM; running the
same command again resumes. After each epoch the validation split is scored and the SavedModel
`OUT/saved_model` is rewritten, so a stopped run always leaves a usable segmenter.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import time
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from crn_tf.core.files import write_atomic
from crn_tf.core.precision import PRECISION_POLICIES
from crn_tf.core.progress import Progress
from crn_tf.core.sizes import parse_size
from crn_tf.evaluate.segmentation import (
    SAVED_MODEL_SUBDIR,
    confusion_matrix,
    scores_from_confusion,
)
from crn_tf.evaluate.segmenter.augment import flip_half, photometric_jitter
from crn_tf.evaluate.segmenter.export import export_segmenter
from crn_tf.evaluate.segmenter.network import (
    SegmentationUNet,
    masked_cross_entropy,
)
from crn_tf.evaluate.segmenter.options import (
    ENET_C,
    MODEL_FIELDS,
    OPTIONS_NAME,
    SegmenterOptions,
    validate,
)
from crn_tf.labels import LabelSet, resolve_label_set
from crn_tf.training.callbacks import LossLog
from crn_tf.training.loop import NonFiniteLossError
from crn_tf.training.state import RunState, StopRequest

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


def class_pixel_counts(examples, size, label_set: LabelSet) -> np.ndarray:
    """int64 [num_classes]: pixels of each class over the examples' labels at the training size."""
    from crn_tf.data.pipeline import example_dataset

    counts = np.zeros(label_set.num_classes + 1, np.int64)
    dataset = example_dataset(examples, size, label_set, with_images=False, deterministic=True).batch(64)
    for classes, _ in dataset:
        index = np.minimum(classes.numpy().astype(np.int64), label_set.num_classes)  # void -> the last bin
        counts += np.bincount(index.ravel(), minlength=label_set.num_classes + 1)
    return counts[:-1]


def enet_class_weights(counts: np.ndarray) -> np.ndarray:
    """float32 [C]: 1 / ln(1.02 + share of the class among the non-void pixels) (`ENET_C`)."""
    counts = np.asarray(counts, np.float64)
    share = counts / max(counts.sum(), 1.0)
    return (1.0 / np.log(ENET_C + share)).astype(np.float32)


class SegmenterTrainer:
    """The network, Adam and the compiled step of one run.

    Args:
        model: a `SegmentationUNet` (built).
        learning_rate: Adam's learning rate, or a Keras schedule of the step.
        flip: mirror a seeded half of each batch.
        augment: "none" or "photometric" (seeded blur, gain and contrast: `augment.photometric_jitter`).
        seed: seed of the flips and the jitter.
        class_weights: float [C] per-class loss weights, or None (every non-void pixel counts the same).
    """

    def __init__(self, model: SegmentationUNet, learning_rate, flip: bool = True, seed: int = 0,
                 class_weights: np.ndarray | None = None, augment: str = "none"):
        self.model = model
        self.class_weights = None if class_weights is None else tf.constant(class_weights, tf.float32)
        self.flip = bool(flip)
        self.augment = augment
        self.seed = tf.constant(int(seed), tf.int64)
        self.optimizer = keras.optimizers.Adam(learning_rate=learning_rate)
        self.variables = list(model.trainable_variables)
        self.optimizer.build(self.variables)
        self.train_step = tf.function(self._train_step)
        self.predict = tf.function(lambda images: tf.argmax(self.model(images, training=False), axis=-1,
                                                            output_type=tf.int32))

    def _train_step(self, images, layouts, step):
        if self.flip:
            images, layouts = flip_half(images, layouts, self.seed, step)
        if self.augment == "photometric":
            images = photometric_jitter(images, self.seed, step)
        with tf.GradientTape() as tape:
            logits = self.model(images, training=True)  # (B, H, W, C) float32
            loss = masked_cross_entropy(logits, layouts, self.class_weights)
        gradients = tape.gradient(loss, self.variables)
        self.optimizer.apply(gradients, self.variables)
        return loss

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
                               seed=options.seed,
                               class_weights=class_weights)
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

    # === The loop ===
    saved_model = os.path.join(out, SAVED_MODEL_SUBDIR)
    loss_log = LossLog(os.path.join(out, "loss_log.txt"))
    step, epoch, position = state.counters()
    last_loss, val_scores, status = None, None, "finished"
    step_seconds, timed_steps, traced, exported_step = 0.0, 0, False, None

    with StopRequest() as stop:
        while step < total and not stop.requested:
            if position >= steps_per_epoch:
                epoch, position = epoch + 1, 0
            batches = iter(data.dataset(epoch).skip(position))
            bar = Progress(steps_per_epoch, f"epoch {epoch + 1}/{epochs}", enabled=options.progress,
                           done=position, unit="img", per_step=options.batch_size)
            pending, window = [], time.monotonic()
            while position < steps_per_epoch and step < total:
                images, layouts = next(batches)
                loss = trainer.train_step(images, layouts, tf.constant(step, tf.int64))
                step, position = step + 1, position + 1
                pending.append(loss)
                epoch_done = position == steps_per_epoch
                save_now = step % options.save_every == 0 or epoch_done or step == total or stop.requested
                if step % options.log_every == 0 or save_now:
                    last_loss = _check_losses(pending, step)
                    elapsed = time.monotonic() - window
                    if traced:  # the first window of a process includes tracing the step
                        step_seconds, timed_steps = step_seconds + elapsed, timed_steps + len(pending)
                    traced = True
                    speed = len(pending) * options.batch_size / max(elapsed, 1e-9)
                    bar.update_to(position, extra=f"loss {last_loss:.4f}", rate=speed)
                    loss_log.write(step, epoch, last_loss, speed)
                    pending, window = [], time.monotonic()
                if save_now:
                    state.save(step, epoch + 1 if epoch_done else epoch, 0 if epoch_done else position)
                if stop.requested:
                    status = "interrupted"
                    break
            bar.close("interrupted" if stop.requested else "")
            if position >= steps_per_epoch:  # the epoch's validation score, then its SavedModel
                if validation is not None:
                    val_scores = trainer.score(validation[0], label_set.num_classes)
                    logger.info("epoch %d: val %s (%d images)", epoch + 1, _format_scores(val_scores), validation[1])
                export_segmenter(model, saved_model, label_set, _info(options, size, step, epoch + 1, val_scores))
                epoch, position, exported_step = epoch + 1, 0, step
        if stop.requested:
            status = "interrupted"
    if exported_step != step and (step != resumed_from or not os.path.exists(saved_model)):
        export_segmenter(model, saved_model, label_set, _info(options, size, step, epoch, val_scores))
    return SegmenterResult(out, saved_model, step, status, resumed_from, last_loss, val_scores,
                           step_seconds / timed_steps if timed_steps else None, model)


def _check_losses(pending: list, step: int) -> float:
    """Reads back the pending losses (one host sync); raises NonFiniteLossError on NaN/Inf."""
    losses = tf.stack(pending).numpy()
    bad = np.flatnonzero(~np.isfinite(losses))
    if bad.size:
        raise NonFiniteLossError(f"the loss became {losses[bad[0]]} at step {step - len(pending) + 1 + int(bad[0])}")
    return float(losses.mean())


def _info(options: SegmenterOptions, size, step: int, epochs: int, scores: dict | None) -> dict[str, Any]:
    """What the SavedModel's note records about its training."""
    return {"size": list(size), "step": int(step), "epochs": int(epochs), "val": scores,
            "val_data": os.path.abspath(options.val_data or options.data), "val_split": options.val_split,
            "data": os.path.abspath(options.data), "options": dataclasses.asdict(options)}
