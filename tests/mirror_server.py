"""A loopback HTTP server for download tests: serves a folder with Range support and can break transfers.

    python tests/mirror_server.py DIR [--break-first N] [--port 0]   # prints its URL, serves until killed

`break_first=N` answers the first N requests of each file with the full Content-Length but
only half of the bytes asked for, then closes the connection (a transfer broken halfway).
`ranges=False` ignores Range headers (a server without resume support). Every request is
recorded as (path, Range header or None).
"""
from __future__ import annotations

import argparse
import collections
import http.server
import os
import re
import threading
import urllib.parse


class MirrorServer:
    """`with MirrorServer(root) as server:` serves `root` on 127.0.0.1 at `server.url` in a thread."""

    def __init__(self, root: str, break_first: int = 0, ranges: bool = True, port: int = 0,
                 pages: dict[str, tuple[str, bytes]] | None = None):
        self.root = os.path.realpath(root)
        self.break_first = break_first
        self.ranges = ranges
        self.pages = dict(pages or {})  # path -> (content type, body): extra answers, e.g. an HTML page
        self.requests: list[tuple[str, str | None]] = []
        self.served = collections.Counter()
        self._lock = threading.Lock()
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", port), self._handler())
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def __enter__(self) -> "MirrorServer":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(timeout=5)

    def requests_for(self, path: str) -> list[str | None]:
        """The Range headers of the requests for `path` (None for a request without one)."""
        return [header for seen, header in self.requests if seen == path]

    def _handler(self):
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def do_GET(self):
                parsed = urllib.parse.urlsplit(self.path)
                path = urllib.parse.unquote(parsed.path).lstrip("/")
                with server._lock:
                    server.requests.append((path, self.headers.get("Range")))
                    count = server.served[path]
                    server.served[path] += 1
                if path in server.pages:
                    content_type, body = server.pages[path]
                    return self._send(200, body, {"Content-Type": content_type})
                file = os.path.join(server.root, path)
                if not os.path.isfile(file) or not os.path.realpath(file).startswith(server.root):
                    return self._send(404, b"not found\n", {"Content-Type": "text/plain"})
                data = open(file, "rb").read()
                start, status, headers = 0, 200, {"Content-Type": "application/octet-stream"}
                match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
                if match and server.ranges:
                    start = int(match.group(1))
                    if start >= len(data):
                        return self._send(416, b"", {"Content-Range": f"bytes */{len(data)}"})
                    status = 206
                    headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
                body = data[start:]
                if count < server.break_first:
                    return self._send(status, body, headers, cut=len(body) // 2)
                return self._send(status, body, headers)

            def _send(self, status: int, body: bytes, headers: dict[str, str], cut: int | None = None):
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                if cut is not None:
                    self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(body if cut is None else body[:cut])
                self.wfile.flush()
                if cut is not None:
                    self.close_connection = True

        return Handler


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("root", help="folder to serve (laid out like the mirror: result_256p/model.ckpt.index, ...)")
    parser.add_argument("--break-first", type=int, default=0, help="break the first N transfers of each file halfway")
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: any free one)")
    args = parser.parse_args()
    with MirrorServer(args.root, break_first=args.break_first, port=args.port) as server:
        print(server.url, flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
