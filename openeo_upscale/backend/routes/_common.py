"""What the route groups share: the API's root, a request's `Backend` and user, JSON bodies, and
the threads of the requests that check a process graph."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import anyio
from fastapi import Depends, Header, Request

from openeo_upscale.backend import errors as e
from openeo_upscale.backend.limits import parse_json
from openeo_upscale.backend.service import Backend

T = TypeVar("T")

API_PREFIX = "/openeo/1.2"
API_VERSION = "1.2.0"
CHECK_THREADS = 8
"""Worker threads for requests that check a process graph. Checking may read UDPs by namespace,
which can be slow; these threads are their own, so a slow namespace holds up neither the event
loop nor the threads that serve every other request."""


async def backend_of(request: Request) -> Backend:
    """The `Backend` of the app a request reached (async: no worker thread needed)."""
    backend: Backend = request.app.state.backend
    return backend


BackendDep = Annotated[Backend, Depends(backend_of)]


def current_user(request: Request, authorization: Annotated[str | None, Header()] = None) -> str:
    """The authenticated user of a request (401/403 with an openEO error body otherwise)."""
    backend: Backend = request.app.state.backend
    return backend.auth.user_for(authorization)


User = Annotated[str, Depends(current_user)]


def base_url(request: Request) -> str:
    """The API's root as `request` reached it, without a trailing slash."""
    return str(request.base_url).rstrip("/") + API_PREFIX


def own_udps(request: Request) -> str:
    """Where this backend serves its UDP folders, as `request` reached it."""
    return base_url(request) + "/udp/"


async def read_json(request: Request) -> dict[str, Any]:
    """The request's body, which must be a JSON object (400 otherwise)."""
    raw = await request.body()
    body = parse_json(raw) if raw else None
    if not isinstance(body, dict):
        raise e.BadRequest("The request body must be a JSON object.")
    return body


class CheckThreads:
    """The `CHECK_THREADS` threads of one app's graph-checking requests."""

    def __init__(self) -> None:
        self._limiter: anyio.CapacityLimiter | None = None

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """`fn(*args)` in one of the threads."""
        if self._limiter is None:  # made on first use: it belongs to the running loop
            self._limiter = anyio.CapacityLimiter(CHECK_THREADS)
        return await anyio.to_thread.run_sync(functools.partial(fn, *args), limiter=self._limiter)


async def off_loop(request: Request, fn: Callable[..., T], *args: Any) -> T:
    """`fn(*args)` in one of the `CHECK_THREADS` threads of the app `request` reached."""
    threads: CheckThreads = request.app.state.check_threads
    return await threads.run(fn, *args)
