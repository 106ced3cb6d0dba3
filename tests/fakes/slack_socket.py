"""A Socket Mode WebSocket server on 127.0.0.1 speaking RFC 6455 (enough for websocket-client and slack_sdk).

Slack's side of Socket Mode: on connect it sends ``hello``; it pushes envelopes; it sends ``disconnect``
with a reason; the client acks each envelope with ``{"envelope_id": …}``. This server records every ack
(:attr:`FakeSocketServer.acks`) and can drop connections abruptly. Use it through ``FakeSlack``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import socket
import struct
import threading
import time
from collections.abc import Callable
from typing import Any

_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class WsConnection:
    """One client connection: send text frames, read acks on a reader thread, close or drop."""

    def __init__(self, server: FakeSocketServer, sock: socket.socket, number: int, path: str) -> None:
        self.server = server
        self.sock = sock
        self.number = number
        self.path = path
        self.open = True
        self._send_lock = threading.Lock()
        self.received: list[str] = []
        self._reader = threading.Thread(target=self._read_loop, name=f"fake-ws-{number}", daemon=True)

    def start(self) -> None:
        self._reader.start()

    def send_text(self, text: str) -> None:
        """Send one unmasked text frame."""
        self._send_frame(0x1, text.encode("utf-8"))

    def send_text_bytes(self, data: bytes) -> None:
        """Send a text frame with these exact bytes (invalid UTF-8, for instance)."""
        self._send_frame(0x1, data)

    def send_json(self, value: Any) -> None:
        self.send_text(json.dumps(value))

    def close(self, code: int = 1000) -> None:
        """A clean close handshake (best effort) and socket close."""
        if self.open:
            try:
                self._send_frame(0x8, struct.pack("!H", code))
            except OSError:
                pass
        self.drop()

    def drop(self) -> None:
        """Close the TCP connection abruptly, with a reset (a dropped network link)."""
        self.open = False
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        try:
            self.sock.close()
        except OSError:
            pass

    def _send_frame(self, opcode: int, data: bytes) -> None:
        header = bytes([0x80 | opcode])
        n = len(data)
        if n < 126:
            header += bytes([n])
        elif n < 65536:
            header += bytes([126]) + struct.pack("!H", n)
        else:
            header += bytes([127]) + struct.pack("!Q", n)
        with self._send_lock:
            self.sock.sendall(header + data)

    def _recv_exact(self, n: int) -> bytes:
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("closed")
            buf += chunk
        return buf

    def _read_loop(self) -> None:
        fragments: list[bytes] = []
        try:
            while self.open:
                b1, b2 = self._recv_exact(2)
                opcode = b1 & 0x0F
                length = b2 & 0x7F
                if length == 126:
                    length = struct.unpack("!H", self._recv_exact(2))[0]
                elif length == 127:
                    length = struct.unpack("!Q", self._recv_exact(8))[0]
                mask = self._recv_exact(4) if b2 & 0x80 else b"\0\0\0\0"
                data = bytes(c ^ mask[i % 4] for i, c in enumerate(self._recv_exact(length)))
                if opcode == 0x9:  # ping
                    self._send_frame(0xA, data)
                elif opcode == 0x8:  # close
                    try:
                        self._send_frame(0x8, data[:2])
                    except OSError:
                        pass
                    break
                elif opcode in (0x1, 0x0):
                    fragments.append(data)
                    if b1 & 0x80:
                        text = b"".join(fragments).decode("utf-8")
                        fragments = []
                        self.received.append(text)
                        self.server._on_client_message(self, text)
        except (OSError, ConnectionError, ValueError):
            pass
        finally:
            self.open = False
            try:
                self.sock.close()
            except OSError:
                pass
            self.server._on_closed(self)


class FakeSocketServer:
    """Accepts WebSocket upgrades on 127.0.0.1 and keeps the connections.

    Args:
        on_connect: called with each new :class:`WsConnection` (``FakeSlack`` sends ``hello`` there).
    """

    def __init__(self, on_connect: Callable[[WsConnection], None] | None = None) -> None:
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(16)
        self._listener.settimeout(0.1)  # so the accept loop notices stop()
        self.port = self._listener.getsockname()[1]
        self.connections: list[WsConnection] = []
        self.acks: list[str] = []
        self.ack_times: dict[str, float] = {}
        self.messages: list[str] = []
        self.cond = threading.Condition()
        self._on_connect = on_connect
        self._closed = False
        self._thread = threading.Thread(target=self._accept_loop, name="fake-ws-accept", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/link/"

    def current(self) -> WsConnection | None:
        """The newest open connection."""
        with self.cond:
            open_ = [c for c in self.connections if c.open]
        return open_[-1] if open_ else None

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
        """Wait until ``predicate()`` holds (checked whenever something happens); returns whether it did."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while not predicate():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self.cond.wait(min(remaining, 0.05))
            return True

    def stop(self) -> None:
        self._closed = True
        try:
            self._listener.close()
        except OSError:
            pass
        for conn in list(self.connections):
            conn.drop()

    # ------------------------------------------------------------------ internals
    def _accept_loop(self) -> None:
        number = 0
        while not self._closed:
            try:
                sock, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            sock.settimeout(None)
            number += 1
            try:
                path = self._handshake(sock)
            except (OSError, ValueError):
                sock.close()
                continue
            conn = WsConnection(self, sock, number, path)
            with self.cond:
                self.connections.append(conn)
                self.cond.notify_all()
            conn.start()
            if self._on_connect is not None:
                try:
                    self._on_connect(conn)
                except OSError:
                    conn.drop()

    @staticmethod
    def _handshake(sock: socket.socket) -> str:
        sock.settimeout(5)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(4096)
            if not chunk:
                raise ValueError("no handshake")
            data += chunk
        sock.settimeout(None)
        lines = data.decode("latin-1").split("\r\n")
        path = lines[0].split(" ")[1]
        headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:] if ln)}
        key = headers.get("sec-websocket-key")
        if not key:
            raise ValueError("not a websocket upgrade")
        accept = base64.b64encode(hashlib.sha1((key + _GUID).encode()).digest()).decode()
        sock.sendall(
            (
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Accept: {accept}\r\n\r\n"
            ).encode()
        )
        return path

    def _on_client_message(self, conn: WsConnection, text: str) -> None:
        with self.cond:
            self.messages.append(text)
            try:
                body = json.loads(text)
            except ValueError:
                body = None
            if isinstance(body, dict) and "envelope_id" in body:
                self.acks.append(str(body["envelope_id"]))
                self.ack_times.setdefault(str(body["envelope_id"]), time.perf_counter())
            self.cond.notify_all()

    def _on_closed(self, conn: WsConnection) -> None:
        with self.cond:
            self.cond.notify_all()
