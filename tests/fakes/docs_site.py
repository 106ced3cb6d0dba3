"""A local documentation website on 127.0.0.1: pages, a sitemap (index + child), robots.txt; requests recorded."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class DocsSite:
    """What the site serves (path -> (content type, body)) and the paths requested, in order."""

    def __init__(self) -> None:
        self.url = ""
        self.pages: dict[str, tuple[str, str]] = {}
        self.requests: list[str] = []


@contextmanager
def serve_site(site: DocsSite) -> Iterator[DocsSite]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            site.requests.append(self.path)
            found = site.pages.get(self.path)
            body = (found[1] if found else "not found").encode()
            self.send_response(200 if found else 404)
            self.send_header("Content-Type", found[0] if found else "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    site.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield site
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
