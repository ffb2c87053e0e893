"""How the command-line tools show the library's log: each CLI's `main` is decorated `@cli_main`.

Library code reports through `logging.getLogger(__name__)` and never prints. A CLI shows those
records on stderr as their bare text, one line (or block) per record, exactly what a `print` to
stderr showed: INFO for what a run tells its user ("resumed from step 8 ..."), WARNING for what
goes wrong but not fatally. Without a CLI (a notebook, a test), INFO stays silent unless the
application configures logging, and warnings still reach stderr through Python's last-resort
handler, as bare text too.
"""
from __future__ import annotations

import contextlib
import functools
import logging
import sys
from typing import Callable, Iterator, TypeVar

LIBRARY_LOGGER = "crn_tf"

Main = TypeVar("Main", bound=Callable[..., int])


class StderrHandler(logging.StreamHandler):
    """A StreamHandler to whatever `sys.stderr` is when a record comes (quiet_start and pytest swap it)."""

    def __init__(self, level: int = logging.NOTSET):
        logging.Handler.__init__(self, level)

    @property
    def stream(self):
        return sys.stderr


@contextlib.contextmanager
def cli_logging(level: int = logging.INFO) -> Iterator[logging.Handler]:
    """While the block runs, `crn_tf.*` records at `level` and above go to stderr as their message alone.

    They go there only: not on to the root logger, which TensorFlow's absl logging gives a
    handler of its own (`logging.basicConfig()`) the first time it logs, mid-run, and which would
    show each record a second time as `INFO:crn_tf...:`. Other libraries' loggers are left alone;
    the handler, the level and the propagation are taken back afterwards, so a CLI's `main` can
    run several times in one process (the tests do).
    """
    logger = logging.getLogger(LIBRARY_LOGGER)
    handler = StderrHandler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    previous = logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous[0])
        logger.propagate = previous[1]


def cli_main(main: Main) -> Main:
    """Decorates a CLI's `main(argv)`: while it runs, the library's records show on stderr (`cli_logging`)."""

    @functools.wraps(main)
    def run(*args, **kwargs):
        with cli_logging():
            return main(*args, **kwargs)

    return run  # type: ignore[return-value]


def cli_error(prog: str | None, error: object, code: int = 2) -> int:
    """Shows a CLI's fatal error as one line on stderr, `PROG: error: MESSAGE`, and returns `code` to exit with.

    The one home of that line: every CLI's `main` ends a failure with `return cli_error(...)`.
    `prog` None gives the bare `error: MESSAGE` of the tools that never named themselves.
    """
    message = str(error).strip()
    print(f"{prog}: error: {message}" if prog else f"error: {message}", file=sys.stderr, flush=True)
    return code
