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
from collections.abc import Mapping, MutableMapping
from typing import Any

import xarray as xr

from openeo_upscale.backend.engine._extents import (
    extent_from_graph,
    keep_scene,
    lonlat_bounds,
    scene_filter,
    temporal_range,
    union_bounds,
    utm_bounds,
    utm_epsg,
)
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
        found = extent_from_graph(ctx)
        if not found:
            raise ProcessArgumentError(
                "no spatial extent: give one, or filter the cube spatially", parameter="spatial_extent"
            )
        extent = list(union_bounds([lonlat_bounds(v) for v in found]))
    west, south, east, north = lonlat_bounds(extent)
    epsg = utm_epsg((west + east) / 2, (south + north) / 2)
    if isinstance(extent, list | tuple):
        bounds = bbox_bounds({"west": west, "south": south, "east": east, "north": north}, epsg)
    else:
        bounds = utm_bounds(extent, epsg)

    start, end = temporal_range(args.get("temporal_extent"))
    filters = scene_filter(args.get("properties"))
    scenes = [s for s in provider.acquisitions(epsg, bounds, start, end) if keep_scene(s, filters)]
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
