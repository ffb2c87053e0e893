"""`--low-memory auto`: the plain pass's memory estimate (against hand computation), the choice, the flag."""
import argparse
import logging

import numpy as np
import pytest
import tensorflow as tf

from crn_tf.core import machine
from crn_tf.nn import inference, memory
from crn_tf.nn.model import CRN


def test_plain_pass_estimate_by_hand():
    # 3 modules at 4x8, 8x16, 16x32; widths 6, 5, 3; 19 classes + void = 20 channels.
    model = CRN(output_size=(16, 32), widths=(6, 5, 3))
    px = [32, 128, 512]

    def module(pixels, previous, width, size, f32_upsample_cast):
        upsample = pixels * previous * (4 + (0 if f32_upsample_cast else size))
        return pixels // 4 * previous * size + upsample + 2 * pixels * (previous + 20) * size + 2 * pixels * width * size

    fp32 = max(module(px[0], 0, 6, 4, True), module(px[1], 6, 5, 4, True), module(px[2], 5, 3, 4, True))
    layout = 16 * 32 * 20 * (4 + 4) * 4 // 3
    assert memory.plain_pass_bytes(model) == fp32 + layout
    assert memory.plain_pass_bytes(model, batch_size=3) > 2.9 * memory.plain_pass_bytes(model)
    bf16 = CRN(output_size=(16, 32), widths=(6, 5, 3), dtype="mixed_bfloat16")
    kernels = 2 * (9 * (20 * 6 + 6 * 6 + 26 * 5 + 5 * 5 + 25 * 3 + 3 * 3) + 3 * 3)  # every conv kernel, bf16
    bf16.build()
    expected = max(module(px[0], 0, 6, 2, False), module(px[1], 6, 5, 2, False), module(px[2], 5, 3, 2, False))
    assert memory.plain_pass_bytes(bf16) == expected + 16 * 32 * 20 * (4 + 2) * 4 // 3 + kernels


def test_paper_1024p_estimate_is_above_what_was_measured():
    # BENCHMARKS.md (AMD EPYC): the plain 1024p graph's bench peak RSS minus the RSS before the
    # model minus the weights was 2.03e9 bytes in bf16 (kernels stored in bf16) and 4.33e9 in
    # fp32; the estimate must not be below that, nor far above.
    assert 2.03e9 < memory.plain_pass_bytes(CRN.from_preset("1024p", dtype="bfloat16")) < 4.6e9
    assert 4.33e9 < memory.plain_pass_bytes(CRN.from_preset("1024p")) < 8.0e9


def test_choice_on_off_auto(monkeypatch):
    model = CRN(output_size=(16, 32), widths=(6, 5, 3))
    need = memory.plain_pass_bytes(model)
    assert memory.choose_low_memory(True, model) == (True, "low_memory=True")
    assert memory.choose_low_memory("off", model) == (False, "--low-memory off")
    assert memory.choose_low_memory("on", model)[0] is True
    monkeypatch.setattr(memory, "available_bytes", lambda: (need, "test"))
    banded, reason = memory.choose_low_memory("auto", model)
    assert banded is False and reason.endswith("(test): fits")
    monkeypatch.setattr(memory, "available_bytes", lambda: (need - 1, "test"))
    banded, reason = memory.choose_low_memory("auto", model)
    assert banded is True and reason.endswith("(test): does not fit")
    monkeypatch.setattr(memory, "available_bytes", lambda: (None, "unknown here"))
    assert memory.choose_low_memory("auto", model)[0] is False
    with pytest.raises(ValueError, match="low_memory must be one of"):
        memory.choose_low_memory("sometimes", model)


def test_host_available_memory_takes_a_cgroup_limit(monkeypatch):
    real = machine.host_available_bytes()
    assert real is None or real > 0
    # MemAvailable pinned, so that other processes' memory cannot move it between the calls.
    meminfo = {"available": 5 * 2**30}
    monkeypatch.setattr(machine, "_meminfo_available", lambda: meminfo["available"])
    values = {"/sys/fs/cgroup/memory.max": 3 * 2**30, "/sys/fs/cgroup/memory.current": 2**30}
    monkeypatch.setattr(machine, "_read_int", lambda path: values.get(path))
    assert machine.host_available_bytes() == 2 * 2**30  # the limit minus the usage, under MemAvailable
    meminfo["available"] = 2**30
    assert machine.host_available_bytes() == 2**30  # MemAvailable, under the cgroup's room
    meminfo["available"] = None
    assert machine.host_available_bytes() == 2 * 2**30  # no /proc/meminfo: the cgroup alone
    values["/sys/fs/cgroup/memory.max"] = None  # "max": no limit
    meminfo["available"] = 5 * 2**30
    assert machine.host_available_bytes() == 5 * 2**30
    values.clear()
    meminfo["available"] = None
    assert machine.host_available_bytes() is None


def test_low_memory_flag():
    parser = argparse.ArgumentParser()
    memory.add_low_memory_flag(parser, "bands")
    assert parser.parse_args([]).low_memory == "auto"
    assert parser.parse_args(["--low-memory"]).low_memory == "on"
    assert parser.parse_args(["--low-memory", "off"]).low_memory == "off"
    with pytest.raises(SystemExit):
        parser.parse_args(["--low-memory", "yes"])


def test_synthesize_auto_bands_when_the_plain_pass_would_not_fit(monkeypatch, caplog):
    model = CRN(output_size=(32, 64), widths=(8, 8, 8, 6))
    layout = tf.one_hot(np.random.default_rng(0).integers(0, 20, (1, 32, 64)), 20)
    plain = model(layout).numpy()
    monkeypatch.setattr(memory, "available_bytes", lambda: (1024, "test"))
    with caplog.at_level(logging.DEBUG, logger="crn_tf.nn.inference"):
        banded = inference.synthesize(model, layout, low_memory="auto", band_bytes=2048).numpy()
    assert "banded low-memory pass (auto: the plain pass needs about" in caplog.text
    np.testing.assert_allclose(banded, plain, rtol=0, atol=1e-3)
