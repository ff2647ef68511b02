"""Discovery routes: what the backend is and offers, none of them authenticated.

`router` holds the well-known document, the capabilities (which list every endpoint of the app),
conformance, file formats, UDF runtimes and service types; `catalog` the collections, the
processes and the UDPs of the backend's folders (``/udp``).
"""

from __future__ import annotations

import sys
from importlib.metadata import version
from typing import Any

from fastapi import APIRouter, Request

import openeo_upscale
from openeo_upscale.backend import errors as e
from openeo_upscale.backend.collections import COLLECTIONS, collection_links
from openeo_upscale.backend.limits import bad_name
from openeo_upscale.backend.processes import process_specs
from openeo_upscale.backend.routes._common import API_PREFIX, API_VERSION, BackendDep, base_url

router = APIRouter()
catalog = APIRouter()


@router.get("/.well-known/openeo")
def well_known(request: Request) -> dict[str, Any]:
    return {"versions": [{"url": base_url(request) + "/", "api_version": API_VERSION, "production": False}]}


@router.get(API_PREFIX + "/")
def capabilities(request: Request, backend: BackendDep) -> dict[str, Any]:
    base = base_url(request)
    config = backend.config
    endpoints = request.app.state.endpoints  # every route of the API, read once by `create_app`
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


@router.get(API_PREFIX + "/conformance")
def conformance() -> dict[str, Any]:
    return {
        "conformsTo": [
            "https://api.openeo.org/1.2.0",
            "https://api.openeo.org/extensions/commercial-data/0.1.0",
            "http://www.opengis.net/spec/ogcapi-common-1/1.0/conf/core",
            "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
        ]
    }


@router.get(API_PREFIX + "/file_formats")
def file_formats() -> dict[str, Any]:
    def fmt(title: str, *types: str) -> dict[str, Any]:
        return {"title": title, "gis_data_types": list(types or ("raster",)), "parameters": {}}

    # What save_result writes (engine/output.py) and load_url reads (engine/cubes_url.py).
    return {
        "input": {"GTiff": fmt("GeoTIFF"), "GeoJSON": fmt("GeoJSON", "vector"),
                  "Parquet": fmt("GeoParquet", "vector")},
        "output": {"GTiff": fmt("GeoTIFF"), "netCDF": fmt("netCDF"), "PNG": fmt("PNG picture"),
                   "CSV": fmt("CSV table of a vector cube's values", "vector")},
    }


@router.get(API_PREFIX + "/udf_runtimes")
def udf_runtimes() -> dict[str, Any]:
    # Real mode runs Python UDFs on this interpreter with the openeo client's UDF runtime.
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    libraries = {name: {"version": version(name)} for name in ("openeo", "numpy", "xarray", "pandas")}
    return {"Python": {"title": f"Python {python}", "type": "language", "default": python,
                       "versions": {python: {"libraries": libraries}}}}


@router.get(API_PREFIX + "/service_types")
def service_types() -> dict[str, Any]:
    return {}


@catalog.get(API_PREFIX + "/collections")
def collections(request: Request) -> dict[str, Any]:
    base = base_url(request)
    return {
        "collections": [collection_links(c, base) for c in COLLECTIONS.values()],
        "links": [{"rel": "self", "href": f"{base}/collections"}],
    }


@catalog.get(API_PREFIX + "/collections/{collection_id}")
def collection(request: Request, collection_id: str) -> dict[str, Any]:
    if collection_id not in COLLECTIONS:
        raise e.CollectionNotFound(f"Collection '{collection_id}' does not exist.")
    return collection_links(COLLECTIONS[collection_id], base_url(request))


@catalog.get(API_PREFIX + "/processes")
def processes(backend: BackendDep) -> dict[str, Any]:
    specs = process_specs()
    if backend.available is not None:
        specs = [spec for spec in specs if spec["id"] in backend.available]
    return {"processes": specs, "links": []}


@catalog.get(API_PREFIX + "/udp/{name}.json")
def udp_document(name: str, backend: BackendDep) -> dict[str, Any]:
    doc = None if bad_name(name) else backend.resolver.by_name(name)
    if doc is None:
        raise e.ProcessGraphNotFound(f"User-defined process '{name}' does not exist.")
    return doc


@catalog.get(API_PREFIX + "/udp")
def udp_listing(request: Request, backend: BackendDep) -> dict[str, Any]:
    base = base_url(request)
    return {
        "processes": [{"id": n, "href": f"{base}/udp/{n}.json"} for n in backend.resolver.local_names()],
        "links": [],
    }
