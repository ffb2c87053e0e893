"""Atomic file writes: a temporary file beside the target, then one rename, so a killed run
leaves the old file or the new one, never half of one."""
from __future__ import annotations

import contextlib
import os
from typing import Iterator


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[str]:
    """Yields a temporary name beside `path` to write to; renamed to `path` when the block ends.

    The temporary name keeps the extension (`a.png` -> `a.tmp-<pid>.png`), so writers that pick
    the format by it (PIL, np.savez) still work. The folder is created; on an error the
    temporary file is removed and `path` is left as it was.
    """
    path = os.fspath(path)
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    base, extension = os.path.splitext(path)
    temporary = f"{base}.tmp-{os.getpid()}{extension}"
    try:
        yield temporary
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(temporary)
        raise
    os.replace(temporary, path)


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
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if retired:
        shutil.rmtree(retired, ignore_errors=True)
