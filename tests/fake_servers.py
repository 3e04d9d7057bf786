"""A reusable in-process fake HTTP server for download tests (127.0.0.1 only).

Usage::

    def routes(req: Request) -> Reply:
        if req.path == "/viewer/jpeg-cutout":
            return jpeg_reply(galaxy_jpeg())
        return Reply(404, body=b"not found")

    with FakeServer(routes) as srv:
        client = HttpClient(srv.base_url, rate=0, sleep=lambda s: None)
        ...
        assert all(r.headers["User-Agent"] == USER_AGENT for r in srv.requests)

``routes`` is any callable ``Request -> Reply`` (a ``(status, headers, body)`` tuple is
accepted too). It runs in the server's worker threads, so it must be thread-safe;
:class:`Script` is a thread-safe helper that answers each key with a list of replies in
turn (faults first, then success).

Fault replies: :func:`text_reply` (the viewer's "no such layer" with status 200),
:func:`too_many` (429 + Retry-After), :func:`unavailable` (503), :func:`slow` (waits before
answering: longer than a client's read timeout), :func:`truncated` (declares the full
Content-Length, sends part of the body, closes), :func:`reset` (closes the socket with a
TCP RST and no response).

Every request is recorded (method, path, query, headers) in ``server.requests``.
"""
from __future__ import annotations

import io
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable
from urllib.parse import parse_qs, urlsplit

import numpy as np
import pytest
from PIL import Image


@dataclass
class Request:
    """One request as the server saw it. ``query`` maps each name to its (last) value."""
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    raw_path: str


@dataclass
class Reply:
    """What to answer. ``action``: ``None`` (normal), ``"reset"`` (RST, no response) or
    ``"truncate"`` (send ``len(body)`` as Content-Length but only ``cut`` bytes)."""
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    delay: float = 0.0
    action: str | None = None
    cut: int = 0


def _as_reply(obj) -> Reply:
    if isinstance(obj, Reply):
        return obj
    status, headers, body = obj
    return Reply(status, dict(headers), body)


class FakeServer:
    """Threaded HTTP server on ``127.0.0.1:<free port>`` in a background thread.

    A context manager: ``with FakeServer(routes) as srv: ... srv.base_url``.
    """

    def __init__(self, routes: Callable[[Request], Reply]):
        self.routes = routes
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def count(self, path: str | None = None) -> int:
        """Number of requests recorded (to ``path`` only, if given)."""
        with self._lock:
            return sum(1 for r in self.requests if path is None or r.path == path)

    def _record(self, req: Request) -> None:
        with self._lock:
            self.requests.append(req)

    def start(self) -> "FakeServer":
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, like a real server

            def log_message(self, *args):  # keep test output quiet
                pass

            def do_GET(self):
                parts = urlsplit(self.path)
                query = {k: v[-1] for k, v in parse_qs(parts.query,
                                                      keep_blank_values=True).items()}
                req = Request(self.command, parts.path, query, dict(self.headers.items()),
                              self.path)
                server._record(req)
                try:
                    reply = _as_reply(server.routes(req))
                except Exception as err:  # a broken route must show up in the test
                    reply = Reply(599, {"Content-Type": "text/plain"},
                                  f"route raised {err!r}".encode())
                self._answer(reply)

            def _answer(self, reply: Reply):
                if reply.delay:
                    time.sleep(reply.delay)
                if reply.action == "reset":
                    self.close_connection = True
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                               struct.pack("ii", 1, 0))
                    self.connection.close()
                    return
                self.send_response(reply.status)
                headers = {"Content-Type": "application/octet-stream", **reply.headers}
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(reply.body)))
                if reply.action == "truncate":
                    self.send_header("Connection", "close")
                    self.end_headers()
                    self.wfile.write(reply.body[: reply.cut])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.end_headers()
                try:
                    self.wfile.write(reply.body)
                except (BrokenPipeError, ConnectionResetError):
                    # The client gave up first (its read timeout on a slow reply).
                    self.close_connection = True

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._thread.join(timeout=5)
            self._httpd = None

    def __enter__(self) -> "FakeServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class Script:
    """Thread-safe scripted routes: ``key(request)`` picks a list of replies, answered in
    turn; the last one repeats. Keys without a script get ``default(request)``.

    ``Script({"/a": [unavailable(), jpeg_reply(b)]}, default=...)`` fails once, then
    serves ``b``. The default key is the request path.
    """

    def __init__(self, scripts: dict, default: Callable[[Request], Reply] | None = None,
                 key: Callable[[Request], object] = lambda r: r.path):
        self.scripts = {k: list(v) for k, v in scripts.items()}
        self.default = default or (lambda r: Reply(404, {"Content-Type": "text/plain"},
                                                   b"not found"))
        self.key = key
        self._lock = threading.Lock()

    def __call__(self, req: Request) -> Reply:
        k = self.key(req)
        with self._lock:
            replies = self.scripts.get(k)
            if replies:
                reply = replies.pop(0) if len(replies) > 1 else replies[0]
            else:
                reply = None
        return reply if reply is not None else self.default(req)


# --------------------------------------------------------------------------- bodies
def jpeg_bytes(arr: np.ndarray, quality: int = 90) -> bytes:
    """``[H, W, 3]`` uint8 -> JPEG bytes."""
    buf = io.BytesIO()
    Image.fromarray(np.asarray(arr, np.uint8), "RGB").save(buf, format="JPEG",
                                                            quality=quality)
    return buf.getvalue()


def galaxy_array(seed: int = 0, size: int = 128) -> np.ndarray:
    """A galaxy-like ``[size, size, 3]`` uint8: an off-centre blob on noisy sky."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size].astype(np.float64)
    cy, cx = size * rng.uniform(0.4, 0.6, 2)
    blob = 200 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * (size / 10) ** 2))
    img = 32 + blob[..., None] * np.array([1.0, 0.85, 0.7]) \
        + rng.normal(0, 4, (size, size, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


def galaxy_jpeg(seed: int = 0, size: int = 128) -> bytes:
    """JPEG bytes of :func:`galaxy_array`."""
    return jpeg_bytes(galaxy_array(seed, size))


def grey_jpeg(level: int, size: int = 128) -> bytes:
    """A uniform grey JPEG: the viewer's out-of-footprint cutout (22 sdss, 32 ls/hsc)."""
    return jpeg_bytes(np.full((size, size, 3), level, np.uint8))


# --------------------------------------------------------------------------- replies
def jpeg_reply(body: bytes) -> Reply:
    return Reply(200, {"Content-Type": "image/jpeg"}, body)


def text_reply(text: str = "no such layer", status: int = 200) -> Reply:
    """A text body (the viewer answers an unknown layer like this, with status 200)."""
    return Reply(status, {"Content-Type": "text/plain; charset=utf-8"}, text.encode())


def too_many(retry_after: str | float = 7) -> Reply:
    """HTTP 429 with a ``Retry-After`` header (seconds, or an HTTP date string)."""
    return Reply(429, {"Content-Type": "text/plain", "Retry-After": str(retry_after)},
                 b"slow down")


def unavailable(status: int = 503) -> Reply:
    return Reply(status, {"Content-Type": "text/html"}, b"<h1>Service Unavailable</h1>")


def slow(reply: Reply, delay: float) -> Reply:
    """``reply``, sent after ``delay`` seconds (use a delay above the client's timeout)."""
    return Reply(reply.status, dict(reply.headers), reply.body, delay=delay,
                 action=reply.action, cut=reply.cut)


def truncated(body: bytes, fraction: float = 0.5,
              content_type: str = "image/jpeg") -> Reply:
    """Declares ``len(body)`` bytes but sends only ``fraction`` of them, then closes."""
    return Reply(200, {"Content-Type": content_type}, body, action="truncate",
                 cut=int(len(body) * fraction))


def reset() -> Reply:
    """Close the connection (TCP RST) without any response."""
    return Reply(action="reset")


@pytest.fixture
def fake_server():
    """Factory fixture: ``srv = fake_server(routes)``; all servers stop at teardown."""
    servers = []

    def make(routes):
        srv = FakeServer(routes).start()
        servers.append(srv)
        return srv

    yield make
    for srv in servers:
        srv.stop()
