"""Resumable HTTP downloads of single large files (the published weights), standard library only.

The bytes go to `<file>.part`; a broken transfer is continued with an HTTP Range request
(a few retries with back-off inside one call, and the next call continues the same `.part`),
the size is checked against what the server announced (Content-Length / Content-Range, and a
known size when the caller has one), and only then is the file renamed into place: a file at
the destination is always complete. One process at a time works on a `.part` (a lock).
"""
from __future__ import annotations

import contextlib
import html.parser
import http.client
import logging
import os
import re
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Callable, Iterator

from crn_tf.core.progress import Progress

log = logging.getLogger(__name__)

CHUNK = 1 << 20
USER_AGENT = "crn_tf-download/1 (+https://github.com/CQFIO/PhotographicImageSynthesis weights)"
GONE = {401, 403, 404, 410}  # the file is not there: retrying will not help


class DownloadError(OSError):
    """A file could not be fetched or is not what was expected; the message is one line."""


class _Retry(Exception):
    """A transfer broke off in a way that a new request (resuming) may fix."""


def download_file(url: str, destination: str, *, expected_size: int | None = None, retries: int = 3,
                  backoff: float = 1.0, timeout: float = 60.0, progress: bool = True, label: str | None = None,
                  sleep: Callable[[float], None] | None = None) -> str:
    """Fetches `url` into `destination` (resuming `destination.part`); returns `destination`.

    A complete `destination` is not fetched again. Broken transfers are retried `retries`
    times, waiting `backoff`, 2 * `backoff`, ... seconds; then DownloadError, with the `.part`
    kept for the next call. Raises DownloadError at once for a missing file (HTTP 401/403/404/410),
    a name that does not resolve (offline), or a size that differs from `expected_size`.
    """
    if os.path.isfile(destination):
        _check_size(destination, os.path.getsize(destination), expected_size, "")
        return destination
    os.makedirs(os.path.dirname(os.path.abspath(destination)), exist_ok=True)
    part = destination + ".part"
    with _locked(part) as handle:
        for attempt in range(retries + 1):
            try:
                total = _transfer(url, handle, expected_size, timeout, progress, label or os.path.basename(destination))
                break
            except _Retry as problem:
                if attempt == retries:
                    kept = (f"; {handle.tell():,} bytes kept in {part}, the next run resumes there" if handle.tell()
                            else "")
                    raise DownloadError(f"{url}: {problem} (gave up after {retries + 1} "
                                        f"attempt{'s' if retries else ''}{kept})") from None
                wait = backoff * 2**attempt
                log.warning("%s: %s; retrying in %.3g s from byte %d", url, problem, wait, handle.tell())
                (sleep or time.sleep)(wait)
        handle.flush()
        os.fsync(handle.fileno())
        _check_size(part, handle.tell(), total, "the server announced ")
        _check_size(part, handle.tell(), expected_size, "")
    os.replace(part, destination)
    return destination


def _transfer(url: str, handle, expected_size: int | None, timeout: float, progress: bool, label: str) -> int | None:
    """One request: appends the rest of the file to `handle`; returns the file's total size (None: unknown)."""
    start = handle.seek(0, os.SEEK_END)
    response = _open(url, start, timeout)
    with response:
        total, resumed = _announced_size(response, start)
        if start and not resumed:
            handle.truncate(0)  # the server sent the whole file (no Range support): start again
            start = handle.seek(0)
        if total is None:
            total = expected_size
        if total is not None and start == total:
            return total
        bar = _ByteProgress(total, start, label, progress)
        try:
            for chunk in _chunks(response):
                handle.write(chunk)
                bar.update(handle.tell())
        finally:
            bar.close()  # a broken transfer leaves its last state on a line of its own
    if total is not None and handle.tell() < total:
        raise _Retry(f"the connection closed after {handle.tell():,} of {total:,} bytes")
    return total


def _open(url: str, start: int, timeout: float):
    """The response to a GET of `url` from byte `start`; a Google Drive confirmation page is followed once."""
    for _ in range(2):
        headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
        if start:
            headers["Range"] = f"bytes={start}-"
        try:
            response = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
        except urllib.error.HTTPError as error:
            if error.code == 416 and start:  # nothing after `start`: the .part may already be whole
                return _RangeNotSatisfiable(error)
            if error.code in GONE:
                raise DownloadError(f"{url}: HTTP {error.code} {error.reason} (the file is not there)") from None
            raise _Retry(f"HTTP {error.code} {error.reason}") from None
        except urllib.error.URLError as error:
            if isinstance(error.reason, socket.gaierror):
                raise DownloadError(f"{url}: cannot resolve {urllib.parse.urlsplit(url).hostname} "
                                    f"(offline? {error.reason.strerror})") from None
            raise _Retry(f"cannot connect ({error.reason})") from None
        except (OSError, http.client.HTTPException) as error:
            raise _Retry(f"cannot connect ({error})") from None
        if not response.headers.get_content_type().startswith("text/html"):
            return response
        page = response.read(1 << 20).decode("utf-8", "replace")
        response.close()
        confirmed = confirmation_url(page, response.geturl())
        if confirmed is None:
            raise DownloadError(f"{url}: the server sent a web page instead of the file "
                                f"(a removed file, or a download quota: try again later or use a mirror)")
        url = confirmed
    raise DownloadError(f"{url}: the server sent a web page instead of the file twice")


class _RangeNotSatisfiable:
    """Stands in for a 416 response: no body; Content-Range tells the file's size."""

    def __init__(self, error: urllib.error.HTTPError):
        self.headers = error.headers
        self.status = 416

    def read(self, size: int = -1) -> bytes:
        return b""

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        return None


def _announced_size(response, start: int) -> tuple[int | None, bool]:
    """(the whole file's size if the server says it, whether the body continues at `start`)."""
    status = getattr(response, "status", 200)
    content_range = response.headers.get("Content-Range", "")
    match = re.fullmatch(r"bytes (?:(\d+)-\d+|\*)/(\d+|\*)", content_range.strip())
    total = int(match.group(2)) if match and match.group(2) != "*" else None
    if status == 416:  # a whole .part resumes at its end; anything else starts again
        return total, total == start
    if status == 206:
        if match is None or match.group(1) is None or int(match.group(1)) != start:
            raise _Retry(f"the server answered the range from byte {start:,} with {content_range!r}")
        return total, True
    length = response.headers.get("Content-Length")
    return (int(length) if length and length.isdigit() else None), False


def _chunks(response) -> Iterator[bytes]:
    """The body in chunks; a broken connection becomes _Retry (after what arrived was handed out)."""
    while True:
        try:
            chunk = response.read(CHUNK)
        except http.client.IncompleteRead as error:
            if error.partial:
                yield error.partial
            raise _Retry("the connection broke off") from None
        except (OSError, http.client.HTTPException) as error:  # reset, timeout
            raise _Retry(f"the connection broke off ({error})") from None
        if not chunk:
            return
        yield chunk


def _check_size(path: str, size: int, expected: int | None, source: str) -> None:
    if expected is not None and size != expected:
        raise DownloadError(f"{path}: {size:,} bytes, but {source}{expected:,}; delete it and download again")


@contextlib.contextmanager
def _locked(part: str):
    """`part` opened for appending, locked against a second download of the same file.

    A `part` still empty when the block fails (nothing arrived) is removed again.
    """
    handle = open(part, "ab+")
    try:
        try:
            import fcntl

            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except ImportError:  # not POSIX: no lock
            pass
        except BlockingIOError:
            raise DownloadError(f"{part}: another process is downloading this file; wait for it to finish") from None
        try:
            yield handle
        except BaseException:
            if handle.seek(0, os.SEEK_END) == 0:
                os.remove(part)
            raise
    finally:
        handle.close()


class _ByteProgress:
    """The project's Progress bar counting MiB (KiB for small files), with rate and ETA."""

    def __init__(self, total: int | None, done: int, label: str, enabled: bool):
        self.unit, self.scale = ("MiB", 1 << 20) if (total or 0) >= 10 << 20 else ("KiB", 1 << 10)
        self.bar = None
        if enabled and total:
            self.bar = Progress(-(-total // self.scale), label, done=-(-done // self.scale), unit=self.unit)
            self.bar.extra = self.unit

    def update(self, done: int) -> None:
        if self.bar is not None:
            self.bar.update_to(-(-done // self.scale))  # a started MiB counts: the last byte shows total/total

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class _FormFinder(html.parser.HTMLParser):
    """The first form of a page: its action and its (hidden) input values."""

    def __init__(self):
        super().__init__()
        self.action: str | None = None
        self.fields: dict[str, str] = {}
        self._in_form = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "form" and self.action is None and attrs.get("action"):
            self.action, self._in_form = attrs["action"], True
        elif tag == "input" and self._in_form and attrs.get("name"):
            self.fields[attrs["name"]] = attrs.get("value") or ""

    def handle_endtag(self, tag):
        if tag == "form":
            self._in_form = False


def confirmation_url(page: str, base_url: str) -> str | None:
    """The download URL behind Google Drive's "can't scan this file for viruses" page, else None.

    Large Drive files answer with a page holding a form (`id`, `export`, `confirm`, `uuid`)
    that a browser submits to get the file; the original's script did the same with a cookie.
    """
    finder = _FormFinder()
    finder.feed(page)
    if finder.action is None or "confirm" not in finder.fields:
        return None
    action = urllib.parse.urljoin(base_url, finder.action)
    return action + ("&" if "?" in action else "?") + urllib.parse.urlencode(finder.fields)
