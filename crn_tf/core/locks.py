"""One process per output directory: a lock file holding the owner's host and pid.

`train.py` (its chief worker), `python -m crn_tf.data.prepare` and `crn_tf.evaluate` hold
`DIR/crn_tf.lock` while they write DIR. It is created with O_CREAT | O_EXCL, so of two processes
starting together exactly one gets it; the other is refused at once with a message naming the
holder. A lock whose process is gone (killed, the machine rebooted) is taken over with a
warning when the holder ran on this host; on another host nobody can tell, so the message says
which file to delete.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import socket
import sys
import time
import uuid
from typing import Callable

from crn_tf.core.files import as_write_error

LOCK_NAME = "crn_tf.lock"
LOCKED_EXIT = 5
"""The exit status of a crn_tf command refused because another process holds its directory."""

logger = logging.getLogger(__name__)
_held: dict[str, list] = {}  # lock file (real path) -> [its Holder, how many DirectoryLocks of this process hold it]


class LockError(RuntimeError):
    """Another live process holds the directory; the message names it and what to do."""


@dataclasses.dataclass(frozen=True)
class Holder:
    """Who holds a lock: what the lock file says."""

    host: str
    pid: int
    started: str  # wall-clock time the lock was taken
    command: str
    token: str  # tells this process's lock from an older one of a reused pid
    process_start: int | None = None  # the kernel's start time of the pid (Linux), to detect pid reuse

    def describe(self) -> str:
        return f"pid {self.pid} on {self.host} since {self.started} ({self.command})"


def _process_start(pid: int) -> int | None:
    """The start time (clock ticks after boot) of process `pid`, or None where /proc has no such field."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[19])
    except (OSError, IndexError, ValueError):
        return None


def _process_state(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return None


def is_alive(holder: Holder) -> bool:
    """Whether the holder's process still runs (only answerable on its own host: else True)."""
    if holder.host != socket.gethostname():
        return True
    try:
        os.kill(holder.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's process: it exists
    if _process_state(holder.pid) == "Z":  # killed, not yet reaped by its parent
        return False
    start = _process_start(holder.pid)
    return holder.process_start is None or start is None or start == holder.process_start


def read_holder(path: str | os.PathLike) -> Holder | None:
    """The holder a lock file names; None when it is gone or does not parse (being written, or damaged)."""
    try:
        with open(path) as f:
            data = json.load(f)
        return Holder(host=str(data["host"]), pid=int(data["pid"]), started=str(data.get("started", "?")),
                      command=str(data.get("command", "?")), token=str(data.get("token", "")),
                      process_start=data.get("process_start"))
    except (OSError, ValueError, KeyError, TypeError):
        return None


class DirectoryLock:
    """The lock of one directory; `with DirectoryLock(dir):` holds it for the block.

    A process that holds a directory's lock may take it again (nested: `train.py` takes it before
    TensorFlow starts, `train()` inside); it goes when the outermost holder releases it.

    Args:
        directory: the directory (made if missing; removed again on release if this lock made
            it and nothing was written into it).
        enabled: False makes every method a no-op (non-chief workers of a multi-worker run).
        warn: called with the one-line warning when a stale lock is taken over (default: logging).
    """

    STALE_UNREADABLE_SECONDS = 10.0
    """A lock file that still does not parse after this long was left by a process killed while writing it."""

    def __init__(self, directory: str | os.PathLike, enabled: bool = True,
                 warn: Callable[[str], None] | None = None):
        self.directory = os.fspath(directory)
        self.path = os.path.join(self.directory, LOCK_NAME)
        self.enabled = enabled
        self.warn = warn or logger.warning
        self.holder: Holder | None = None
        self._created_directory = False

    def acquire(self) -> "DirectoryLock":
        """Takes the lock or raises LockError naming the live holder (WriteError if it cannot be written)."""
        if not self.enabled or self.holder is not None:
            return self
        held = _held.get(os.path.realpath(self.path))
        if held is not None and (read_holder(self.path) or held[0]).token == held[0].token:
            held[1] += 1
            self.holder = held[0]
            return self
        try:
            if not os.path.isdir(self.directory):
                os.makedirs(self.directory)
                self._created_directory = True
        except FileExistsError:
            pass
        except OSError as error:
            raise as_write_error(self.directory, error) from error
        me = Holder(host=socket.gethostname(), pid=os.getpid(), started=time.strftime("%Y-%m-%d %H:%M:%S"),
                    command=" ".join([os.path.basename(sys.argv[0] or "python")] + sys.argv[1:])[:300],
                    token=uuid.uuid4().hex, process_start=_process_start(os.getpid()))
        for _ in range(5):
            if self._create(me):
                self.holder = me
                _held[os.path.realpath(self.path)] = [me, 1]
                return self
            holder = self._wait_for_holder()
            if holder is None:
                if os.path.exists(self.path):
                    self._take_over(None)
                continue  # gone meanwhile: try again
            if is_alive(holder):
                raise LockError(self._refusal(holder))
            self._take_over(holder)
        raise LockError(f"{self.directory}: could not take its lock {self.path} (other processes keep taking it)")

    def _create(self, me: Holder) -> bool:
        """Creates the lock file atomically with our content; False if it exists."""
        try:
            descriptor = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        except OSError as error:
            raise as_write_error(self.path, error) from error
        try:
            with os.fdopen(descriptor, "w") as f:
                json.dump(dataclasses.asdict(me), f)
                f.write("\n")
        except OSError as error:
            with contextlib.suppress(OSError):
                os.remove(self.path)
            raise as_write_error(self.path, error) from error
        return True

    def _wait_for_holder(self) -> Holder | None:
        """The holder, waiting briefly while its creator is still writing it; None if it stays unreadable
        for STALE_UNREADABLE_SECONDS (by its age) or is gone."""
        while True:
            holder = read_holder(self.path)
            if holder is not None:
                return holder
            try:
                age = time.time() - os.path.getmtime(self.path)
            except OSError:
                return None  # released meanwhile
            if age > self.STALE_UNREADABLE_SECONDS:
                return None
            time.sleep(0.05)

    def _take_over(self, stale: Holder | None) -> None:
        """Removes a stale lock, unless another process took it over first (then its new lock stays)."""
        aside = f"{self.path}.stale-{os.getpid()}"
        try:
            os.rename(self.path, aside)
        except FileNotFoundError:
            return
        moved = read_holder(aside)
        if stale is not None and (moved is None or moved.token != stale.token):
            # Someone replaced the stale lock between our read and our rename: put theirs back.
            with contextlib.suppress(OSError):
                os.link(aside, self.path)
            with contextlib.suppress(OSError):
                os.remove(aside)
            return
        with contextlib.suppress(OSError):
            os.remove(aside)
        what = f"{stale.describe()}, which is no longer running" if stale else "an unreadable lock file"
        self.warn(f"warning: {self.directory} was locked by {what}; taking the lock over ({self.path})")

    def _refusal(self, holder: Holder) -> str:
        here = holder.host == socket.gethostname()
        hint = ("wait for it to finish, stop it, or use another directory" if here else
                f"if that process is gone, delete {self.path}; otherwise wait for it or use another directory")
        return f"{self.directory} is in use by another process: {holder.describe()}; {hint}"

    def release(self) -> None:
        """Removes the lock file if it is still ours (and the directory if we made it and it stayed empty)."""
        if self.holder is None:
            return
        held = _held.get(os.path.realpath(self.path))
        if held is not None and held[0].token == self.holder.token:
            held[1] -= 1
            if held[1] > 0:  # an outer holder in this process keeps it
                self.holder = None
                return
            del _held[os.path.realpath(self.path)]
        current = read_holder(self.path)
        if current is not None and current.token == self.holder.token:
            with contextlib.suppress(OSError):
                os.remove(self.path)
        self.holder = None
        if self._created_directory:
            with contextlib.suppress(OSError):
                os.rmdir(self.directory)  # fails (and is kept) unless empty

    def __enter__(self) -> "DirectoryLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
