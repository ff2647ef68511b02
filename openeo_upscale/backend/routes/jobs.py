"""Batch-job routes: create, list, read, update and delete jobs, their estimates and logs, start
and cancel them, and serve their results as STAC (an Item, or a Collection of Items) with
signed asset links.

A signed link works without a token until it expires; its expiry comes from the backend's clock.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import FileResponse, JSONResponse, Response

from openeo_upscale.backend import errors as e
from openeo_upscale.backend import simulate
from openeo_upscale.backend.config import ResultsLayout
from openeo_upscale.backend.jobs import LOG_LEVELS, JobStatus, isoformat
from openeo_upscale.backend.limits import MAX_PAGE, bad_name, page_size
from openeo_upscale.backend.routes._common import (
    API_PREFIX,
    BackendDep,
    User,
    base_url,
    off_loop,
    own_udps,
    read_json,
)
from openeo_upscale.backend.service import Backend

router = APIRouter()

ASSET_LINK_SECONDS = 7 * 24 * 3600
"""How long a signed asset link stays valid."""

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


# ----- jobs -----------------------------------------------------------------------------------


@router.get(API_PREFIX + "/jobs")
def list_jobs(
    request: Request,
    user: User,
    backend: BackendDep,
    limit: Annotated[int, Query(ge=1)] = 100,
    page: Annotated[int | None, Query(ge=0, le=2**53)] = None,
) -> dict[str, Any]:
    limit = min(limit, MAX_PAGE)
    rows, next_seq = backend.jobs.list_page(user, limit, page)
    links = []
    if next_seq is not None:
        links.append({"rel": "next", "href": f"{base_url(request)}/jobs?limit={limit}&page={next_seq}"})
    return {"jobs": [_job_json(r, full=False) for r in rows], "links": links}


@router.post(API_PREFIX + "/jobs", status_code=201)
async def create_job(request: Request, user: User, backend: BackendDep) -> Response:
    doc = await read_json(request)
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

    own = own_udps(request)
    job_id = await off_loop(request, create)
    return Response(
        status_code=201,
        headers={"Location": f"{base_url(request)}/jobs/{job_id}", "OpenEO-Identifier": job_id},
    )


@router.get(API_PREFIX + "/jobs/{job_id}")
def get_job(job_id: str, user: User, backend: BackendDep) -> dict[str, Any]:
    return _job_json(backend.jobs.get(user, job_id), full=True)


@router.patch(API_PREFIX + "/jobs/{job_id}")
async def patch_job(job_id: str, request: Request, user: User, backend: BackendDep) -> Response:
    doc = await read_json(request)
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

    own = own_udps(request)
    await off_loop(request, update)
    return Response(status_code=204)


@router.delete(API_PREFIX + "/jobs/{job_id}")
def delete_job(job_id: str, user: User, backend: BackendDep) -> Response:
    backend.jobs.delete(user, job_id)
    return Response(status_code=204)


@router.get(API_PREFIX + "/jobs/{job_id}/estimate")
def estimate(job_id: str, user: User, backend: BackendDep) -> dict[str, Any]:
    return backend.jobs.estimate(user, job_id)


@router.get(API_PREFIX + "/jobs/{job_id}/logs")
def job_logs(
    request: Request,
    job_id: str,
    user: User,
    backend: BackendDep,
    offset: str | None = None,
    level: str | None = None,
    limit: Annotated[int | None, Query(ge=1)] = None,
) -> dict[str, Any]:
    limit = page_size(limit)
    if offset and not (offset.isascii() and offset.isdigit() and len(offset) <= 18):
        raise e.BadRequest(f"Invalid offset '{offset[:40]}': use the offset of a link the logs gave.")
    entries, next_offset = backend.jobs.logs(user, job_id, offset, level, limit)
    links = []
    if next_offset is not None:
        href = f"{base_url(request)}/jobs/{job_id}/logs?offset={next_offset}&limit={limit}"
        if level:
            href += f"&level={level}"
        links.append({"rel": "next", "href": href})
    return {"logs": entries, "links": links, "level": level or "debug"}


@router.post(API_PREFIX + "/jobs/{job_id}/results")
def start_job(job_id: str, user: User, backend: BackendDep) -> Response:
    backend.jobs.start(user, job_id)
    return Response(status_code=202)


@router.delete(API_PREFIX + "/jobs/{job_id}/results")
def cancel_job(job_id: str, user: User, backend: BackendDep) -> Response:
    backend.jobs.cancel(user, job_id)
    return Response(status_code=204)


# ----- results --------------------------------------------------------------------------------


def _finished_job(backend: Backend, user: str, job_id: str) -> dict[str, Any] | JSONResponse:
    """The job if it finished; its last error (424) if it failed; JobNotFinished otherwise."""
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


@router.get(API_PREFIX + "/jobs/{job_id}/results")
def job_results(request: Request, job_id: str, user: User, backend: BackendDep,
                page: Annotated[int, Query(ge=0, le=1_000_000)] = 0) -> Response:
    job = _finished_job(backend, user, job_id)
    if isinstance(job, JSONResponse):
        return job
    if backend.config.results_layout is ResultsLayout.ITEMS:
        doc = _stac_collection(request, backend, job, page)
    else:
        doc = _stac_item(request, job, _signed_assets(request, backend, job))
    # The API requires OpenEO-Costs to be 0 for the job's owner while downloads are included
    # in the job's costs, and this backend never charges for downloads.
    return JSONResponse(doc, headers={"OpenEO-Costs": "0"})


@router.get(API_PREFIX + "/jobs/{job_id}/results/items/{item_id}")
def job_result_item(request: Request, job_id: str, item_id: str, user: User, backend: BackendDep) -> Response:
    job = _finished_job(backend, user, job_id)
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


@router.api_route(API_PREFIX + "/jobs/{job_id}/results/assets/{name:path}", methods=["GET", "HEAD"])
def asset(
    request: Request,
    job_id: str,
    name: str,
    backend: BackendDep,
    expires: int | None = None,
    signature: str | None = None,
    authorization: Annotated[str | None, Header()] = None,
) -> Response:
    signed = (
        expires is not None
        and signature is not None
        and expires > backend.clock()
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


def _signed_assets(request: Request, backend: Backend, job: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The job's assets with signed links (and the fault plan's hostile name, where set)."""
    base = base_url(request)
    expires = int(backend.clock()) + ASSET_LINK_SECONDS
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
    base = base_url(request)
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
    base = base_url(request)
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
