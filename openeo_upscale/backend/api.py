"""The local backend's HTTP API: an openEO API 1.2 subset on FastAPI.

`create_app` wires the routes to a `JobService`, an `Authenticator` and a `GraphValidator`.
The API lives under `/openeo/1.2`, `/.well-known/openeo` at the root points there, and the
local OIDC provider lives under `/oidc`.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import logging
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Annotated, Any, TypeVar
from urllib.parse import parse_qsl

import anyio
import sqlalchemy as sa
from fastapi import Depends, FastAPI, Header, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from starlette.background import BackgroundTask
from starlette.exceptions import HTTPException as StarletteHTTPException

import openeo_upscale
from openeo_upscale.backend import errors as e
from openeo_upscale.backend import simulate
from openeo_upscale.backend.auth import Authenticator
from openeo_upscale.backend.collections import COLLECTIONS, collection_links
from openeo_upscale.backend.config import OIDC_PROVIDER_ID, BackendConfig, Mode, ResultsLayout
from openeo_upscale.backend.faults import ASGIApp, FaultMiddleware, FaultPlan, Receive, Scope, Send
from openeo_upscale.backend.jobs import LOG_LEVELS, JobService, JobStatus, isoformat
from openeo_upscale.backend.limits import BodyLimit, bad_name, page_size, parse_json
from openeo_upscale.backend.processes import process_specs, signatures
from openeo_upscale.backend.state import open_state, process_graphs, signing_key
from openeo_upscale.backend.udp import UdpResolver
from openeo_upscale.backend.validation import GraphValidator
from openeo_upscale.udp import UDP_DIR

T = TypeVar("T")

_log = logging.getLogger(__name__)

API_PREFIX = "/openeo/1.2"
API_VERSION = "1.2.0"
ASSET_LINK_SECONDS = 7 * 24 * 3600
"""How long a signed asset link stays valid."""
_UDP_ID = re.compile(r"^\w+$")
CHECK_THREADS = 8
"""Worker threads for requests that check a process graph. Checking may read UDPs by namespace,
which can be slow; these threads are their own, so a slow namespace holds up neither the event
loop nor the threads that serve every other request."""

_JOB_FIELDS = (
    "id",
    "title",
    "description",
    "status",
    "progress",
    "plan",
    "budget",
    "costs",
    "usage",
    "log_level",
)


class Backend:
    """The state and services behind one running API."""

    def __init__(self, config: BackendConfig) -> None:
        self.config = config
        self.engine = open_state(config.state_dir)
        self.auth = Authenticator(self.engine, config)
        self.jobs = JobService(self.engine, config, config.state_dir / "results",
                               user_processes=self.user_processes)
        self.resolver = UdpResolver((*config.udp_dirs, UDP_DIR), allow_http=config.allow_remote_namespaces,
                                    http_timeout=config.namespace_timeout)
        self.available: frozenset[str] | None = None
        """Real mode: the processes the engine implements (the others are refused)."""
        if config.mode is Mode.REAL:
            from openeo_upscale.backend.engine import implemented

            self.available = frozenset(implemented())
        self.validator = GraphValidator(self.resolver, only=self.available)
        self.key = signing_key(self.engine)

    def user_process(self, user: str, pid: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(process_graphs.c.process).where(
                    process_graphs.c.user == user, process_graphs.c.id == pid
                )
            ).first()
        return dict(row[0]) if row else None

    def user_processes(self, user: str) -> dict[str, dict[str, Any]]:
        """Every process the user stored, by id."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(process_graphs.c.id, process_graphs.c.process).where(process_graphs.c.user == user)
            ).all()
        return {pid: dict(doc) for pid, doc in rows}

    def problems(self, user: str, process: Mapping[str, Any],
                 own_udp_url: str | None = None) -> list[e.ApiError]:
        """Every problem of `process` for `user`; `own_udp_url` is where this backend serves its
        UDP folders as the request reached it (a namespace there is read from the folders)."""
        return self.validator.errors(
            process, lambda pid: self.user_process(user, pid),
            lambda namespace, pid: self.resolver.resolve(namespace, pid, own_udp_url=own_udp_url))

    def validate(self, user: str, process: Mapping[str, Any], own_udp_url: str | None = None) -> None:
        """Raise the first problem of `process` for `user`."""
        found = self.problems(user, process, own_udp_url)
        if found:
            raise found[0]

    def sign(self, job_id: str, name: str, expires: int) -> str:
        msg = f"{job_id}/{name}/{expires}".encode()
        return hmac.new(self.key, msg, hashlib.sha256).hexdigest()[:32]


def current_user(request: Request, authorization: Annotated[str | None, Header()] = None) -> str:
    """The authenticated user of a request (401/403 with an openEO error body otherwise)."""
    backend: Backend = request.app.state.backend
    return backend.auth.user_for(authorization)


User = Annotated[str, Depends(current_user)]


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/") + API_PREFIX


def _own_udps(request: Request) -> str:
    """Where this backend serves its UDP folders, as `request` reached it."""
    return _base(request) + "/udp/"


def _job_json(job: Mapping[str, Any], *, full: bool) -> dict[str, Any]:
    out = {k: job.get(k) for k in _JOB_FIELDS if job.get(k) is not None}
    out["status"] = job["status"]
    out["created"] = isoformat(job["created"])
    out["updated"] = isoformat(job["updated"])
    if full:
        out["process"] = job["process"]
        if job.get("job_options"):
            # Not in the openEO API's job metadata; backends built on the openeo Python driver
            # show the job options a job was created with here too.
            out["job_options"] = job["job_options"]
    return out


def _job_options(value: Any) -> dict[str, Any] | None:
    """The ``job_options`` of ``POST /jobs``: absent, null or a JSON object."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise e.BadRequest("job_options must be a JSON object of named options.")
    return value


def _check_job_fields(doc: Mapping[str, Any]) -> None:
    """The metadata of ``POST /jobs`` and ``PATCH /jobs/{id}``: texts, a budget, a log level."""
    for key in ("title", "description", "plan"):
        if doc.get(key) is not None and not isinstance(doc[key], str):
            raise e.BadRequest(f"{key} must be a string or null.")
    budget = doc.get("budget")
    if budget is not None and (isinstance(budget, bool) or not isinstance(budget, int | float) or budget < 0
                               or budget > 1e15):
        raise e.BadRequest("budget must be a number between 0 and 1e15, or null.")
    level = doc.get("log_level")
    if level is not None and level not in LOG_LEVELS:
        raise e.BadRequest(f"log_level must be one of {', '.join(LOG_LEVELS)}, or null.")


def _json_body(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise e.BadRequest("The request body must be a JSON object.")
    return body


async def _read_json(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw:
        raise e.BadRequest("The request body must be a JSON object.")
    return _json_body(parse_json(raw))


def create_app(config: BackendConfig) -> BackendApp:
    """The ASGI app of the local backend (with fault injection when configured)."""
    backend = Backend(config)
    app = FastAPI(
        title=config.title,
        version=openeo_upscale.__version__,
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
    )
    app.state.backend = backend
    limiter: list[anyio.CapacityLimiter] = []  # made on first use: it belongs to the running loop

    async def off_loop(fn: Callable[..., T], *args: Any) -> T:
        """`fn(*args)` in one of the `CHECK_THREADS` threads of the graph-checking requests."""
        if not limiter:
            limiter.append(anyio.CapacityLimiter(CHECK_THREADS))
        return await anyio.to_thread.run_sync(functools.partial(fn, *args), limiter=limiter[0])

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

    # ----- discovery -----------------------------------------------------------------------

    @app.get("/.well-known/openeo")
    def well_known(request: Request) -> dict[str, Any]:
        return {"versions": [{"url": _base(request) + "/", "api_version": API_VERSION, "production": False}]}

    @app.get(API_PREFIX + "/")
    def capabilities(request: Request) -> dict[str, Any]:
        base = _base(request)
        endpoints = []
        for route in app.routes:
            path = getattr(route, "path", "")
            if path.startswith(API_PREFIX):
                methods = sorted(m for m in getattr(route, "methods", set()) if m != "HEAD")
                endpoints.append({"path": path[len(API_PREFIX) :] or "/", "methods": methods})
        return {
            "api_version": API_VERSION,
            "backend_version": openeo_upscale.__version__,
            "stac_version": "1.0.0",
            "type": "Catalog",
            "id": "openeo-upscale-local",
            "title": config.title,
            "production": False,
            "description": (
                f"Local openEO backend of openeo-upscale, {config.mode.value} mode. "
                "Jobs, logs and results survive a restart."
            ),
            "endpoints": endpoints,
            "billing": {
                "currency": "credits",
                "default_plan": "free",
                "plans": [{"name": "free", "description": "Local, no real cost.", "paid": False}],
            },
            "links": [
                {"rel": "self", "href": f"{base}/", "type": "application/json"},
                {"rel": "data", "href": f"{base}/collections", "type": "application/json"},
                {
                    "rel": "version-history",
                    "href": str(request.base_url) + ".well-known/openeo",
                    "type": "application/json",
                },
                {"rel": "conformance", "href": f"{base}/conformance", "type": "application/json"},
            ],
        }

    @app.get(API_PREFIX + "/conformance")
    def conformance() -> dict[str, Any]:
        return {
            "conformsTo": [
                "https://api.openeo.org/1.2.0",
                "https://api.openeo.org/extensions/commercial-data/0.1.0",
                "http://www.opengis.net/spec/ogcapi-common-1/1.0/conf/core",
                "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
            ]
        }

    @app.get(API_PREFIX + "/file_formats")
    def file_formats() -> dict[str, Any]:
        def fmt(title: str) -> dict[str, Any]:
            return {"title": title, "gis_data_types": ["raster"], "parameters": {}}

        return {"input": {}, "output": {"GTiff": fmt("GeoTIFF"), "netCDF": fmt("netCDF")}}

    @app.get(API_PREFIX + "/udf_runtimes")
    def udf_runtimes() -> dict[str, Any]:
        return {}

    @app.get(API_PREFIX + "/service_types")
    def service_types() -> dict[str, Any]:
        return {}

    # ----- authentication ---------------------------------------------------------------------

    @app.get(API_PREFIX + "/credentials/basic")
    def credentials_basic(authorization: Annotated[str | None, Header()] = None) -> dict[str, Any]:
        return {"access_token": backend.auth.basic_login(authorization)}

    @app.get(API_PREFIX + "/credentials/oidc")
    def credentials_oidc(request: Request) -> dict[str, Any]:
        issuer = str(request.base_url).rstrip("/") + "/oidc"
        return {
            "providers": [
                {
                    "id": OIDC_PROVIDER_ID,
                    "issuer": issuer,
                    "title": "Local OIDC provider",
                    "scopes": ["openid"],
                    "links": [{"rel": "about", "href": issuer + "/.well-known/openid-configuration"}],
                }
            ]
        }

    @app.get("/oidc/.well-known/openid-configuration")
    def oidc_configuration(request: Request) -> dict[str, Any]:
        issuer = str(request.base_url).rstrip("/") + "/oidc"
        return {
            "issuer": issuer,
            "token_endpoint": issuer + "/token",
            "authorization_endpoint": issuer + "/authorize",
            "jwks_uri": issuer + "/jwks",
            "scopes_supported": ["openid"],
            "grant_types_supported": ["client_credentials"],
            "response_types_supported": ["token"],
            "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
        }

    @app.post("/oidc/token")
    async def oidc_token(request: Request) -> JSONResponse:
        # OAuth token requests are urlencoded forms; parsed here, as Starlette's `request.form()`
        # needs python-multipart, which is not a dependency.
        form = dict(parse_qsl((await request.body()).decode("utf-8", "replace")))
        grant = form.get("grant_type")
        client_id, client_secret = form.get("client_id"), form.get("client_secret")
        header = request.headers.get("authorization", "")
        if header.lower().startswith("basic ") and not client_secret:
            try:
                client_id, _, client_secret = base64.b64decode(header[6:]).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                return JSONResponse({"error": "invalid_client"}, status_code=401)
        if grant != "client_credentials":
            return JSONResponse({"error": "unsupported_grant_type"}, status_code=400)
        try:
            token, ttl = backend.auth.client_credentials(
                str(client_id) if client_id else None, str(client_secret) if client_secret else None
            )
        except e.ApiError:
            return JSONResponse({"error": "invalid_client"}, status_code=401)
        return JSONResponse({"access_token": token, "token_type": "Bearer", "expires_in": ttl})

    @app.get(API_PREFIX + "/me")
    def me(request: Request, user: User) -> dict[str, Any]:
        slots = config.slots_for(user)
        counts = backend.jobs.active_counts(user)
        busy = counts[JobStatus.QUEUED.value] + counts[JobStatus.RUNNING.value]
        queue = config.queue_limit
        return {
            "user_id": user,
            "name": user,
            "default_plan": "free",
            "limits": {
                "running_jobs": {"max": slots, "remaining": max(0, slots - counts[JobStatus.RUNNING.value])},
                "queued_jobs": {"max": queue, "remaining": None if queue is None else max(0, queue - busy)},
                "concurrent_job_policy": config.limit_policy.value,
            },
            "links": [{"rel": "related", "href": f"{_base(request)}/jobs", "title": "Batch jobs"}],
        }

    # ----- collections and processes ----------------------------------------------------------

    @app.get(API_PREFIX + "/collections")
    def collections(request: Request) -> dict[str, Any]:
        base = _base(request)
        return {
            "collections": [collection_links(c, base) for c in COLLECTIONS.values()],
            "links": [{"rel": "self", "href": f"{base}/collections"}],
        }

    @app.get(API_PREFIX + "/collections/{collection_id}")
    def collection(request: Request, collection_id: str) -> dict[str, Any]:
        if collection_id not in COLLECTIONS:
            raise e.CollectionNotFound(f"Collection '{collection_id}' does not exist.")
        return collection_links(COLLECTIONS[collection_id], _base(request))

    @app.get(API_PREFIX + "/processes")
    def processes() -> dict[str, Any]:
        specs = process_specs()
        if backend.available is not None:
            specs = [spec for spec in specs if spec["id"] in backend.available]
        return {"processes": specs, "links": []}

    @app.get(API_PREFIX + "/udp/{name}.json")
    def udp_document(name: str) -> dict[str, Any]:
        doc = None if bad_name(name) else backend.resolver.by_name(name)
        if doc is None:
            raise e.ProcessGraphNotFound(f"User-defined process '{name}' does not exist.")
        return doc

    @app.get(API_PREFIX + "/udp")
    def udp_listing(request: Request) -> dict[str, Any]:
        base = _base(request)
        return {
            "processes": [{"id": n, "href": f"{base}/udp/{n}.json"} for n in backend.resolver.local_names()],
            "links": [],
        }

    # ----- user-defined processes -------------------------------------------------------------

    @app.get(API_PREFIX + "/process_graphs")
    def list_process_graphs(user: User) -> dict[str, Any]:
        with backend.engine.connect() as conn:
            rows = conn.execute(
                sa.select(process_graphs.c.process)
                .where(process_graphs.c.user == user)
                .order_by(process_graphs.c.id)
            ).all()
        listed = [{k: v for k, v in r[0].items() if k != "process_graph"} for r in rows]
        return {"processes": listed, "links": []}

    @app.get(API_PREFIX + "/process_graphs/{process_graph_id}")
    def get_process_graph(process_graph_id: str, user: User) -> dict[str, Any]:
        doc = backend.user_process(user, process_graph_id)
        if doc is None:
            raise e.ProcessGraphNotFound(f"User-defined process '{process_graph_id}' does not exist.")
        return doc

    @app.put(API_PREFIX + "/process_graphs/{process_graph_id}")
    async def put_process_graph(process_graph_id: str, request: Request, user: User) -> Response:
        if not _UDP_ID.match(process_graph_id):
            raise e.ProcessGraphInvalid(f"Invalid process id '{process_graph_id}'.")
        if process_graph_id in signatures():
            raise e.PredefinedProcessExists("A predefined process with the given identifier exists.")
        doc = await _read_json(request)
        if not isinstance(doc.get("process_graph"), dict):
            raise e.ProcessGraphMissing("Invalid process specified. It doesn't contain a process graph.")
        doc["id"] = process_graph_id

        def store() -> None:
            backend.validate(user, doc, own)
            with backend.engine.begin() as conn:
                conn.execute(
                    sa.delete(process_graphs).where(
                        process_graphs.c.user == user, process_graphs.c.id == process_graph_id
                    )
                )
                conn.execute(sa.insert(process_graphs).values(user=user, id=process_graph_id, process=doc))

        own = _own_udps(request)
        await off_loop(store)
        return Response(status_code=200)

    @app.delete(API_PREFIX + "/process_graphs/{process_graph_id}")
    def delete_process_graph(process_graph_id: str, user: User) -> Response:
        with backend.engine.begin() as conn:
            done = conn.execute(
                sa.delete(process_graphs).where(
                    process_graphs.c.user == user, process_graphs.c.id == process_graph_id
                )
            )
        if done.rowcount == 0:
            raise e.ProcessGraphNotFound(f"User-defined process '{process_graph_id}' does not exist.")
        return Response(status_code=204)

    # ----- validation and synchronous processing ----------------------------------------------

    @app.post(API_PREFIX + "/validation")
    async def validation(request: Request, user: User) -> dict[str, Any]:
        doc = await _read_json(request)
        problems = await off_loop(backend.problems, user, doc, _own_udps(request))
        return {"errors": [{"code": p.code, "message": p.message} for p in problems]}

    @app.post(API_PREFIX + "/result")
    async def result(request: Request, user: User) -> Response:
        doc = await _read_json(request)
        process = doc.get("process")
        if not isinstance(process, dict):
            raise e.ProcessGraphMissing("Invalid process specified. It doesn't contain a process graph.")

        def compute() -> Path:
            backend.validate(user, process, own)
            extent = simulate.extent_of(process)
            if extent.area_km2 > 400:
                raise e.ApiError(
                    "The process is too complex for synchronous processing. Please use a batch job instead.",
                    status=400,
                    code="ProcessGraphComplexity",
                )
            path = Path(tempfile.mkdtemp(prefix="openeo-sync-")) / "result.tif"
            simulate.write_geotiff(path, extent)
            return path

        own = _own_udps(request)
        tmp = await off_loop(compute)
        return FileResponse(
            tmp,
            media_type="image/tiff; application=geotiff",
            background=BackgroundTask(_remove_tree, tmp.parent),
        )

    # ----- batch jobs ---------------------------------------------------------------------------

    @app.get(API_PREFIX + "/jobs")
    def list_jobs(
        request: Request,
        user: User,
        limit: Annotated[int, Query(ge=1)] = 100,
        page: Annotated[int | None, Query(ge=0, le=2**53)] = None,
    ) -> dict[str, Any]:
        limit = page_size(limit, 100) or 100
        rows, next_seq = backend.jobs.list_page(user, limit, page)
        links = []
        if next_seq is not None:
            links.append({"rel": "next", "href": f"{_base(request)}/jobs?limit={limit}&page={next_seq}"})
        return {"jobs": [_job_json(r, full=False) for r in rows], "links": links}

    @app.post(API_PREFIX + "/jobs", status_code=201)
    async def create_job(request: Request, user: User) -> Response:
        doc = await _read_json(request)
        process = doc.get("process")
        if not isinstance(process, dict) or not isinstance(process.get("process_graph"), dict):
            raise e.ProcessGraphMissing("Invalid process specified. It doesn't contain a process graph.")
        options = _job_options(doc.get("job_options"))
        _check_job_fields(doc)

        def create() -> str:
            backend.validate(user, process, own)
            return backend.jobs.create(
                user,
                process,
                title=doc.get("title"),
                description=doc.get("description"),
                plan=doc.get("plan"),
                budget=doc.get("budget"),
                log_level=doc.get("log_level"),
                job_options=options,
            )

        own = _own_udps(request)
        job_id = await off_loop(create)
        return Response(
            status_code=201,
            headers={"Location": f"{_base(request)}/jobs/{job_id}", "OpenEO-Identifier": job_id},
        )

    @app.get(API_PREFIX + "/jobs/{job_id}")
    def get_job(job_id: str, user: User) -> dict[str, Any]:
        return _job_json(backend.jobs.get(user, job_id), full=True)

    @app.patch(API_PREFIX + "/jobs/{job_id}")
    async def patch_job(job_id: str, request: Request, user: User) -> Response:
        doc = await _read_json(request)
        editable = {"title", "description", "process", "plan", "budget", "log_level"}
        changes = {k: v for k, v in doc.items() if k in editable}
        if not changes:
            raise e.ApiError("No data specified to be updated.", status=400, code="NoDataForUpdate")
        if "process" in changes and not isinstance(changes["process"], dict):
            raise e.ProcessGraphMissing("Invalid process specified.")
        _check_job_fields(changes)

        def update() -> None:
            if "process" in changes:
                backend.validate(user, changes["process"], own)
            backend.jobs.update(user, job_id, changes)

        own = _own_udps(request)
        await off_loop(update)
        return Response(status_code=204)

    @app.delete(API_PREFIX + "/jobs/{job_id}")
    def delete_job(job_id: str, user: User) -> Response:
        backend.jobs.delete(user, job_id)
        return Response(status_code=204)

    @app.get(API_PREFIX + "/jobs/{job_id}/estimate")
    def estimate(job_id: str, user: User) -> dict[str, Any]:
        job = backend.jobs.get(user, job_id)
        extent = simulate.Extent(**job["extent"])
        attempt = job.get("attempt") or 1
        seconds = simulate.simulated_seconds(extent, config.simulation, attempt, config.faults.seed)
        costs = config.credits(seconds * 2.0)
        return {
            "costs": costs,
            "duration": f"PT{round(seconds)}S",
            "size": 64 * 64 * 2 + 1024,
            "downloads_included": None,
            "expires": isoformat(time.time() + 86400),
        }

    @app.get(API_PREFIX + "/jobs/{job_id}/logs")
    def job_logs(
        request: Request,
        job_id: str,
        user: User,
        offset: str | None = None,
        level: str | None = None,
        limit: Annotated[int | None, Query(ge=1)] = None,
    ) -> dict[str, Any]:
        limit = page_size(limit, None)
        if offset and not (offset.isascii() and offset.isdigit() and len(offset) <= 18):
            raise e.BadRequest(f"Invalid offset '{offset[:40]}': use the offset of a link the logs gave.")
        entries, next_offset = backend.jobs.logs(user, job_id, offset, level, limit)
        links = []
        if next_offset is not None:
            href = f"{_base(request)}/jobs/{job_id}/logs?offset={next_offset}&limit={limit}"
            if level:
                href += f"&level={level}"
            links.append({"rel": "next", "href": href})
        return {"logs": entries, "links": links, "level": level or "debug"}

    @app.post(API_PREFIX + "/jobs/{job_id}/results")
    def start_job(job_id: str, user: User) -> Response:
        backend.jobs.start(user, job_id)
        return Response(status_code=202)

    @app.delete(API_PREFIX + "/jobs/{job_id}/results")
    def cancel_job(job_id: str, user: User) -> Response:
        backend.jobs.cancel(user, job_id)
        return Response(status_code=204)

    def finished_job(user: str, job_id: str) -> dict[str, Any] | JSONResponse:
        job = backend.jobs.get(user, job_id)
        status = JobStatus(job["status"])
        if status is JobStatus.ERROR:
            entries, _ = backend.jobs.logs(user, job_id, None, "error", None)
            last = entries[-1] if entries else {"id": "0", "level": "error", "message": "Job failed."}
            return JSONResponse(last, status_code=424)
        if status is not JobStatus.FINISHED:
            raise e.JobNotFinished(
                "Batch job has not finished computing the results yet. Please try again later."
            )
        return job

    @app.get(API_PREFIX + "/jobs/{job_id}/results")
    def job_results(request: Request, job_id: str, user: User,
                    page: Annotated[int, Query(ge=0, le=1_000_000)] = 0) -> Response:
        job = finished_job(user, job_id)
        if isinstance(job, JSONResponse):
            return job
        if backend.config.results_layout is ResultsLayout.ITEMS:
            doc = _stac_collection(request, backend, job, page)
        else:
            doc = _stac_item(request, job, _signed_assets(request, backend, job))
        # The API requires OpenEO-Costs to be 0 for the job's owner while downloads are included
        # in the job's costs, and this backend never charges for downloads.
        return JSONResponse(doc, headers={"OpenEO-Costs": "0"})

    @app.get(API_PREFIX + "/jobs/{job_id}/results/items/{item_id}")
    def job_result_item(request: Request, job_id: str, item_id: str, user: User) -> Response:
        job = finished_job(user, job_id)
        if isinstance(job, JSONResponse):
            return job
        ids = _item_ids(job)
        if item_id not in ids:
            raise e.ApiError(f"Item '{item_id}' does not exist.", status=404, code="ItemNotFound")
        assets = _signed_assets(request, backend, job)
        names = list(job.get("assets") or {})
        index = ids.index(item_id)
        own = {name: asset for name, asset in assets.items()
               if name == names[index] or (index == 0 and name not in names)}  # a hostile name: item 0
        return JSONResponse(_stac_item(request, job, own, item_id=item_id), headers={"OpenEO-Costs": "0"})

    @app.api_route(API_PREFIX + "/jobs/{job_id}/results/assets/{name:path}", methods=["GET", "HEAD"])
    def asset(
        request: Request,
        job_id: str,
        name: str,
        expires: int | None = None,
        signature: str | None = None,
        authorization: Annotated[str | None, Header()] = None,
    ) -> Response:
        signed = (
            expires is not None
            and signature is not None
            and expires > time.time()
            and hmac.compare_digest(backend.sign(job_id, name, expires), signature)
        )
        if not signed:
            user = backend.auth.user_for(authorization)
            backend.jobs.get(user, job_id)
        if bad_name(name):
            raise e.FileNotFound(f"File {name!r} does not exist.")
        failing = backend.config.faults.asset_errors.get(name)
        if failing is not None:
            return JSONResponse({"code": "Internal" if failing >= 500 else "AssetUnavailable",
                                 "message": f"Injected failure of asset '{name}'."}, status_code=failing)
        path = backend.jobs.result_file(job_id, name)
        media = "image/tiff; application=geotiff" if name.endswith(".tif") else None
        return FileResponse(path, media_type=media, filename=Path(name).name)

    asgi: ASGIApp = BodyLimit(app, int(config.max_request_mb * 2**20))
    if config.faults.enabled:
        asgi = FaultMiddleware(asgi, FaultPlan(config.faults), API_PREFIX)
    return BackendApp(asgi, backend)


def _signed_assets(request: Request, backend: Backend, job: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The job's assets with signed links (and the fault plan's hostile name, where set)."""
    base = _base(request)
    expires = int(time.time()) + ASSET_LINK_SECONDS
    assets = {}
    for name, asset in (job.get("assets") or {}).items():
        sig = backend.sign(job["id"], name, expires)
        assets[name] = {
            **asset,
            "href": f"{base}/jobs/{job['id']}/results/assets/{name}?expires={expires}&signature={sig}",
        }
    hostile = backend.config.faults.hostile_asset_name
    if hostile and assets:
        assets[hostile] = dict(next(iter(assets.values())))
    return assets


def _stac_item(request: Request, job: Mapping[str, Any], assets: Mapping[str, Any], *,
               item_id: str | None = None) -> dict[str, Any]:
    """The STAC Item of a job's results (``item_id`` None), or of one item of the items layout."""
    base = _base(request)
    extent = simulate.Extent(**job["extent"])
    w, s, east, n = extent.west, extent.south, extent.east, extent.north
    self_href = f"{base}/jobs/{job['id']}/results" + (f"/items/{item_id}" if item_id else "")
    links = [{"rel": "self", "href": self_href, "type": "application/json"}]
    if item_id:
        links.append({"rel": "collection", "href": f"{base}/jobs/{job['id']}/results",
                      "type": "application/json"})
    return {
        "stac_version": "1.0.0",
        "type": "Feature",
        "id": item_id or job["id"],
        "stac_extensions": [
            "https://stac-extensions.github.io/file/v2.1.0/schema.json",
            "https://stac-extensions.github.io/projection/v1.1.0/schema.json",
            "https://stac-extensions.github.io/raster/v1.1.0/schema.json",
        ],
        "bbox": [w, s, east, n],
        "geometry": {"type": "Polygon", "coordinates": [[[w, s], [east, s], [east, n], [w, n], [w, s]]]},
        "properties": {
            "datetime": None,
            "start_datetime": f"{extent.start[:10]}T00:00:00Z",
            "end_datetime": f"{extent.end[:10]}T00:00:00Z",
            "title": job.get("title"),
            "created": isoformat(job["created"]),
            "updated": isoformat(job["updated"]),
            "openeo:status": job["status"],
        },
        "assets": dict(assets),
        "links": links,
    }


def _item_ids(job: Mapping[str, Any]) -> list[str]:
    """The items of a job's results in the items layout: one per asset, ``item-0``, ``item-1``, ..."""
    return [f"item-{index}" for index in range(len(job.get("assets") or {}))]


def _stac_collection(request: Request, backend: Backend, job: Mapping[str, Any], page: int) -> dict[str, Any]:
    """A job's results as a STAC Collection without assets, its items linked (``rel="item"``), a page
    of `BackendConfig.items_per_page` links at a time (``rel="next"`` to the next page)."""
    base = _base(request)
    extent = simulate.Extent(**job["extent"])
    per_page = backend.config.items_per_page
    ids = _item_ids(job)
    shown = ids[page * per_page:(page + 1) * per_page]
    links = [{"rel": "self", "href": f"{base}/jobs/{job['id']}/results", "type": "application/json"}]
    links += [{"rel": "item", "href": f"{base}/jobs/{job['id']}/results/items/{item_id}",
               "type": "application/geo+json"} for item_id in shown]
    if (page + 1) * per_page < len(ids):
        links.append({"rel": "next", "href": f"{base}/jobs/{job['id']}/results?page={page + 1}",
                      "type": "application/json"})
    return {
        "stac_version": "1.0.0",
        "type": "Collection",
        "id": job["id"],
        "title": job.get("title"),
        "description": f"Results of batch job {job['id']}.",
        "license": "proprietary",
        "extent": {
            "spatial": {"bbox": [[extent.west, extent.south, extent.east, extent.north]]},
            "temporal": {"interval": [[f"{extent.start[:10]}T00:00:00Z", f"{extent.end[:10]}T00:00:00Z"]]},
        },
        "assets": {},
        "links": links,
        "openeo:status": job["status"],
    }


def _remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


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
