"""Resumable downloads against a loopback HTTP server that breaks transfers halfway."""
import os
import socket
import urllib.error

import numpy as np
import pytest
from mirror_server import MirrorServer

from crn_tf.weights import fetch
from crn_tf.weights.fetch import DownloadError, confirmation_url, download_file

SIZE = 300_001  # odd, so "half" is not a round number


@pytest.fixture
def mirror(tmp_path):
    root = tmp_path / "mirror"
    (root / "sub").mkdir(parents=True)
    data = np.random.default_rng(0).integers(0, 256, SIZE, dtype=np.uint8).tobytes()
    (root / "sub" / "file.bin").write_bytes(data)
    return root, data


def no_wait(seconds):
    pass


def test_a_broken_transfer_resumes_with_a_range_request(tmp_path, mirror):
    root, data = mirror
    destination = tmp_path / "cache" / "file.bin"
    waits = []
    with MirrorServer(root, break_first=1) as server:
        download_file(server.url + "sub/file.bin", str(destination), retries=2, backoff=0.5, progress=False,
                      sleep=waits.append)
    assert destination.read_bytes() == data
    assert server.requests_for("sub/file.bin") == [None, f"bytes={SIZE // 2}-"]
    assert waits == [0.5]
    assert not os.path.exists(str(destination) + ".part")


def test_retries_back_off_and_a_second_call_resumes(tmp_path, mirror):
    root, data = mirror
    destination = tmp_path / "file.bin"
    waits = []
    with MirrorServer(root, break_first=3) as server:
        with pytest.raises(DownloadError) as error:
            download_file(server.url + "sub/file.bin", str(destination), retries=2, backoff=1.0, progress=False,
                          sleep=waits.append)
        assert waits == [1.0, 2.0]  # doubling back-off between the three attempts
        message = str(error.value)
        assert "gave up after 3 attempts" in message and "the next run resumes there" in message
        assert "\n" not in message
        kept = 0
        for _ in range(3):  # each broken answer carries half of what was asked for
            kept += (SIZE - kept) // 2
        assert os.path.getsize(str(destination) + ".part") == kept
        assert server.requests_for("sub/file.bin") == [None, f"bytes={SIZE // 2}-", f"bytes={SIZE // 2 + (SIZE - SIZE // 2) // 2}-"]
        assert not destination.exists()  # nothing half-written at the destination
        download_file(server.url + "sub/file.bin", str(destination), retries=0, progress=False)  # a new call
        assert server.requests_for("sub/file.bin")[-1] == f"bytes={kept}-"
    assert destination.read_bytes() == data


def test_a_complete_file_is_not_fetched_again(tmp_path, mirror):
    root, data = mirror
    destination = tmp_path / "file.bin"
    with MirrorServer(root) as server:
        download_file(server.url + "sub/file.bin", str(destination), progress=False)
        download_file(server.url + "sub/file.bin", str(destination), progress=False)
        assert len(server.requests) == 1
    assert destination.read_bytes() == data


def test_a_server_without_range_support_restarts_the_file(tmp_path, mirror):
    root, data = mirror
    destination = tmp_path / "file.bin"
    with MirrorServer(root, break_first=1, ranges=False) as server:
        download_file(server.url + "sub/file.bin", str(destination), retries=1, progress=False, sleep=no_wait)
    assert destination.read_bytes() == data  # the 200 answer replaced the half, not appended to it


def test_a_whole_part_file_is_finished_by_the_416_answer(tmp_path, mirror):
    root, data = mirror
    destination = tmp_path / "file.bin"
    (tmp_path / "file.bin.part").write_bytes(data)  # killed between the last byte and the rename
    with MirrorServer(root) as server:
        download_file(server.url + "sub/file.bin", str(destination), progress=False)
        assert server.requests_for("sub/file.bin") == [f"bytes={SIZE}-"]
    assert destination.read_bytes() == data


def test_the_size_is_checked(tmp_path, mirror):
    root, data = mirror
    with MirrorServer(root) as server:
        with pytest.raises(DownloadError, match=f"{SIZE:,} bytes, but {SIZE + 1:,}"):
            download_file(server.url + "sub/file.bin", str(tmp_path / "a.bin"), expected_size=SIZE + 1, progress=False)
        assert not (tmp_path / "a.bin").exists()
    # a transfer that never reaches the announced Content-Length is not taken as the file
    with MirrorServer(root, break_first=10) as server:
        with pytest.raises(DownloadError, match=f"the connection closed after .* of {SIZE:,} bytes"):
            download_file(server.url + "sub/file.bin", str(tmp_path / "b.bin"), retries=1, progress=False, sleep=no_wait)
    assert not (tmp_path / "b.bin").exists()


def test_a_dead_link_fails_at_once_naming_the_url(tmp_path, mirror):
    root, _ = mirror
    with MirrorServer(root) as server:
        url = server.url + "sub/missing.bin"
        with pytest.raises(DownloadError, match=r"missing\.bin: HTTP 404 Not Found \(the file is not there\)"):
            download_file(url, str(tmp_path / "missing.bin"), retries=3, progress=False, sleep=no_wait)
        assert len(server.requests) == 1  # no retries for a file that is not there


def test_offline_and_refused_connections(tmp_path, monkeypatch):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    listener.close()  # nothing listens there now
    waits = []
    with pytest.raises(DownloadError, match="cannot connect .*gave up after 2 attempts"):
        download_file(f"http://127.0.0.1:{port}/x.bin", str(tmp_path / "x.bin"), retries=1, progress=False,
                      sleep=waits.append)
    assert len(waits) == 1

    def no_network(request, timeout):
        raise urllib.error.URLError(socket.gaierror(-2, "Name or service not known"))

    monkeypatch.setattr(fetch.urllib.request, "urlopen", no_network)
    with pytest.raises(DownloadError, match=r"cannot resolve drive\.example \(offline\? Name or service not known\)"):
        download_file("https://drive.example/x.bin", str(tmp_path / "x.bin"), progress=False)


def test_a_second_process_on_the_same_file_is_refused(tmp_path, mirror):
    fcntl = pytest.importorskip("fcntl")
    root, _ = mirror
    part = open(tmp_path / "file.bin.part", "ab")
    fcntl.flock(part.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    try:
        with MirrorServer(root) as server:
            with pytest.raises(DownloadError, match="another process is downloading this file"):
                download_file(server.url + "sub/file.bin", str(tmp_path / "file.bin"), progress=False)
            assert server.requests == []
    finally:
        part.close()


DRIVE_PAGE = """<!DOCTYPE html><html><head><title>Google Drive - Virus scan warning</title></head><body>
<p>Google Drive can't scan this file for viruses.</p>
<form id="download-form" action="{action}" method="get">
<input type="submit" value="Download anyway"/>
<input type="hidden" name="id" value="0B_B_FOgPxgFLLUVQTEg0alRWNDQ">
<input type="hidden" name="export" value="download">
<input type="hidden" name="confirm" value="t">
<input type="hidden" name="uuid" value="5c8f2a4e">
</form></body></html>"""


def test_google_drives_confirmation_page_is_followed(tmp_path, mirror):
    root, data = mirror
    page = DRIVE_PAGE.format(action="/sub/file.bin").encode()
    with MirrorServer(root, pages={"download": ("text/html; charset=utf-8", page)}) as server:
        download_file(server.url + "download?id=0B_B", str(tmp_path / "file.bin"), progress=False)
        assert [path for path, _ in server.requests] == ["download", "sub/file.bin"]
    assert (tmp_path / "file.bin").read_bytes() == data
    assert confirmation_url(DRIVE_PAGE.format(action="https://drive.usercontent.google.com/download"),
                            "https://drive.google.com/uc") == (
        "https://drive.usercontent.google.com/download?id=0B_B_FOgPxgFLLUVQTEg0alRWNDQ&export=download&confirm=t"
        "&uuid=5c8f2a4e")
    assert confirmation_url("<html><body>Quota exceeded</body></html>", "https://x/") is None


def test_a_web_page_instead_of_the_file_is_an_error(tmp_path, mirror):
    root, _ = mirror
    with MirrorServer(root, pages={"quota": ("text/html", b"<html>Too many users have viewed this file</html>")}) as server:
        with pytest.raises(DownloadError, match="sent a web page instead of the file"):
            download_file(server.url + "quota", str(tmp_path / "q.bin"), progress=False)


def test_progress_shows_bytes_rate_and_the_end(tmp_path, mirror, capsys):
    root, _ = mirror
    with MirrorServer(root, break_first=1) as server:
        download_file(server.url + "sub/file.bin", str(tmp_path / "file.bin"), retries=1, sleep=no_wait,
                      label="sub/file.bin")
    lines = capsys.readouterr().err.strip().splitlines()
    kib = -(-SIZE // 1024)
    assert lines[-1].startswith(f"sub/file.bin [{'#' * 24}] {kib}/{kib} KiB")  # the resumed bar ends full
    assert any(f"] {-(-(SIZE // 2) // 1024)}/{kib} KiB" in line for line in lines[:-1])  # the broken one: where it stopped


def test_nothing_received_leaves_no_part_file_and_an_empty_file_downloads(tmp_path, mirror):
    root, _ = mirror
    (root / "empty.bin").write_bytes(b"")
    with MirrorServer(root) as server:
        with pytest.raises(DownloadError, match=r"HTTP 404 Not Found \(the file is not there\)$"):
            download_file(server.url + "missing.bin", str(tmp_path / "missing.bin"), progress=False)
        download_file(server.url + "empty.bin", str(tmp_path / "empty.bin"), progress=False)
    assert sorted(os.listdir(tmp_path)) == ["empty.bin", "mirror"]  # no missing.bin.part
    assert (tmp_path / "empty.bin").read_bytes() == b""
