"""A quiet start for every crn_tf command: no TensorFlow start-up lines on a CPU machine.

TensorFlow 2.21 writes these to stderr as it loads on a machine without a GPU, before any
line of the command's own (the oneDNN and CUDA pair twice, once per shared library):

    WARNING: All log messages before absl::InitializeLog() is called are written to STDERR
    I0000 ... port.cc:153] oneDNN custom operations are on. You may see slightly different ...
    I0000 ... cudart_stub.cc:31] Could not find cuda drivers on your machine, GPU will not be used.
    E0000 ... cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error: ... (303)

TF_CPP_MIN_LOG_LEVEL does not reach the first three (they are logged before absl's logging is
set up: every level from 0 to 3 still prints them), and only level 3 hides the cuInit line,
which would also hide every real error. So `quiet_start` sets TF_CPP_MIN_LOG_LEVEL=1 (INFO off;
warnings and errors still show) and sends the process's file descriptor 2, where TensorFlow's
C++ code writes, through a small filter process that drops exactly the lines in
`STARTUP_NOISE` (the cuInit failure only after the "no CUDA drivers" line, i.e. on a machine
without a GPU) and passes every other byte on. Python's own `sys.stderr` is pointed at the
real stderr, so progress bars still see a terminal. A separate process rather than a thread:
lines that TensorFlow writes just before a crash (a failed CHECK, then abort) still get out.

`--verbose` on any crn_tf command line (taken off before the command parses it) or
CRN_TF_VERBOSE=1 leaves TensorFlow's output exactly as TensorFlow writes it.
"""
from __future__ import annotations

import argparse
import os
import re
import sys
from typing import Callable, Sequence

VERBOSE_FLAG = "--verbose"
VERBOSE_ENV = "CRN_TF_VERBOSE"

STARTUP_NOISE = (
    rb"WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR",
    rb"I\d{4} \S+ +\d+ port\.cc:\d+\] oneDNN custom operations are on\. .*",
    rb"I\d{4} \S+ +\d+ cudart_stub\.cc:\d+\] Could not find cuda drivers on your machine, GPU will not be used\.",
)
"""Whole lines (without the newline) that TensorFlow writes while it loads."""

NO_GPU_NOISE = rb"E\d{4} \S+ +\d+ cuda_platform\.cc:\d+\] failed call to cuInit: .*"
"""The cuInit failure: start-up noise once TensorFlow has said there are no CUDA drivers, else a real error."""

NO_CUDA_DRIVERS = 2  # index in STARTUP_NOISE of the line that says the machine has no CUDA driver

_NOISE = [re.compile(pattern + rb"\r?") for pattern in STARTUP_NOISE]
_NO_GPU = re.compile(NO_GPU_NOISE + rb"\r?")
_started = False


class NoiseFilter:
    """Decides line by line what to keep; remembers whether TensorFlow found no CUDA driver."""

    def __init__(self) -> None:
        self.no_cuda_driver = False

    def keep(self, line: bytes) -> bool:
        """False for a start-up line of `STARTUP_NOISE` (`line` without its newline)."""
        for index, pattern in enumerate(_NOISE):
            if pattern.fullmatch(line):
                self.no_cuda_driver |= index == NO_CUDA_DRIVERS
                return False
        return not (self.no_cuda_driver and _NO_GPU.fullmatch(line))

    def filter(self, data: bytes) -> bytes:
        """The complete lines of `data` that are kept (`data` ends at a newline or at the end of input)."""
        lines = data.split(b"\n")
        kept = [line for line in lines[:-1] if self.keep(line)]
        tail = lines[-1]
        text = b"".join(line + b"\n" for line in kept)
        return text + (tail if tail and self.keep(tail) else b"")


def strip_verbose(argv: list[str]) -> tuple[list[str], bool]:
    """(`argv` without `--verbose`, whether it was there); arguments after `--` are left alone."""
    end = argv.index("--") if "--" in argv else len(argv)
    kept = [a for a in argv[:end] if a != VERBOSE_FLAG] + argv[end:]
    return kept, len(kept) != len(argv)


def quiet_start(argv: Sequence[str] | None = None) -> list[str] | None:
    """Call first in a CLI's `main(argv)`; returns `argv` without `--verbose`.

    `argv` None means the command runs as the program (its arguments are `sys.argv`): then
    `--verbose` is taken off `sys.argv` and, unless it or CRN_TF_VERBOSE=1 asks for
    TensorFlow's own output, the start-up noise is filtered as the module docstring says.
    With an explicit list (tests, a notebook calling `main([...])`) the process is left alone.
    """
    global _started
    if argv is not None:
        return strip_verbose(list(argv))[0]
    sys.argv[1:], verbose = strip_verbose(sys.argv[1:])
    if verbose:
        os.environ[VERBOSE_ENV] = "1"  # commands it starts are verbose too
    if _started or os.environ.get(VERBOSE_ENV, "") not in ("", "0"):
        return None
    _started = True
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
    if "tensorflow" not in sys.modules and os.name == "posix":
        _filter_stderr()
    return None


def _filter_stderr() -> None:
    """Points fd 2 at a pipe read by a filter process that writes to the original stderr."""
    import atexit
    import io
    import subprocess

    try:
        sys.stderr.flush()
        read_end, write_end = os.pipe()
        child = subprocess.Popen([sys.executable, "-I", "-S", os.path.abspath(__file__)], stdin=read_end,
                                 stdout=2, close_fds=True, start_new_session=True)  # Ctrl-C does not reach it
        os.close(read_end)
        original = os.dup(2)
        os.dup2(write_end, 2)
        os.close(write_end)
    except OSError:  # no usable stderr (closed, or no way to start a process): stay as we are
        return
    encoding, errors = getattr(sys.stderr, "encoding", None) or "utf-8", getattr(sys.stderr, "errors", None)
    sys.stderr = io.TextIOWrapper(io.FileIO(original, "w", closefd=False), encoding=encoding,
                                  errors=errors or "backslashreplace", line_buffering=True, write_through=True)

    def restore() -> None:
        """At exit: fd 2 back to the real stderr, then let the filter write what it still holds."""
        try:
            sys.stderr.flush()
            os.dup2(original, 2)  # closes this process's end of the pipe
            child.wait(timeout=2)  # a child command that outlives us may keep the pipe open
        except (OSError, subprocess.TimeoutExpired):
            pass

    atexit.register(restore)


def run_filter(source: int = 0, target: int = 1, flush_after: float = 0.2) -> None:
    """The filter process: lines from `source` to `target` without the start-up noise, until end of input.

    A partial line (no newline yet, e.g. a prompt) is passed on after `flush_after` seconds of
    silence; TensorFlow writes each log line with one write, so noise never arrives in pieces.
    """
    import select

    noise = NoiseFilter()
    pending = b""
    while True:
        if pending and not select.select([source], [], [], flush_after)[0]:
            _write_all(target, noise.filter(pending))
            pending = b""
        try:
            chunk = os.read(source, 65536)
        except InterruptedError:
            continue
        if not chunk:
            break
        pending += chunk
        cut = pending.rfind(b"\n") + 1
        if cut:
            _write_all(target, noise.filter(pending[:cut]))
            pending = pending[cut:]
    _write_all(target, noise.filter(pending))


def _write_all(fd: int, data: bytes) -> None:
    while data:
        try:
            data = data[os.write(fd, data):]
        except InterruptedError:
            continue
        except OSError:  # the reader went away: nothing left to write to
            return


if __name__ == "__main__":  # the filter process started by _filter_stderr
    run_filter()


def parse_cli(build_parser: Callable[[], argparse.ArgumentParser], argv: Sequence[str] | None = None) -> argparse.Namespace:
    """A CLI's first line: `quiet_start(argv)`, then its parser's arguments."""
    return build_parser().parse_args(quiet_start(argv))
