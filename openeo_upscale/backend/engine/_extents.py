"""Where a load takes its area, UTM zone, dates and scenes from: shared by ``load_collection``
(:mod:`.cubes_load`) and ``load_stac`` (:mod:`.cubes_stac`).

A null ``spatial_extent`` may come from the graph: the union of the geometries and boxes of the
``filter_spatial``, ``filter_bbox`` and ``aggregate_spatial`` nodes whose argument can be resolved
(a parameter or a literal), as Copernicus Data Space pushes these down. ``properties`` callbacks
filter scenes (or items) by the attribute named after the last ``:`` of the property.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import shapely

from openeo_upscale.backend.engine.context import EvalContext, ProcessArgumentError
from openeo_upscale.backend.engine.cubes_spatial import as_vector_cube, bbox_bounds

__all__ = ["Bounds", "extent_from_graph", "keep_scene", "lonlat_bounds", "scene_filter", "temporal_range",
           "union_bounds", "utm_bounds", "utm_epsg"]

_EXTENT_SOURCES = {"filter_spatial": "geometries", "filter_bbox": "extent", "aggregate_spatial": "geometries"}
Bounds = tuple[float, float, float, float]


def utm_epsg(lon: float, lat: float) -> int:
    """The EPSG code of the WGS 84 / UTM zone containing (lon, lat)."""
    zone = min(60, max(1, math.floor((lon + 180.0) / 6.0) + 1))
    return (32600 if lat >= 0 else 32700) + zone


def extent_from_graph(ctx: EvalContext) -> list[Any]:
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


def lonlat_bounds(extent: Any) -> Bounds:
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


def union_bounds(bounds: list[Bounds]) -> Bounds:
    return (
        min(b[0] for b in bounds),
        min(b[1] for b in bounds),
        max(b[2] for b in bounds),
        max(b[3] for b in bounds),
    )


def utm_bounds(extent: Any, epsg: int) -> Bounds:
    if isinstance(extent, Mapping) and {"west", "south", "east", "north"} <= set(extent):
        return bbox_bounds(extent, epsg)
    shapes = as_vector_cube(extent, "spatial_extent").in_crs(epsg)
    w, s, e, n = shapely.union_all(shapes).bounds
    return w, s, e, n


def scene_filter(properties: Any) -> dict[str, Any]:
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


def keep_scene(scene: Any, filters: Mapping[str, Any]) -> bool:
    for attribute, condition in filters.items():
        if not hasattr(scene, attribute):
            raise ProcessArgumentError(f"scenes have no property '{attribute}'", parameter="properties")
        verdict = condition(value=getattr(scene, attribute))
        if not bool(np.all(np.asarray(verdict if verdict is not None else False))):
            return False
    return True


def temporal_range(extent: Any) -> tuple[str, str]:
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
