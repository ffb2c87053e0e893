"""Atomic file writes: a temporary file beside the target, then one rename, so a killed run
leaves the old file or the new one, never half of one. A write that fails (a full disk, no
permission, an I/O error) raises `WriteError`, one line naming the path and the cause."""
from __future__ import annotations

import contextlib
import errno as errno_codes
import os
import shutil
from typing import Iterator

WRITE_FAILED_EXIT = 4
"""The exit status of every crn_tf command whose output could not be written (disk full, ...)."""

_KNOWN_CAUSES = (errno_codes.ENOSPC, errno_codes.EDQUOT, errno_codes.EFBIG, errno_codes.EROFS, errno_codes.EACCES,
                 errno_codes.EPERM, errno_codes.EIO, errno_codes.ENOENT)


class WriteError(OSError):
    """Writing `path` failed; `str()` is one line: the path, the step (when known) and the cause.

    An OSError, so code that handles OSError still does; the commands exit WRITE_FAILED_EXIT on it.
    `step` and `advice` (what is kept, how to go on) are filled in by whoever knows them.
    """

    def __init__(self, path: str | os.PathLike, cause: str, step: int | None = None, advice: str | None = None,
                 errno: int | None = None):
        super().__init__(errno, cause)
        self.path = os.fspath(path)
        self.cause = cause
        self.step = step
        self.advice = advice

    def __str__(self) -> str:
        where = f" at step {self.step}" if self.step is not None else ""
        advice = f"; {self.advice}" if self.advice else ""
        return f"cannot write {self.path}{where}: {self.cause}{advice}"


def describe_cause(error: BaseException) -> str:
    """The cause of a failed write in words: "no space left on device", "permission denied", ...

    Reads the errno of an OSError, else looks for a known strerror text in the message (as
    TensorFlow's and h5py's errors carry it), else the message's first 200 characters.
    """
    number = getattr(error, "errno", None)
    if isinstance(number, int) and number > 0:
        return os.strerror(number).lower()
    text = " ".join(str(getattr(error, "message", "") or error).split())
    for known in _KNOWN_CAUSES:
        if os.strerror(known).lower() in text.lower():
            return os.strerror(known).lower()
    return text[:200] or type(error).__name__


def as_write_error(path: str | os.PathLike, error: BaseException, step: int | None = None) -> WriteError:
    """`error` (an OSError, a TensorFlow or h5py error) as a WriteError naming `path`."""
    if isinstance(error, WriteError):
        if error.step is None:
            error.step = step
        return error
    number = getattr(error, "errno", None)
    return WriteError(path, describe_cause(error), step, errno=number if isinstance(number, int) else None)


def check_free_space(path: str | os.PathLike, needed: int, what: str, step: int | None = None) -> None:
    """Raises WriteError before a write of about `needed` bytes (the size of the last one) that cannot fit.

    Cheap (one statvfs); a folder that does not exist yet is measured at its nearest existing parent.
    """
    folder = os.path.abspath(os.fspath(path))
    while not os.path.exists(folder) and os.path.dirname(folder) != folder:
        folder = os.path.dirname(folder)
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return
    if needed > free:
        raise WriteError(path, f"no space left on device ({format_bytes(free)} free, {what} took "
                               f"{format_bytes(needed)})", step, errno=errno_codes.ENOSPC)


def format_bytes(count: int) -> str:
    """1536 -> '1.5 KB' (powers of 1024)."""
    value = float(count)
    for unit in ("bytes", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{int(value)} bytes" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TB"


def tree_size(path: str | os.PathLike) -> int:
    """Bytes in the files at `path` (a file, or a folder and everything under it); 0 if missing."""
    path = os.fspath(path)
    if os.path.isfile(path):
        return os.path.getsize(path)
    total = 0
    for folder, _, names in os.walk(path):
        for name in names:
            with contextlib.suppress(OSError):
                total += os.path.getsize(os.path.join(folder, name))
    return total


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[str]:
    """Yields a temporary name beside `path` to write to; renamed to `path` when the block ends.

    The temporary name keeps the extension (`a.png` -> `a.tmp-<pid>.png`), so writers that pick
    the format by it (PIL, np.savez) still work. The folder is created; on an error the
    temporary file is removed and `path` is left as it was; an OSError becomes a WriteError.
    """
    path = os.fspath(path)
    base, extension = os.path.splitext(path)
    temporary = f"{base}.tmp-{os.getpid()}{extension}"
    try:
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        yield temporary
        os.replace(temporary, path)
    except BaseException as error:
        with contextlib.suppress(OSError):
            os.remove(temporary)
        if isinstance(error, OSError):
            raise as_write_error(path, error) from error
        raise


def write_atomic(path: str | os.PathLike, data: str | bytes) -> str:
    """Writes text (UTF-8) or bytes to `path` atomically; returns the path."""
    with atomic_path(path) as temporary:
        if isinstance(data, bytes):
            with open(temporary, "wb") as f:
                f.write(data)
        else:
            with open(temporary, "w", encoding="utf-8") as f:
                f.write(data)
    return os.fspath(path)


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike) -> Iterator[str]:
    """Yields a new, empty staging folder beside `path`; when the block ends it replaces `path`.

    The old folder (if any) is moved aside by one rename, the staging folder renamed to `path`,
    then the old one deleted, so a killed writer leaves the old folder or the new one. On an
    error the staging folder is removed and `path` is left as it was.
    """
    import shutil
    import tempfile

    path = os.path.abspath(os.fspath(path))
    parent = os.path.dirname(path)
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=os.path.basename(path) + ".tmp-", dir=parent)
    try:
        yield staging
        retired = None
        if os.path.exists(path):
            retired = tempfile.mkdtemp(prefix=os.path.basename(path) + ".old-", dir=parent)
            os.rmdir(retired)
            os.replace(path, retired)
        os.replace(staging, path)
    except BaseException as error:
        shutil.rmtree(staging, ignore_errors=True)
        if isinstance(error, OSError):
            raise as_write_error(path, error) from error
        raise
    if retired:
        shutil.rmtree(retired, ignore_errors=True)


def is_temporary_name(name: str) -> bool:
    """True for the names `atomic_path` writes to before its rename (`a.tmp-123.png`)."""
    stem = os.path.splitext(name)[0]
    marker = stem.rfind(".tmp-")
    return marker >= 0 and stem[marker + 5:].isdigit()


def remove_temporary_files(folder: str | os.PathLike) -> list[str]:
    """Deletes what killed `atomic_path` writes left directly in `folder`; returns the names.

    Call it only while holding the folder's lock (`crn_tf.core.locks`): a live writer's temporary file
    looks the same.
    """
    folder = os.fspath(folder)
    removed = []
    if os.path.isdir(folder):
        for name in os.listdir(folder):
            if is_temporary_name(name):
                with contextlib.suppress(OSError):
                    os.remove(os.path.join(folder, name))
                    removed.append(name)
    return removed
