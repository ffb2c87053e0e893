"""crn_tf.training.actions: what CRNTrainer.fit calls at its boundaries, and in what order."""
import io

import keras
import numpy as np
import pytest
from conftest import write_city

from crn_tf.labels import CITYSCAPES
from crn_tf.loss.perceptual import CRNLoss
from crn_tf.nn.model import CRN
from crn_tf.training.actions import (
    Action,
    Loop,
    SaveCheckpoint,
    ShowProgress,
    WriteLossLog,
)
from crn_tf.training.callbacks import LossLog
from crn_tf.training.data import EpochData
from crn_tf.training.loop import CRNTrainer
from crn_tf.training.state import RunState

SIZE = (32, 64)


@pytest.fixture(scope="module")
def city(tmp_path_factory):
    """3 training scenes: an epoch is 3 steps at batch size 1."""
    return write_city(tmp_path_factory, 3, 1, SIZE, seed=6)


def small_trainer(vgg, tmp_path):
    """A widths-8 CRN at SIZE, its trainer (Adam 1e-3) and a run state in `tmp_path`, seeded."""
    keras.utils.set_random_seed(0)
    model = CRN(output_size=SIZE, widths=(8, 8, 8, 8))
    model.build()
    trainer = CRNTrainer(model, CRNLoss(vgg), learning_rate=1e-3)
    return model, trainer, RunState(tmp_path, {"model": model, "optimizer": trainer.optimizer})


class Recorder(Action):
    """Writes down every call as (hook, step, what the hook is about)."""

    def __init__(self):
        self.calls = []
        self.logs = []

    def epoch_begin(self, loop):
        self.calls.append(("epoch_begin", loop.step, (loop.epoch, loop.position)))

    def step_end(self, loop, logs):
        self.calls.append(("step_end", loop.step, logs is not None))
        if logs is not None:
            self.logs.append((loop.step, logs))

    def epoch_end(self, loop):
        self.calls.append(("epoch_end", loop.step, loop.epochs_done))

    def save(self, loop):
        self.calls.append(("save", loop.step, loop.resume_point))

    def train_end(self, loop):
        self.calls.append(("train_end", loop.step, loop.epochs_done))


def test_loop_counters_say_where_a_resumed_run_goes_on():
    middle = Loop(step=5, epoch=1, position=2, epochs=3, steps_per_epoch=3, total_steps=9)
    assert (middle.epoch_done, middle.finished, middle.epochs_done, middle.resume_point) == (False, False, 1, (1, 2))
    end = Loop(step=9, epoch=2, position=3, epochs=3, steps_per_epoch=3, total_steps=9)
    assert (end.epoch_done, end.finished, end.epochs_done, end.resume_point) == (True, True, 3, (3, 0))


def test_fit_calls_the_actions_at_each_boundary_in_order(city, vgg, tmp_path):
    model, trainer, state = small_trainer(vgg, tmp_path)
    data = EpochData(city, SIZE, CITYSCAPES, global_batch_size=1, seed=0)
    losses, step_fn = [], trainer.train_step

    def recorded_step(iterator):  # each step's loss, read here, for the averages below
        loss, terms = step_fn(iterator)
        losses.append(float(loss))
        return loss, terms

    trainer.train_step = recorded_step
    recorder, bar = Recorder(), io.StringIO()
    log = LossLog(tmp_path / "loss_log.txt")
    result = trainer.fit(data, state, epochs=2, max_steps=5, log_every=2, save_every=4,
                         actions=[ShowProgress(1, stream=bar), WriteLossLog(log), recorder, SaveCheckpoint(state)])
    # 5 steps, 3 per epoch: read back every 2 steps and at each checkpoint boundary (step 4 by
    # save_every, 3 as the epoch's end, 5 as the last step); the epoch's end comes before its save.
    assert recorder.calls == [
        ("epoch_begin", 0, (0, 0)),
        ("step_end", 1, False), ("step_end", 2, True),
        ("step_end", 3, True), ("epoch_end", 3, 1), ("save", 3, (1, 0)),
        ("epoch_begin", 3, (1, 0)),
        ("step_end", 4, True), ("save", 4, (1, 1)),
        ("step_end", 5, True), ("save", 5, (1, 2)),
        ("train_end", 5, 1),
    ]
    assert (result.step, result.epoch, result.position, result.status) == (5, 1, 2, "finished")
    # Each read-back averages the steps since the last one; the per-layer terms add up to the loss.
    windows = {2: losses[0:2], 3: losses[2:3], 4: losses[3:4], 5: losses[4:5]}
    for step, logs in recorder.logs:
        assert logs.loss == pytest.approx(np.mean(windows[step]), rel=1e-6)
        assert logs.terms.shape == (6,) and logs.terms.sum() == pytest.approx(logs.loss, rel=1e-5)
        assert logs.images_per_sec > 0 and logs.learning_rate == pytest.approx(1e-3)
    assert result.last_loss == recorder.logs[-1][1].loss
    assert [(row["step"], row["epoch"]) for row in log.read()] == [(2, 0), (3, 0), (4, 1), (5, 1)]
    # The bar: a closing line (with the time it took) per epoch in a log file; the second ends part-way.
    lines = [line for line in bar.getvalue().splitlines() if " | " in line]
    assert len(lines) == 2
    assert lines[0].startswith("epoch 1/2 [########################] 3/3 loss ")
    assert lines[1].startswith("epoch 2/2 [################........] 2/3 loss ")
    # The checkpoint of step 4 resumes in epoch 2, one step in: a new fit's first boundary says so.
    fresh = RunState(tmp_path, {"model": model, "optimizer": trainer.optimizer})
    assert fresh.restore(str(tmp_path / "checkpoints" / "ckpt-4")) and fresh.counters() == (4, 1, 1)
    again = Recorder()
    trainer.fit(data, fresh, epochs=2, actions=[again])
    assert again.calls[0] == ("epoch_begin", 4, (1, 1))
    assert again.calls[-3:] == [("epoch_end", 6, 2), ("save", 6, (2, 0)), ("train_end", 6, 2)]


def test_a_signal_during_an_action_stops_at_that_step_with_its_checkpoint(city, vgg, tmp_path):
    import os
    import signal

    _, trainer, state = small_trainer(vgg, tmp_path)

    class TermAtStep2(Recorder):
        def step_end(self, loop, logs):
            super().step_end(loop, logs)
            if loop.step == 2:
                os.kill(os.getpid(), signal.SIGTERM)

    recorder = TermAtStep2()
    result = trainer.fit(EpochData(city, SIZE, CITYSCAPES, global_batch_size=1, seed=0), state, epochs=2,
                         log_every=10, save_every=100, actions=[recorder, SaveCheckpoint(state)])
    # Step 2 was no boundary when it ran; the signal makes it the last one: checked, saved, stopped.
    assert recorder.calls == [("epoch_begin", 0, (0, 0)), ("step_end", 1, False), ("step_end", 2, False),
                              ("save", 2, (0, 2)), ("train_end", 2, 0)]
    assert (result.status, result.step, os.path.basename(result.checkpoint)) == ("interrupted", 2, "ckpt-2")
    assert result.last_loss is not None and np.isfinite(result.last_loss)
