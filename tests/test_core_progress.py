"""crn_tf.core.progress: the one progress bar (terminal redraw, short logs, rate, ETA, extra text)."""
import io

import pytest

from crn_tf.core import progress as progress_module
from crn_tf.core.progress import Progress, format_duration


class Clock:
    """A stand-in for time.monotonic that the test moves by hand."""

    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


class Terminal(io.StringIO):
    def isatty(self):
        return True


@pytest.fixture
def clock(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(progress_module.time, "monotonic", clock)
    return clock


def test_format_duration():
    assert format_duration(3725) == "1:02:05" and format_duration(65) == "01:05" and format_duration(-3) == "00:00"


def test_render_rate_eta_and_extra(clock):
    bar = Progress(10, "epoch 1/2", stream=io.StringIO(), unit="img")
    assert bar.render(5, "loss 1.5", 1.0) == "epoch 1/2 [############............] 5/10 loss 1.5 1 img/s ETA 00:05"
    batches = Progress(10, "epoch 1/2", stream=io.StringIO(), unit="img", per_step=4)  # 4 images per step
    assert batches.render(5, rate=2.0).endswith("5/10 2 img/s ETA 00:10")
    assert batches.render(5, rate=0.25).endswith("5/10 4 s/img ETA 01:20")
    plain = Progress(4, "synthesizing", stream=io.StringIO(), width=8)
    assert plain.render() == "synthesizing [........] 0/4"  # nothing done yet: no rate, no ETA
    clock.now += 2
    plain.update()
    assert plain.render() == "synthesizing [##......] 1/4 2 s each ETA 00:06"  # measured: 1 item in 2 s
    clock.now += 1
    plain.update(2)
    assert plain.render() == "synthesizing [######..] 3/4 1/s ETA 00:01"


def test_log_gets_a_line_per_10_percent_at_most_never_per_item(clock):
    stream = io.StringIO()
    bar = Progress(1000, "checking pixels", stream=stream, min_interval=5.0)
    for _ in range(1000):
        clock.now += 0.1  # 100 s in all: a line at most every 5 s and every 10%
        bar.update()
    lines = stream.getvalue().splitlines()
    assert len(lines) == 10, lines  # 10%, 20%, ... 90% and the final line
    assert [line.split()[3] for line in lines[:3]] == ["100/1000", "200/1000", "300/1000"]
    assert lines[-1] == "checking pixels [########################] 1000/1000 10/s | 01:40"
    assert "\r" not in stream.getvalue()
    bar.close("ignored")  # already ended at 1000/1000
    assert len(stream.getvalue().splitlines()) == 10


def test_log_is_quiet_between_lines_on_a_fast_job(clock):
    stream = io.StringIO()
    bar = Progress(50, "prepare train", stream=stream)
    for _ in range(50):
        clock.now += 0.01  # 0.5 s in all, under min_interval: only the final line
        bar.update()
    assert stream.getvalue() == "prepare train [########################] 50/50 100/s | 00:00\n"


def test_terminal_redraws_one_line(clock):
    stream = Terminal()
    bar = Progress(3, "writing scenes", stream=stream, width=3)
    for name in ("train/a_long_name", "train/b", "val/c"):
        clock.now += 1
        bar.update(extra=name)
    text = stream.getvalue()
    assert text.count("\n") == 1 and text.endswith("\n")
    draws = text.split("\r")[1:]
    assert draws[0] == "writing scenes [...] 0/3"
    assert draws[1] == "writing scenes [#..] 1/3 train/a_long_name 1/s ETA 00:02"
    second, last = "writing scenes [##.] 2/3 train/b 1/s ETA 00:01", "writing scenes [###] 3/3 val/c 1/s | 00:03"
    assert draws[2] == second + " " * len("_long_name")  # spaces wipe the rest of the longer line
    assert draws[3] == last + " " * (len(second) - len(last)) + "\n"


def test_close_part_way_disabled_and_empty(clock):
    stream = io.StringIO()
    bar = Progress(10, "epoch 2/3", stream=stream, done=4, unit="img")  # a resumed epoch
    clock.now += 3
    bar.update_to(7, extra="loss 2", rate=8.0)
    bar.close("interrupted")
    assert stream.getvalue() == "epoch 2/3 [################........] 7/10 loss 2 8 img/s ETA 00:00 | 00:03 | interrupted\n"
    quiet = io.StringIO()
    off = Progress(5, "synthesizing", enabled=False, stream=quiet)
    off.update(5)
    off.close()
    assert quiet.getvalue() == ""
    empty = io.StringIO()
    Progress(0, "real images", stream=empty).close()
    assert empty.getvalue() == "real images [########################] 0/0 | 00:00\n"
