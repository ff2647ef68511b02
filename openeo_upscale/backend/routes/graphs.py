"""Process-graph routes: the user's stored processes (``/process_graphs``), ``/validation`` and
synchronous processing (``/result``).

Whatever checks a process graph runs through `off_loop`, in the threads of graph checks, with
the URL of this backend's own UDP folders, so a namespace naming them is read from disk.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, Response
from starlette.background import BackgroundTask

from openeo_upscale.backend import errors as e
from openeo_upscale.backend import simulate
from openeo_upscale.backend.processes import signatures
from openeo_upscale.backend.routes._common import API_PREFIX, BackendDep, User, off_loop, own_udps, read_json

router = APIRouter()

_UDP_ID = re.compile(r"^\w+$")
SYNC_MAX_KM2 = 400
"""The largest area synchronous processing computes; beyond, it asks for a batch job."""


@router.get(API_PREFIX + "/process_graphs")
def list_process_graphs(user: User, backend: BackendDep) -> dict[str, Any]:
    return {"processes": backend.process_graphs.listing(user), "links": []}


@router.get(API_PREFIX + "/process_graphs/{process_graph_id}")
def get_process_graph(process_graph_id: str, user: User, backend: BackendDep) -> dict[str, Any]:
    doc = backend.process_graphs.get(user, process_graph_id)
    if doc is None:
        raise e.ProcessGraphNotFound(f"User-defined process '{process_graph_id}' does not exist.")
    return doc


@router.put(API_PREFIX + "/process_graphs/{process_graph_id}")
async def put_process_graph(process_graph_id: str, request: Request, user: User,
                            backend: BackendDep) -> Response:
    if not _UDP_ID.match(process_graph_id):
        raise e.ProcessGraphInvalid(f"Invalid process id '{process_graph_id}'.")
    if process_graph_id in signatures():
        raise e.PredefinedProcessExists("A predefined process with the given identifier exists.")
    doc = await read_json(request)
    if not isinstance(doc.get("process_graph"), dict):
        raise e.ProcessGraphMissing("Invalid process specified. It doesn't contain a process graph.")
    doc["id"] = process_graph_id

    def store() -> None:
        backend.validate(user, doc, own)
        backend.process_graphs.put(user, process_graph_id, doc)

    own = own_udps(request)
    await off_loop(request, store)
    return Response(status_code=200)


@router.delete(API_PREFIX + "/process_graphs/{process_graph_id}")
def delete_process_graph(process_graph_id: str, user: User, backend: BackendDep) -> Response:
    if not backend.process_graphs.delete(user, process_graph_id):
        raise e.ProcessGraphNotFound(f"User-defined process '{process_graph_id}' does not exist.")
    return Response(status_code=204)


@router.post(API_PREFIX + "/validation")
async def validation(request: Request, user: User, backend: BackendDep) -> dict[str, Any]:
    doc = await read_json(request)
    problems = await off_loop(request, backend.problems, user, doc, own_udps(request))
    return {"errors": [{"code": p.code, "message": p.message} for p in problems]}


@router.post(API_PREFIX + "/result")
async def result(request: Request, user: User, backend: BackendDep) -> Response:
    doc = await read_json(request)
    process = doc.get("process")
    if not isinstance(process, dict):
        raise e.ProcessGraphMissing("Invalid process specified. It doesn't contain a process graph.")

    def compute() -> Path:
        backend.validate(user, process, own)
        extent = simulate.extent_of(process)
        if extent.area_km2 > SYNC_MAX_KM2:
            raise e.ApiError(
                "The process is too complex for synchronous processing. Please use a batch job instead.",
                status=400,
                code="ProcessGraphComplexity",
            )
        path = Path(tempfile.mkdtemp(prefix="openeo-sync-")) / "result.tif"
        simulate.write_geotiff(path, extent)
        return path

    own = own_udps(request)
    tmp = await off_loop(request, compute)
    return FileResponse(
        tmp,
        media_type="image/tiff; application=geotiff",
        background=BackgroundTask(_remove_tree, tmp.parent),
    )


def _remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
