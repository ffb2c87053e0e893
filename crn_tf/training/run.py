"""`train(options)`: one training run from options to a model directory demo.py reads.

Order of things, as tensorflow/models' train_lib: strategy first (multi-worker needs it before
any other TensorFlow work) -> the run directory's lock (chief; a second run there is refused)
-> data scan (bad files stop the run before anything is built) -> options logged -> model,
VGG, loss, optimizer and checkpoint in `strategy.scope()` -> resume: the run dir's newest
readable checkpoint > --init-from > scratch -> options saved, the loss log cut back to the
resumed step (chief) -> fit with its actions (progress bar, loss log, TensorBoard, the "auto"
rescale, sample grid, checkpoints, `RUN_DIR/model/`: `crn_tf.training.actions`).

What it reports goes to this module's logger (train.py shows INFO and above on stderr).
"""
from __future__ import annotations

import dataclasses
import logging
import os
from typing import TYPE_CHECKING

import keras
import numpy as np
import tensorflow as tf

from crn_tf.core.files import WriteError
from crn_tf.core.locks import DirectoryLock
from crn_tf.core.sizes import parse_size
from crn_tf.nn.presets import get_preset, uses_diversity
from crn_tf.training.actions import (
    ExportModel,
    RescaleLayerWeights,
    SaveCheckpoint,
    SaveSampleGrid,
    ShowProgress,
    WriteLossLog,
    WriteSummaries,
)
from crn_tf.training.callbacks import LossLog
from crn_tf.training.loop import CRNTrainer, FitResult, NonFiniteLossError
from crn_tf.training.modules import (
    build_model,
    init_from_checkpoint,
    set_trainable_modules,
)
from crn_tf.training.options import (
    SMOKE_DATA,
    SMOKE_NUM_TRAIN,
    SMOKE_NUM_VAL,
    SMOKE_SIZE,
    TrainOptions,
    check_resume_compatible,
    format_options,
    is_smoke_run,
    load_options,
    resolve_options,
    save_options,
)
from crn_tf.training.state import RunState
from crn_tf.training.strategy import (
    describe_strategy,
    is_chief,
    select_strategy,
    worker_index,
)
from crn_tf.training.visualizer import Visualizer

if TYPE_CHECKING:
    from crn_tf.training.data import EpochData

MODEL_SUBDIR = "model"

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class TrainResult:
    """What a run left behind."""

    run_dir: str
    model_dir: str | None
    fit: FitResult
    resumed_from: int | None
    trainer: CRNTrainer  # the model, loss and optimizer as they ended


def ensure_synthetic_city(path: str = SMOKE_DATA) -> str:
    """Writes the small synthetic city of the default run unless it is already there."""
    from crn_tf.synthetic import write_synthetic_city

    marker = os.path.join(path, "leftImg8bit", "val")
    if os.path.isdir(marker) and os.listdir(marker):
        return path
    logger.info("writing a synthetic city (%d train + %d val scenes, %s) to %s ...", SMOKE_NUM_TRAIN, SMOKE_NUM_VAL,
                SMOKE_SIZE, path)
    write_synthetic_city(path, SMOKE_NUM_TRAIN, SMOKE_NUM_VAL, size=parse_size(SMOKE_SIZE), seed=0)
    return path


def build_loss(options: TrainOptions, diversity: bool, class_weights=None):
    """VGG-19 features and the CRN loss of the options (call inside `strategy.scope()`).

    `class_weights`: per layout channel (`loss_class_weights`), or None for the original's loss.
    """
    from crn_tf.loss.perceptual import build_loss as build

    return build(options.vgg_weights, diversity=diversity, preset=options.preset,
                 layer_weights=options.layer_weights, vgg_pooling=options.vgg_pooling,
                 precision=options.mixed_precision, recompute=options.recompute,
                 rescale_epoch=options.rescale_epoch, diversity_mean_weight=options.diversity_mean_weight,
                 class_weights=class_weights)


def loss_class_weights(options: TrainOptions, data: EpochData) -> np.ndarray | None:
    """`--class-weights enet`: weights per layout channel from the training labels' pixels; else None.

    Counted on every training example at the training size (the same data give the same weights,
    so a resumed run recomputes them); logged once, by name.
    """
    if options.class_weights == "none":
        return None
    from crn_tf.data.class_weights import class_pixel_counts, layout_class_weights

    logger.info("counting each class's pixels in the %d training labels (--class-weights %s) ...", data.num_examples,
                options.class_weights)
    counts = class_pixel_counts(data.scanned, data.size, data.label_set, include_void=True)
    weights = layout_class_weights(counts)
    names = list(data.label_set.names) + ["void"]
    logger.info("class weights (%s, per layout channel, pixel mean 1): %s", options.class_weights,
                ", ".join(f"{name} {weight:.3g}" for name, weight in zip(names, weights)))
    return weights


def demo_command(run_dir: str, labels: str | None, split: str = "val") -> str:
    """The demo.py command that tries the trained model on some layouts."""
    command = f"python demo.py --checkpoint {run_dir}"
    if labels:
        command += f" --labels {labels} --split {split} --out {os.path.join(run_dir, 'demo')}"
    return command


def train(options: TrainOptions, strategy: tf.distribute.Strategy | None = None) -> TrainResult:
    """Runs training as the options say; returns where the model went.

    What it tells on the way (the options, the strategy, where it resumed, where the model went)
    goes to the `crn_tf.training.run` logger at INFO (train.py shows it on stderr); the progress
    bar is drawn on stderr.

    Raises ValueError / DataError / CheckpointError for bad input (before step 0),
    NonFiniteLossError when the loss goes NaN (the last good checkpoint is kept), LockError when
    another process trains in the run directory, and WriteError when a file of the run cannot be
    written (disk full, ...: its message names the path, the step, the cause and the checkpoint
    a re-run resumes from).
    """
    strategy = strategy or select_strategy(options.strategy)
    smoke = is_smoke_run(options)
    options = resolve_options(options)
    chief = is_chief(strategy)
    # One run per run directory: the chief holds its lock (other workers write only scratch files).
    with DirectoryLock(options.run_dir, enabled=chief):
        return _train(options, strategy, smoke, chief)


def _train(options: TrainOptions, strategy: tf.distribute.Strategy, smoke: bool, chief: bool) -> TrainResult:
    # === Data (scanned before anything is built) ===
    from crn_tf.training.data import EpochData

    if smoke:
        ensure_synthetic_city(options.data)
    preset_size = get_preset(options.preset).output_size
    size = parse_size(options.size) if options.size else preset_size
    data = EpochData(options.data, size, options.label_set, options.split, options.batch_size, options.seed,
                     skip_bad=options.skip_bad, photo_resize=options.photo_resize)
    label_set = data.label_set  # resolved once, by the scan
    samples_source = data
    if options.val_data:
        samples_source = EpochData(options.val_data, size, label_set, options.val_split, 1, shuffle=False,
                                   skip_bad=options.skip_bad, photo_resize=options.photo_resize)
    samples = samples_source.samples(options.num_samples)

    # === Run directory and options ===
    run_dir = options.run_dir
    saved = load_options(run_dir)
    if saved is not None:
        check_resume_compatible(saved, options)
    if chief:
        logger.info(format_options(options))
    logger.info("strategy: %s; %d training examples, %d steps per epoch at batch size %d", describe_strategy(strategy),
                data.num_examples, data.steps_per_epoch, options.batch_size)

    class_weights = loss_class_weights(options, data)

    # === Model, loss, optimizer, checkpoint: all in the strategy's scope ===
    keras.utils.set_random_seed(options.seed)  # the same initial weights on every worker and every run
    with strategy.scope():
        model = build_model(options.preset, label_set.num_classes, size=options.size,
                            width_multiplier=options.width_multiplier, num_images=options.num_images,
                            mixed_precision=options.mixed_precision, recompute=options.recompute)
        loss = build_loss(options, diversity=uses_diversity(options.preset, model.num_images),
                          class_weights=class_weights)
    trained = set_trainable_modules(model, options.train_modules)
    trainer = CRNTrainer(model, loss, strategy, learning_rate=options.lr, global_batch_size=options.batch_size,
                         mixed_precision=options.mixed_precision, xla=options.xla)
    with strategy.scope():
        state = RunState(run_dir, {"model": model, "optimizer": trainer.optimizer, "loss": loss},
                         keep=options.keep_checkpoints, chief=chief, worker=worker_index(strategy))

    resumed_from = _start_point(state, model, options.init_from)
    if options.train_modules != "all":
        logger.info("training %s; the other modules are frozen", ", ".join(trained))

    # === The loop and its actions (crn_tf.training.actions), in the order they run at a boundary ===
    model_dir = os.path.join(run_dir, MODEL_SUBDIR)
    visualizer = Visualizer(run_dir, label_set, enabled=chief)
    step = resumed_from or 0
    try:
        loss_log = LossLog(os.path.join(run_dir, "loss_log.txt"), enabled=chief)
        if chief:
            save_options(options, run_dir)
            loss_log.resume(step)  # what a killed run logged after its last checkpoint goes
            if resumed_from is not None:
                visualizer.resumed(step)
        actions = [
            ShowProgress(trainer.global_batch_size, enabled=chief),
            WriteLossLog(loss_log),
            WriteSummaries(visualizer, trainer.generate, samples, every=options.summary_every),
            RescaleLayerWeights(loss),
            SaveSampleGrid(visualizer, trainer.generate, samples),
            SaveCheckpoint(state),
            ExportModel(model, model_dir, label_set, enabled=chief, info={
                "preset": options.preset, "run_dir": os.path.abspath(run_dir), "options": dataclasses.asdict(options)}),
        ]
        result = trainer.fit(data, state, epochs=options.epochs, max_steps=options.steps, actions=actions,
                             save_every=options.save_every, log_every=options.log_every)
    except NonFiniteLossError as error:
        kept = state.latest
        raise NonFiniteLossError(
            f"{error}; stopped. The last good checkpoint is kept: {kept or 'none was written yet'} "
            "(lower --lr, or try --mixed-precision off)"
        ) from None
    except WriteError as error:
        if error.step is None:
            error.step = step
        kept = state.latest
        error.advice = (f"the last good checkpoint, {kept}, is intact" if kept else "no checkpoint was written yet") \
            + "; free some space (or fix the cause) and run the same command again to " \
            + ("resume from it" if kept else "start")
        raise
    if chief:
        _log_end(options, result, model_dir)
    return TrainResult(run_dir, model_dir if chief else None, result, resumed_from, trainer)


def _start_point(state: RunState, model: keras.Model, init_from: str | None) -> int | None:
    """Where a run starts: the run dir's newest readable checkpoint > --init-from > scratch.

    Returns the step it resumed from (None for a new run) and logs which it was.
    """
    if state.restore():
        if state.unreadable:  # once, naming each bad file
            count = len(state.unreadable)
            logger.warning("warning: %d checkpoint%s cannot be read, resuming from the newest one that can: %s",
                           count, "s" if count > 1 else "", "; ".join(state.unreadable))
        resumed_from, epoch, position = state.counters()
        logger.info("resumed from step %d (epoch %d, step %d of it) of %s", resumed_from, epoch + 1, position,
                    state.latest)
        return resumed_from
    if init_from:
        copied = init_from_checkpoint(model, init_from)
        logger.info("initialised %d modules from %s: %s", len(copied), init_from, ", ".join(copied))
    else:
        logger.info("training from scratch")
    return None


def _log_end(options: TrainOptions, result: FitResult, model_dir: str) -> None:
    """The run's last lines: how it ended, where the model is, the demo command that shows it."""
    if result.status == "interrupted":
        logger.info("stopped at step %d; checkpoint %s. Run the same command again to resume.", result.step,
                    result.checkpoint)
    else:
        logger.info(f"done: {result.step} steps, last loss {result.last_loss:.4g}" if result.last_loss is not None
                    else f"done: {result.step} steps")
    labels, split = (options.val_data, options.val_split) if options.val_data else (options.data, options.split)
    logger.info("model checkpoint: %s\ntry it: %s", model_dir, demo_command(options.run_dir, labels, split))
