"""A plain HTTP server on 127.0.0.1 serving fixed images, for the tests of image URLs.

Why it exists: image URLs go through the guarded fetcher, which makes its own connections, so
only a real server shows what it refuses (a loopback address), what an allow-list lets
through, and how often an image was fetched.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

__all__ = ["ImageServer", "serving"]


@dataclass
class ImageServer:
    """The running server: its base URL (`http://127.0.0.1:PORT`) and the GETs per path."""

    url: str = ""
    hits: Counter[str] = field(default_factory=Counter)


@contextmanager
def serving(files: Mapping[str, tuple[bytes, str]]) -> Iterator[ImageServer]:
    """`files` (path -> (body, content type)) served until the block ends; any other path is
    a 404."""
    running = ImageServer()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # the name http.server calls
            running.hits[self.path] += 1
            found = files.get(self.path)
            if found is None:
                self.send_error(404)
                return
            body, content_type = found
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass  # the tests read their own assertions, not an access log

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    running.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield running
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
