"""Run the local backend: in a background thread on a free port (tests, demo) or in the
foreground (`openeo-upscale backend serve`)."""

from __future__ import annotations

import dataclasses
import logging
import socket
import threading
import time
from types import TracebackType
from typing import Any

import uvicorn

from openeo_upscale.backend.api import API_PREFIX, create_app
from openeo_upscale.backend.config import BackendConfig, Mode
from openeo_upscale.errors import UpscaleError

_log = logging.getLogger(__name__)


class BackendStartError(UpscaleError):
    """The local backend did not come up."""


class LocalBackend:
    """The local openEO backend in a background thread; a context manager.

    >>> with LocalBackend(BackendConfig(state_dir=tmp)) as backend:
    ...     con = openeo.connect(backend.url).authenticate_basic("demo", "demo")
    """

    def __init__(self, config: BackendConfig | None = None, *, port: int = 0, **changes: Any) -> None:
        """`port=0` (the default) takes a free port; `changes` override fields of `config`."""
        config = config or BackendConfig()
        if "mode" in changes:  # LocalBackend(mode="real") as a user types it
            try:
                changes["mode"] = Mode(changes["mode"])
            except ValueError:
                modes = ", ".join(m.value for m in Mode)
                raise ValueError(f"mode must be one of {modes}, not {changes['mode']!r}") from None
        self.config = dataclasses.replace(config, port=port, **changes)
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._app: Any = None
        self.port: int | None = None

    @property
    def url(self) -> str:
        """Root URL for `openeo.connect` (discovers the API through `/.well-known/openeo`)."""
        if self.port is None:
            raise BackendStartError("the local backend is not running")
        return f"http://{self.config.host}:{self.port}"

    @property
    def api_url(self) -> str:
        """URL of the versioned API root."""
        return self.url + API_PREFIX

    def start(self, timeout: float = 20.0) -> LocalBackend:
        # proto=IPPROTO_TCP explicitly: asyncio only sets TCP_NODELAY on accepted sockets whose
        # proto says TCP, and without it every keep-alive answer waits ~40 ms (Nagle + delayed ACK).
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.config.host, self.config.port))
        self.port = sock.getsockname()[1]
        self._app = create_app(self.config)
        uv_config = uvicorn.Config(
            self._app, log_level="warning", access_log=False, lifespan="off", timeout_keep_alive=30
        )
        self._server = uvicorn.Server(uv_config)
        self._app.backend.jobs.start_dispatcher()
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, name=f"openeo-local-{self.port}", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise BackendStartError(f"the local backend did not start on port {self.port}")
            time.sleep(0.01)
        _log.info("local openEO backend listening on %s", self.url)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
        if self._app is not None:
            self._app.backend.jobs.stop_dispatcher()
            self._app.backend.engine.dispose()
        self._server = self._thread = self._app = None

    def __enter__(self) -> LocalBackend:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def serve(config: BackendConfig) -> None:
    """Serve in the foreground until interrupted."""
    app = create_app(config)
    app.backend.jobs.start_dispatcher()
    try:
        uvicorn.run(app, host=config.host, port=config.port, log_level="info", lifespan="off")
    finally:
        app.backend.jobs.stop_dispatcher()
