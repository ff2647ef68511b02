"""A loopback HTTP proxy in front of a local backend, to cut parts of it off as a network would.

The local backend's fault injection covers its openEO API only; its OIDC provider (``/oidc/...``)
is outside of it. This proxy forwards every request to the real backend (with the proxy's own
``Host``, so the links and the OIDC issuer the backend hands out point at the proxy) and, while
told to, drops the connection without an answer for the provider's routes (``oidc_down``) or
answers 404 to ``POST /validation`` and leaves it out of the capabilities (``hide_validation``).
"""

from __future__ import annotations

import http.client
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from urllib.parse import urlsplit

_HOP_BY_HOP = frozenset({"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade",
                         "proxy-authorization", "proxy-authenticate", "content-length"})
_VALIDATION = "/openeo/1.2/validation"
_CAPABILITIES = "/openeo/1.2/"


class Proxy:
    """`Proxy(backend_url)` as a context manager; `url` is where clients connect."""

    def __init__(self, target: str) -> None:
        parts = urlsplit(target)
        self.target = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.oidc_down = threading.Event()
        """While set, requests to ``/oidc/...`` get no answer (the connection is closed)."""
        self.hide_validation = False
        """Whether the backend seems to have no ``POST /validation``."""
        self.dropped = 0
        """OIDC requests dropped so far."""
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="test-proxy", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> Proxy:
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                return None

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                path = self.path
                if path.startswith("/oidc") and proxy.oidc_down.is_set():
                    proxy.dropped += 1
                    self.close_connection = True  # no answer at all: as an unreachable host looks
                    return
                if proxy.hide_validation and self.command == "POST" and path.rstrip("/") == _VALIDATION:
                    self._answer(404, {"Content-Type": "application/json"},
                                 json.dumps({"code": "NotFound", "message": "Not Found"}).encode())
                    return
                upstream = http.client.HTTPConnection(*proxy.target, timeout=60)
                try:
                    headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
                    upstream.request(self.command, path, body=body, headers=headers)
                    response = upstream.getresponse()
                    data = response.read()
                    kept = {k: v for k, v in response.getheaders() if k.lower() not in _HOP_BY_HOP}
                    status = response.status
                finally:
                    upstream.close()
                if proxy.hide_validation and self.command == "GET" and path.split("?")[0] == _CAPABILITIES:
                    doc = json.loads(data)
                    doc["endpoints"] = [e for e in doc.get("endpoints", []) if e.get("path") != "/validation"]
                    data = json.dumps(doc).encode()
                length = len(data)
                if self.command == "HEAD":
                    length = int(response.getheader("Content-Length") or 0)
                self._answer(status, kept, data, length=length)

            def _answer(self, status: int, headers: dict[str, str], data: bytes,
                        length: int | None = None) -> None:
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(data) if length is None else length))
                self.end_headers()
                if data:
                    self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _forward

        return Handler
