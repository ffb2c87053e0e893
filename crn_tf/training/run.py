"""`train(options)`: one training run from options to a model directory demo.py reads.

Order of things, as tensorflow/models' train_lib: strategy first (multi-worker needs it before
any other TensorFlow work) -> the run directory's lock (chief; a second run there is refused)
-> data scan (bad files stop the run before anything is built) -> options printed -> model,
VGG, loss, optimizer and checkpoint in `strategy.scope()` -> resume: the run dir's newest
readable checkpoint > --init-from > scratch -> options saved, the loss log cut back to the
resumed step (chief) -> fit -> `RUN_DIR/model/` (`crn_tf.weights.checkpoint.save_model`).
"""
from __future__ import annotations

import dataclasses
import os
import sys
from typing import IO

import keras
import tensorflow as tf

from crn_tf.core.files import WriteError
from crn_tf.core.locks import DirectoryLock
from crn_tf.core.precision import PRECISION_POLICIES
from crn_tf.core.sizes import parse_size
from crn_tf.nn.model import PRESETS
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

MODEL_SUBDIR = "model"


@dataclasses.dataclass
class TrainResult:
    """What a run left behind."""

    run_dir: str
    model_dir: str | None
    fit: FitResult
    resumed_from: int | None
    trainer: CRNTrainer  # the model, loss and optimizer as they ended


def ensure_synthetic_city(path: str = SMOKE_DATA, stream: IO[str] | None = None) -> str:
    """Writes the small synthetic city of the default run unless it is already there."""
    from crn_tf.synthetic import write_synthetic_city

    marker = os.path.join(path, "leftImg8bit", "val")
    if os.path.isdir(marker) and os.listdir(marker):
        return path
    print(f"writing a synthetic city ({SMOKE_NUM_TRAIN} train + {SMOKE_NUM_VAL} val scenes, {SMOKE_SIZE}) "
          f"to {path} ...", file=stream or sys.stderr, flush=True)
    write_synthetic_city(path, SMOKE_NUM_TRAIN, SMOKE_NUM_VAL, size=parse_size(SMOKE_SIZE), seed=0)
    return path


def layer_weights_name(options: TrainOptions, diversity: bool) -> str:
    """--layer-weights original -> the release's constants for this loss; auto stays auto."""
    if options.layer_weights == "auto":
        return "auto"
    if diversity:
        return "256p"
    return "1024p" if options.preset == "1024p" else "512p"


def build_loss(options: TrainOptions, diversity: bool):
    """VGG-19 features and the CRN loss of the options (call inside `strategy.scope()`)."""
    from crn_tf.loss.perceptual import CRNLoss
    from crn_tf.loss.vgg import VGG19Features

    weights = None if options.vgg_weights == "random" else options.vgg_weights
    policy = PRECISION_POLICIES[options.mixed_precision]
    dtype = {"dtype": policy} if policy else {}
    features = VGG19Features(weights, pooling=options.vgg_pooling, **dtype)
    if options.recompute:
        # The loss's VGG activations are as large as the generator's at 1024p: recompute both.
        from crn_tf.loss.recompute import RecomputedVGGFeatures

        features = RecomputedVGGFeatures(features)
    return CRNLoss(features, layer_weights=layer_weights_name(options, diversity), diversity=diversity,
                   rescale_epoch=options.rescale_epoch, diversity_mean_weight=options.diversity_mean_weight)


def demo_command(run_dir: str, labels: str | None, split: str = "val") -> str:
    """The demo.py command that tries the trained model on some layouts."""
    command = f"python demo.py --checkpoint {run_dir}"
    if labels:
        command += f" --labels {labels} --split {split} --out {os.path.join(run_dir, 'demo')}"
    return command


def train(options: TrainOptions, strategy: tf.distribute.Strategy | None = None,
          stream: IO[str] | None = None) -> TrainResult:
    """Runs training as the options say; returns where the model went.

    Raises ValueError / DataError / CheckpointError for bad input (before step 0),
    NonFiniteLossError when the loss goes NaN (the last good checkpoint is kept), LockError when
    another process trains in the run directory, and WriteError when a file of the run cannot be
    written (disk full, ...: its message names the path, the step, the cause and the checkpoint
    a re-run resumes from).
    """
    stream = stream if stream is not None else sys.stderr
    strategy = strategy or select_strategy(options.strategy)
    smoke = is_smoke_run(options)
    options = resolve_options(options)
    chief = is_chief(strategy)
    # One run per run directory: the chief holds its lock (other workers write only scratch files).
    with DirectoryLock(options.run_dir, enabled=chief, warn=lambda line: print(line, file=stream, flush=True)):
        return _train(options, strategy, smoke, chief, stream)


def _train(options: TrainOptions, strategy: tf.distribute.Strategy, smoke: bool, chief: bool,
           stream: IO[str]) -> TrainResult:
    # === Data (scanned before anything is built) ===
    from crn_tf.training.data import EpochData

    if smoke:
        ensure_synthetic_city(options.data, stream)
    preset_size = tuple(PRESETS[options.preset]["output_size"])
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
        print(format_options(options), file=stream)
    print(f"strategy: {describe_strategy(strategy)}; {data.num_examples} training examples, "
          f"{data.steps_per_epoch} steps per epoch at batch size {options.batch_size}", file=stream)

    # === Model, loss, optimizer, checkpoint: all in the strategy's scope ===
    keras.utils.set_random_seed(options.seed)  # the same initial weights on every worker and every run
    with strategy.scope():
        model = build_model(options.preset, label_set.num_classes, size=options.size,
                            width_multiplier=options.width_multiplier, num_images=options.num_images,
                            mixed_precision=options.mixed_precision, recompute=options.recompute)
        loss = build_loss(options, diversity=model.num_images > 1)
    trained = set_trainable_modules(model, options.train_modules)
    trainer = CRNTrainer(model, loss, strategy, learning_rate=options.lr, global_batch_size=options.batch_size,
                         mixed_precision=options.mixed_precision, xla=options.xla)
    with strategy.scope():
        state = RunState(run_dir, {"model": model, "optimizer": trainer.optimizer, "loss": loss},
                         keep=options.keep_checkpoints, chief=chief, worker=worker_index(strategy))

    # === Resume order: the run dir's newest readable checkpoint > --init-from > scratch ===
    resumed_from = None
    if state.restore():
        if state.unreadable:  # once, naming each bad file
            count = len(state.unreadable)
            print(f"warning: {count} checkpoint{'s' if count > 1 else ''} cannot be read, resuming from the newest "
                  f"one that can: {'; '.join(state.unreadable)}", file=stream)
        resumed_from, epoch, position = state.counters()
        print(f"resumed from step {resumed_from} (epoch {epoch + 1}, step {position} of it) of {state.latest}",
              file=stream)
    elif options.init_from:
        copied = init_from_checkpoint(model, options.init_from)
        print(f"initialised {len(copied)} modules from {options.init_from}: {', '.join(copied)}", file=stream)
    else:
        print("training from scratch", file=stream)
    if options.train_modules != "all":
        print(f"training {', '.join(trained)}; the other modules are frozen", file=stream)

    model_dir = os.path.join(run_dir, MODEL_SUBDIR)

    def write_model(epochs_done: int, step: int) -> None:
        if chief:
            from crn_tf.weights.checkpoint import save_model

            try:
                save_model(model, model_dir, label_set, extra={
                    "step": step, "epochs": epochs_done, "preset": options.preset,
                    "run_dir": os.path.abspath(run_dir), "options": dataclasses.asdict(options)})
            except WriteError as error:
                error.step = step
                raise

    visualizer = Visualizer(run_dir, label_set, enabled=chief)
    step = resumed_from or 0
    try:
        loss_log = LossLog(os.path.join(run_dir, "loss_log.txt"), enabled=chief)
        if chief:
            save_options(options, run_dir)
            loss_log.resume(step)  # what a killed run logged after its last checkpoint goes
            if resumed_from is not None:
                visualizer.resumed(step)
        result = trainer.fit(
            data, state, epochs=options.epochs, max_steps=options.steps, visualizer=visualizer, loss_log=loss_log,
            samples=samples, save_every=options.save_every, log_every=options.log_every,
            summary_every=options.summary_every, on_epoch_end=write_model, verbose=chief, stream=stream,
        )
        step = result.step
        write_model(result.epoch, result.step)
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
        if result.status == "interrupted":
            print(f"stopped at step {result.step}; checkpoint {result.checkpoint}. Run the same command again "
                  "to resume.", file=stream)
        else:
            print(f"done: {result.step} steps, last loss {result.last_loss:.4g}" if result.last_loss is not None
                  else f"done: {result.step} steps", file=stream)
        labels, split = (options.val_data, options.val_split) if options.val_data else (options.data, options.split)
        print(f"model checkpoint: {model_dir}\ntry it: {demo_command(run_dir, labels, split)}", file=stream)
    return TrainResult(run_dir, model_dir if chief else None, result, resumed_from, trainer)
