"""crn_tf.core.sizes: the one HEIGHTxWIDTH parser, and the CLIs that use it."""
import argparse

import pytest

from crn_tf.core.sizes import parse_size, size_type
from crn_tf.nn import model


def test_parse_size_forms():
    assert parse_size("256x512") == (256, 512)
    assert parse_size("64X128") == parse_size(" 64 * 128 ") == (64, 128)
    assert parse_size((32, 64.0)) == (32, 64)
    assert model.parse_size is parse_size  # one function, also reachable as crn_tf.nn.model.parse_size


@pytest.mark.parametrize("size, minimum, message", [
    ("256", 1, "size must look like HEIGHTxWIDTH, e.g. 256x512 (or be (height, width)); got '256'"),
    ("64by128", 1, "HEIGHTxWIDTH"),
    ("-4x8", 1, "HEIGHTxWIDTH"),
    ("1x2x3", 1, "HEIGHTxWIDTH"),
    ("0x8", 1, "size must be at least 1x1, got 0x8"),
    ("4x16", 8, "size must be at least 8x8, got 4x16"),
    ((4,), 1, "size must be (height, width) or 'HEIGHTxWIDTH', got (4,)"),
    (None, 1, "size must be (height, width)"),
])
def test_parse_size_errors(size, minimum, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_size(size, minimum)


def test_size_type_is_an_argparse_type():
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=size_type(8))
    assert parser.parse_args(["--size", "8x16"]).size == (8, 16)
    with pytest.raises(argparse.ArgumentTypeError, match="at least 8x8, got 4x4"):
        size_type(8)("4x4")


@pytest.mark.parametrize("module, argv", [
    ("crn_tf.synthetic.writer", ["out", "--size", "4x4"]),
    ("crn_tf.data.synthetic", ["out", "--size", "4x4"]),  # the old module name
    ("crn_tf.data.prepare", ["--cityscapes", "x", "--out", "y", "--size", "0x512"]),
    ("crn_tf.evaluate.__main__", ["data", "--segmenter-size", "256"]),
])
def test_clis_report_bad_sizes_in_one_usage_line(module, argv, capsys):
    import importlib

    with pytest.raises(SystemExit) as exit_info:
        importlib.import_module(module).main(argv)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "Traceback" not in err
    assert "argument --size" in err or "argument --segmenter-size" in err
    assert "size must" in err.strip().splitlines()[-1]
