"""A quiet start: TensorFlow's start-up lines are filtered, everything else (and --verbose) gets through."""
import ast
import os
import pathlib
import subprocess
import sys

import pytest

from crn_tf.core.quiet import NoiseFilter, quiet_start, strip_verbose

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEMO_CHECKPOINT = os.path.join(REPO, "checkpoints", "synthetic_city_64x128")

# What TensorFlow 2.21 writes as it starts on this project's CPU machine (copied from a run).
ABSL = b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"
ONEDNN = (b"I0000 00:00:1796115589.254302    5460 port.cc:153] oneDNN custom operations are on. You may see slightly "
          b"different numerical results due to floating-point round-off errors from different computation orders. "
          b"To turn them off, set the environment variable `TF_ENABLE_ONEDNN_OPTS=0`.")
NO_CUDA = (b"I0000 00:00:1796115589.254553    5460 cudart_stub.cc:31] Could not find cuda drivers on your machine, "
           b"GPU will not be used.")
CUINIT = (b"E0000 00:00:1796115590.995334    5460 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error: "
          b"Failed call to cuInit: UNKNOWN ERROR (303)")
STARTUP = [ABSL, ONEDNN, NO_CUDA, ABSL, ONEDNN, NO_CUDA, CUINIT]
PATTERN_WORDS = ("absl::InitializeLog", "oneDNN custom operations", "Could not find cuda drivers", "failed call to cuInit")


def test_the_start_up_lines_go_and_everything_else_stays():
    real = [b"W0000 00:00:1796115747.702558    6499 tf_tfl_flatbuffer_helpers.cc:364] Ignored output_format.",
            b"E0000 00:00:1796115747.1    6499 cuda_executor.cc:1] out of memory",
            b"Traceback (most recent call last):", b"  oneDNN custom operations are on (quoted in a message)", b""]
    text = b"\n".join(STARTUP[:3] + real[:2] + STARTUP[3:] + real[2:]) + b"\n"
    assert NoiseFilter().filter(text) == b"\n".join(real) + b"\n"


def test_the_cuinit_failure_is_noise_only_on_a_machine_without_cuda_drivers():
    assert NoiseFilter().filter(CUINIT + b"\n") == CUINIT + b"\n"  # a GPU machine whose driver fails: a real error
    noise = NoiseFilter()
    assert noise.filter(NO_CUDA + b"\n" + CUINIT + b"\n") == b""


def test_partial_lines_and_carriage_returns():
    noise = NoiseFilter()
    assert noise.filter(b"progress 1/3\rprogress 2/3") == b"progress 1/3\rprogress 2/3"
    assert noise.filter(ABSL + b"\r\n") == b""


def test_verbose_is_taken_off_the_command_line():
    assert strip_verbose(["--out", "x", "--verbose"]) == (["--out", "x"], True)
    assert strip_verbose(["a", "--", "--verbose"]) == (["a", "--", "--verbose"], False)
    assert quiet_start(["--checkpoint", "c", "--verbose"]) == ["--checkpoint", "c"]  # in-process: nothing else changes


def _run(command, verbose_env=None, cwd=None):
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "CRN_TF_VERBOSE")}
    env["PYTHONPATH"] = REPO + os.pathsep + env.get("PYTHONPATH", "")
    if verbose_env:
        env["CRN_TF_VERBOSE"] = verbose_env
    done = subprocess.run(command, cwd=cwd or REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, timeout=300)
    return done.returncode, done.stdout


@pytest.mark.slow
def test_demo_and_export_print_only_their_own_lines(tmp_path):
    code, output = _run([sys.executable, os.path.join(REPO, "demo.py"), "--out", str(tmp_path / "demo")])
    assert code == 0, output
    lines = output.splitlines()
    assert lines[0].startswith("synthesizing ["), output
    assert lines[-1] == f"open {tmp_path / 'demo' / 'index.html'}"
    assert not any(word in output for word in PATTERN_WORDS), output

    code, output = _run([sys.executable, "-m", "crn_tf.export", "--checkpoint", DEMO_CHECKPOINT,
                         "--out", str(tmp_path / "exported")])
    assert code == 0, output
    assert output.splitlines()[0] == f"exporting {DEMO_CHECKPOINT} (64x128, k = 9) ...", output
    assert not any(word in output for word in PATTERN_WORDS), output


FAKE_CLI = """
import ctypes, os, sys
from crn_tf.core.quiet import quiet_start
quiet_start()
lines = [line for line in sys.argv[1:] if line != "--crash"]
libc = ctypes.CDLL(None)
for line in lines:
    data = (line + "\\n").encode()
    libc.write(2, data, len(data))  # written by C code straight to fd 2, as TensorFlow's logging does
print("python's own line; --verbose still in argv:", "--verbose" in sys.argv, file=sys.stderr)
sys.stderr.flush()
if "--crash" in sys.argv:
    os.abort()  # a crash right after: what was written must still get out
"""
FAKE_LINES = [ABSL.decode(), ONEDNN.decode(), NO_CUDA.decode(), "W0000 a real warning", CUINIT.decode(),
              "F0000 check failed: the last words"]


@pytest.fixture
def fake_cli(tmp_path):
    script = tmp_path / "fake_cli.py"
    script.write_text(FAKE_CLI)
    return [sys.executable, str(script), *FAKE_LINES]


@pytest.mark.skipif(os.name != "posix", reason="the fd-2 filter is POSIX only")
def test_native_lines_pass_the_filter_even_when_the_process_crashes(fake_cli):
    code, output = _run(fake_cli + ["--crash"])
    assert code != 0
    assert sorted(output.splitlines()) == sorted(["W0000 a real warning", "F0000 check failed: the last words",
                                                 "python's own line; --verbose still in argv: False"])


@pytest.mark.skipif(os.name != "posix", reason="the fd-2 filter is POSIX only")
def test_verbose_and_crn_tf_verbose_let_the_start_up_lines_through(fake_cli):
    for command, env in ((fake_cli + ["--verbose"], None), (fake_cli, "1")):
        code, output = _run(command, verbose_env=env)
        assert code == 0
        assert output.splitlines() == FAKE_LINES + ["python's own line; --verbose still in argv: False"]


def _quiet_first(function: ast.FunctionDef) -> bool:
    """Whether a `main`'s first statement (after its docstring) calls quiet_start or parse_cli."""
    body = [node for node in function.body
            if not (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant))]
    calls = [node for node in ast.walk(body[0]) if isinstance(node, ast.Call)] if body else []
    return any(getattr(call.func, "id", getattr(call.func, "attr", None)) in ("quiet_start", "parse_cli")
               for call in calls)


def test_every_command_starts_quietly():
    # README: every crn_tf command drops TensorFlow's start-up lines. A `main(argv)` that parses its
    # arguments without `quiet_start` (directly or through `parse_cli`) lets them through.
    root = pathlib.Path(REPO) / "crn_tf"
    mains = {}
    for path in sorted(root.rglob("*.py")):
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.FunctionDef) and node.name == "main" and node.args.args:
                mains[str(path.relative_to(root))] = _quiet_first(node)
    assert len(mains) >= 12 and "evaluate/segmenter/__main__.py" in mains, sorted(mains)
    assert [path for path, quiet in mains.items() if not quiet] == []
