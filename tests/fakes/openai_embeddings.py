"""A local fake of OpenAI's ``POST /v1/embeddings`` on 127.0.0.1: deterministic unit vectors per input."""

from __future__ import annotations

import hashlib
import json
import math
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

DIMENSIONS = 1536


def fake_vector(text: str) -> list[float]:
    """The vector the fake returns for ``text`` (stable, unit length)."""
    seed = hashlib.sha256(text.encode()).digest()
    raw = [((seed[i % 32] ^ (i * 37)) % 251) - 125.0 for i in range(DIMENSIONS)]
    norm = math.sqrt(sum(x * x for x in raw))
    return [x / norm for x in raw]


class FakeOpenAI:
    """State: requests seen and responses to inject first (status, headers)."""

    def __init__(self) -> None:
        self.url = ""
        self.requests: list[dict[str, Any]] = []
        self.queued: list[tuple[int, dict[str, str]]] = []
        self.lock = threading.Lock()


@contextmanager
def serve_openai(api_key: str = "sk-test") -> Iterator[FakeOpenAI]:
    """Run the fake; its base URL (``…/v1``) is ``fake.url``."""
    fake = FakeOpenAI()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
            with fake.lock:
                fake.requests.append({"path": self.path, "body": body, "auth": self.headers.get("Authorization")})
                injected = fake.queued.pop(0) if fake.queued else None
            if injected:
                return self._send(injected[0], {"error": {"message": "slow down"}}, injected[1])
            if self.headers.get("Authorization") != f"Bearer {api_key}":
                return self._send(401, {"error": {"message": "Incorrect API key provided"}})
            if self.path != "/v1/embeddings" or body.get("model") != "text-embedding-3-small":
                return self._send(404, {"error": {"message": "unknown model or path"}})
            data = [
                {"object": "embedding", "index": i, "embedding": fake_vector(t)} for i, t in enumerate(body["input"])
            ]
            data.reverse()  # the API does not promise order; clients must sort by index
            return self._send(
                200,
                {
                    "object": "list",
                    "data": data,
                    "model": body["model"],
                    "usage": {"prompt_tokens": 1, "total_tokens": 1},
                },
            )

        def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    fake.url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
