"""The local backend's HTTP API: an openEO API 1.2 subset on FastAPI.

`create_app` builds a `Backend` (state and services, :mod:`.service`), includes the route groups
of :mod:`.routes`, answers every error with an openEO error body, and wraps the app in the body
limit and, when configured, fault injection. The API lives under `/openeo/1.2`,
`/.well-known/openeo` at the root points there, and the local OIDC provider lives under `/oidc`.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Sequence
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

import openeo_upscale
from openeo_upscale.backend import errors as e
from openeo_upscale.backend.config import BackendConfig
from openeo_upscale.backend.faults import ASGIApp, FaultMiddleware, FaultPlan, Receive, Scope, Send
from openeo_upscale.backend.jobs import Clock
from openeo_upscale.backend.limits import BodyLimit
from openeo_upscale.backend.routes import accounts, discovery, graphs, jobs
from openeo_upscale.backend.routes._common import API_PREFIX, API_VERSION, CheckThreads
from openeo_upscale.backend.service import Backend

__all__ = ["API_PREFIX", "API_VERSION", "BackendApp", "create_app"]

_log = logging.getLogger(__name__)

_ROUTERS = (discovery.router, accounts.router, discovery.catalog, graphs.router, jobs.router)
"""In this order the capabilities list the endpoints as they always have."""


def create_app(config: BackendConfig, *, clock: Clock = time.time) -> BackendApp:
    """The ASGI app of the local backend (with fault injection when configured); `clock` is the
    time of everything it does."""
    backend = Backend(config, clock)
    app = FastAPI(
        title=config.title,
        version=openeo_upscale.__version__,
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
    )
    app.state.backend = backend
    app.state.check_threads = CheckThreads()
    _add_error_handlers(app)
    for router in _ROUTERS:
        app.include_router(router)
    app.state.endpoints = _endpoints(_ROUTERS)
    asgi: ASGIApp = BodyLimit(app, int(config.max_request_mb * 2**20))
    if config.faults.enabled:
        asgi = FaultMiddleware(asgi, FaultPlan(config.faults), API_PREFIX)
    return BackendApp(asgi, backend)


def _endpoints(routers: Sequence[APIRouter]) -> list[dict[str, Any]]:
    """The capabilities' endpoint list, from the routers' own routes: read once, as FastAPI (from
    0.137) no longer copies an included router's routes into the app's."""
    found = []
    for router in routers:
        for route in router.routes:
            path = getattr(route, "path", "")
            if path.startswith(API_PREFIX):
                methods = sorted(m for m in getattr(route, "methods", set()) if m != "HEAD")
                found.append({"path": path[len(API_PREFIX):] or "/", "methods": methods})
    return found


def _add_error_handlers(app: FastAPI) -> None:
    """Every error as an openEO error body: ours, bad requests, unknown routes, and crashes (500)."""

    @app.exception_handler(e.ApiError)
    async def _api_error(_request: Request, exc: e.ApiError) -> JSONResponse:
        return JSONResponse(exc.to_dict(), status_code=exc.status, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _bad_request(_request: Request, exc: RequestValidationError) -> JSONResponse:
        err = e.BadRequest(f"Invalid request: {exc.errors()[:3]}")
        return JSONResponse(err.to_dict(), status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "NotFound", 405: "MethodNotAllowed"}.get(exc.status_code, "Internal")
        err = e.ApiError(str(exc.detail), status=exc.status_code, code=code)
        return JSONResponse(err.to_dict(), status_code=exc.status_code)

    @app.exception_handler(Exception)
    async def _internal(_request: Request, exc: Exception) -> JSONResponse:
        _log.exception("internal error")
        err = e.Internal(f"Server error: {type(exc).__name__}")
        return JSONResponse(err.to_dict(), status_code=500)


class BackendApp:
    """The ASGI app of the local backend, with the `Backend` (state and services) behind it."""

    def __init__(self, app: ASGIApp, backend: Backend) -> None:
        self.app = app
        self.backend = backend

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Accept `//jobs` for `/jobs`: some clients join URLs carelessly.
        if scope["type"] == "http" and "//" in scope["path"]:
            scope = dict(scope)
            scope["path"] = re.sub("/{2,}", "/", scope["path"])
        await self.app(scope, receive, send)
