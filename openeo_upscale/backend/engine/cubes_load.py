"""``load_collection``: the spatial extent, the UTM zone, scene filters and the data provider.

A collection's data comes from a *provider*: an object or module with
``acquisitions(epsg, bounds, start, end) -> [Scene(date, cloud_cover, ...)]`` and
``load(epsg, bounds, dates, bands) -> DataArray (t, bands, y, x)`` (bounds in metres of the
UTM zone ``epsg``; see :mod:`openeo_upscale.backend.data.sentinel2`). The job's services may
map collection ids to providers under ``"collections"``; without it `DEFAULT_PROVIDERS` serve
``SENTINEL2_L2A``, ``ESA_WORLDCOVER_10M_2021_V2`` (its land cover) and ``SENTINEL1_GRD`` (radar
backscatter of that land cover) synthetically.

A null ``spatial_extent`` takes the extent the backend computed for the whole job
(``services["job_extent"]``, lon/lat), or else the union of the geometries and boxes of the
``filter_spatial``, ``filter_bbox`` and ``aggregate_spatial`` nodes of the same graph whose
argument can be resolved here (a parameter or a literal), as Copernicus Data Space pushes
these down.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Mapping, MutableMapping
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import shapely
import xarray as xr

from openeo_upscale.backend.engine.context import Args, EvalContext, ProcessArgumentError
from openeo_upscale.backend.engine.cubes_spatial import (
    VectorCube,
    as_vector_cube,
    bbox_bounds,
    clip_to_geometries,
    crop_to_bounds,
)
from openeo_upscale.backend.engine.registry import PROCESSES

__all__ = ["DEFAULT_PROVIDERS", "utm_epsg"]

DEFAULT_PROVIDERS = {
    "SENTINEL2_L2A": "openeo_upscale.backend.data.sentinel2",
    "ESA_WORLDCOVER_10M_2021_V2": "openeo_upscale.backend.data.worldcover",
    "SENTINEL1_GRD": "openeo_upscale.backend.data.sentinel1",
}
"""Collection id -> provider module, used when the job's services name no providers."""

_EXTENT_SOURCES = {"filter_spatial": "geometries", "filter_bbox": "extent", "aggregate_spatial": "geometries"}
_Bounds = tuple[float, float, float, float]


def utm_epsg(lon: float, lat: float) -> int:
    """The EPSG code of the WGS 84 / UTM zone containing (lon, lat)."""
    zone = min(60, max(1, math.floor((lon + 180.0) / 6.0) + 1))
    return (32600 if lat >= 0 else 32700) + zone


def _provider(ctx: EvalContext, collection_id: str) -> Any:
    providers = ctx.services.get("collections")
    if providers is not None:
        provider = providers.get(collection_id)
    else:
        module = DEFAULT_PROVIDERS.get(collection_id)
        provider = importlib.import_module(module) if module else None
    if provider is None:
        raise ProcessArgumentError(f"collection '{collection_id}' does not exist", parameter="id")
    return provider


def _extent_from_graph(ctx: EvalContext) -> list[Any]:
    found = []
    for node in ctx.graph.values():
        name = _EXTENT_SOURCES.get(node.get("process_id"))
        if name is None or name not in node.get("arguments", {}):
            continue
        try:
            value = ctx.resolve(node["arguments"][name])
        except ProcessArgumentError:
            continue
        if value is not None:
            found.append(value)
    return found


def _lonlat_bounds(extent: Any) -> _Bounds:
    if (
        isinstance(extent, list | tuple)
        and len(extent) == 4
        and all(isinstance(v, int | float) for v in extent)
    ):
        w, s, e, n = (float(v) for v in extent)
        return w, s, e, n
    if isinstance(extent, Mapping) and {"west", "south", "east", "north"} <= set(extent):
        return bbox_bounds(extent, 4326)
    shapes = as_vector_cube(extent, "spatial_extent").in_crs(4326)
    if not shapes:
        raise ProcessArgumentError("the spatial extent has no geometries", parameter="spatial_extent")
    w, s, e, n = shapely.union_all(shapes).bounds
    return w, s, e, n


def _union(bounds: list[_Bounds]) -> _Bounds:
    return (
        min(b[0] for b in bounds),
        min(b[1] for b in bounds),
        max(b[2] for b in bounds),
        max(b[3] for b in bounds),
    )


def _utm_bounds(extent: Any, epsg: int) -> _Bounds:
    if isinstance(extent, Mapping) and {"west", "south", "east", "north"} <= set(extent):
        return bbox_bounds(extent, epsg)
    shapes = as_vector_cube(extent, "spatial_extent").in_crs(epsg)
    w, s, e, n = shapely.union_all(shapes).bounds
    return w, s, e, n


def _scene_filter(properties: Any) -> dict[str, Any]:
    if properties is None:
        return {}
    if not isinstance(properties, Mapping):
        raise ProcessArgumentError(
            "'properties' must map property names to callbacks", parameter="properties"
        )
    filters = {}
    for name, condition in properties.items():
        attribute = str(name).split(":")[-1]
        if not callable(condition):
            raise ProcessArgumentError(f"the filter on '{name}' must be a process", parameter="properties")
        filters[attribute] = condition
    return filters


def _keep(scene: Any, filters: Mapping[str, Any]) -> bool:
    for attribute, condition in filters.items():
        if not hasattr(scene, attribute):
            raise ProcessArgumentError(f"scenes have no property '{attribute}'", parameter="properties")
        verdict = condition(value=getattr(scene, attribute))
        if not bool(np.all(np.asarray(verdict if verdict is not None else False))):
            return False
    return True


def _temporal(extent: Any) -> tuple[str, str]:
    if extent is None:
        extent = [None, None]
    if not isinstance(extent, list | tuple) or len(extent) != 2:
        raise ProcessArgumentError("'temporal_extent' must be [start, end]", parameter="temporal_extent")
    start = str(extent[0]) if extent[0] is not None else "1970-01-01"
    end = (
        str(extent[1])
        if extent[1] is not None
        else (datetime.now(UTC).date() + timedelta(days=1)).isoformat()
    )
    return start, end


@PROCESSES.register("load_collection")
def load_collection(args: Args, ctx: EvalContext) -> xr.DataArray:
    """Load a collection in the UTM zone of the extent's centre, pixels whose centre is inside.

    ``properties`` callbacks (``{"eo:cloud_cover": process}``) get ``value`` per scene and keep
    the scene when they return true. The pixels loaded are added to ``services["usage"]
    ["input_pixels"]`` when the job counts usage.
    """
    collection_id = str(args["id"])
    provider = _provider(ctx, collection_id)
    extent = args.get("spatial_extent")
    if extent is None:
        extent = ctx.services.get("job_extent")
    if extent is None:
        found = _extent_from_graph(ctx)
        if not found:
            raise ProcessArgumentError(
                "no spatial extent: give one, or filter the cube spatially", parameter="spatial_extent"
            )
        extent = list(_union([_lonlat_bounds(v) for v in found]))
    west, south, east, north = _lonlat_bounds(extent)
    epsg = utm_epsg((west + east) / 2, (south + north) / 2)
    if isinstance(extent, list | tuple):
        bounds = bbox_bounds({"west": west, "south": south, "east": east, "north": north}, epsg)
    else:
        bounds = _utm_bounds(extent, epsg)

    start, end = _temporal(args.get("temporal_extent"))
    filters = _scene_filter(args.get("properties"))
    scenes = [s for s in provider.acquisitions(epsg, bounds, start, end) if _keep(s, filters)]
    bands = args.get("bands") or list(getattr(provider, "BANDS", []))
    if not bands:
        raise ProcessArgumentError("name the bands to load", parameter="bands")
    try:
        cube = provider.load(epsg, bounds, [s.date for s in scenes], list(bands))
    except ValueError as exc:
        raise ProcessArgumentError(str(exc)) from exc
    usage = ctx.services.get("usage")
    if isinstance(usage, MutableMapping):
        usage["input_pixels"] = usage.get("input_pixels", 0) + int(cube.size)
    cube = crop_to_bounds(cube, bounds)
    if not (isinstance(extent, list | tuple) or (isinstance(extent, Mapping) and "west" in extent)):
        vector: VectorCube = as_vector_cube(extent, "spatial_extent")
        cube = clip_to_geometries(cube, vector)
    return cube
