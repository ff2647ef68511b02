"""Areas of interest: every accepted input becomes one valid, polygonal geometry with its CRS.

Accepted inputs (`AoiLike`):

- a lon/lat bbox `(west, south, east, north)`; `west > east` crosses the antimeridian;
- a dict `{"west", "south", "east", "north", "crs"?}` (openEO's spatial extent; `crs` defaults
  to EPSG:4326, a projected bbox is densified before it is reprojected);
- a GeoJSON mapping (geometry, Feature or FeatureCollection; lon/lat);
- a shapely geometry in lon/lat;
- a GeoDataFrame or GeoSeries in any CRS (all rows together form the area);
- a path to a GeoJSON, GeoPackage, GeoParquet or Shapefile file.

Lon/lat areas are treated as planar in degrees (GeoJSON's convention): an edge between two
vertices is straight in lon/lat, not a great circle.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, TypeAlias

import geopandas as gpd
import numpy as np
import pyproj
import shapely
from shapely.affinity import translate
from shapely.errors import GEOSException
from shapely.geometry import MultiPolygon, Polygon, box, shape
from shapely.geometry.base import BaseGeometry

from openeo_upscale.errors import GridError
from openeo_upscale.grid.formats import read_vector

AoiLike: TypeAlias = (
    "Aoi | Sequence[float] | Mapping[str, Any] | BaseGeometry | gpd.GeoDataFrame | gpd.GeoSeries"
    " | str | os.PathLike[str]"
)
"""Anything `load_aoi` accepts."""

LONLAT = pyproj.CRS.from_epsg(4326)
"""WGS 84 lon/lat (EPSG:4326, used with longitude first)."""
M_PER_DEG = 111_320.0
"""Metres per degree of latitude (and of longitude at the equator), for converting segment lengths."""
_BBOX_KEYS = ("west", "south", "east", "north")


def polygonal(geometry: BaseGeometry) -> BaseGeometry:
    """The polygons of a geometry (dropping points and lines of a collection), as one geometry.

    Returns an empty Polygon when there are none.
    """
    parts = [p for p in shapely.get_parts(geometry) if isinstance(p, Polygon | MultiPolygon)]
    polygons = [q for p in parts for q in shapely.get_parts(p) if not q.is_empty]
    if not polygons:
        return Polygon()
    return polygons[0] if len(polygons) == 1 else MultiPolygon(polygons)


@lru_cache(maxsize=256)
def transformer(source: pyproj.CRS | int, target: pyproj.CRS | int) -> pyproj.Transformer:
    """A cached lon-first (`always_xy`) transformer between two CRSs."""
    return pyproj.Transformer.from_crs(source, target, always_xy=True)


def transform(geometry: BaseGeometry, source: pyproj.CRS | int, target: pyproj.CRS | int) -> BaseGeometry:
    """Transform every vertex of a geometry (no densification: segment first where edges curve)."""
    forward = transformer(source, target)

    def apply(xy: np.ndarray) -> np.ndarray:
        x, y = forward.transform(xy[:, 0], xy[:, 1])
        return np.column_stack([x, y])

    return shapely.transform(geometry, apply)


def wrap_longitudes(geometry: BaseGeometry) -> BaseGeometry:
    """Cut a lon/lat geometry at ±180° and shift the pieces beyond it back into [-180, 180]."""
    west, _, east, _ = geometry.bounds
    if west >= -180.0 and east <= 180.0:
        return geometry
    pieces = []
    for turn in range(math.floor((west + 180.0) / 360.0), math.floor((east + 180.0) / 360.0) + 1):
        offset = 360.0 * turn
        piece = polygonal(shapely.intersection(geometry, box(offset - 180.0, -90.0, offset + 180.0, 90.0)))
        if not piece.is_empty:
            pieces.append(translate(piece, xoff=-offset))
    return polygonal(shapely.union_all(pieces))


def _unwrap_polygon(polygon: Polygon) -> Polygon:
    """Undo ±360° jumps in a polygon's longitudes (a reprojected polygon across the antimeridian)."""
    rings = [np.asarray(polygon.exterior.coords), *(np.asarray(r.coords) for r in polygon.interiors)]
    fixed: list[np.ndarray] = []
    for ring in rings:
        lon = np.unwrap(ring[:, 0], period=360.0)
        if fixed:  # keep holes beside the exterior, not a turn away
            lon -= 360.0 * np.round((lon.mean() - fixed[0][:, 0].mean()) / 360.0)
        fixed.append(np.column_stack([lon, ring[:, 1]]))
    return Polygon(fixed[0], fixed[1:])


@dataclass(frozen=True)
class Aoi:
    """An area of interest: a valid polygonal `geometry` in `crs`."""

    geometry: BaseGeometry
    crs: pyproj.CRS

    def lonlat(self, max_segment_m: float | None = None) -> BaseGeometry:
        """The area in lon/lat degrees, longitudes within ±180 (cut at the antimeridian).

        With `max_segment_m`, edges are first split into pieces of at most that many metres
        (degrees times 111 km for lon/lat sources) in the source CRS, so that they keep their shape
        in the projections they are carried into.
        """
        geometry = self.geometry
        if self.crs.is_geographic:
            if max_segment_m:
                geometry = shapely.segmentize(geometry, max_segment_m / M_PER_DEG)
            if self.crs.to_epsg() != 4326:
                geometry = transform(geometry, self.crs, LONLAT)
        else:
            if max_segment_m:
                metres_per_unit = self.crs.axis_info[0].unit_conversion_factor or 1.0
                geometry = shapely.segmentize(geometry, max_segment_m / metres_per_unit)
            geometry = transform(geometry, self.crs, LONLAT)
            if not np.isfinite(shapely.get_coordinates(geometry)).all():
                raise GridError(f"AOI cannot be transformed from {self.crs.name} to lon/lat "
                                "(it reaches beyond the area where that projection is defined)")
            west, _, east, _ = geometry.bounds
            if east - west > 180.0:  # maybe a polygon across the antimeridian, now torn apart
                geometry = shapely.union_all([
                    _unwrap_polygon(p) if p.bounds[2] - p.bounds[0] > 180.0 else p
                    for p in shapely.get_parts(polygonal(geometry))])
        return _repaired(wrap_longitudes(geometry), "after reprojection to lon/lat")


def load_aoi(aoi: AoiLike) -> Aoi:
    """Normalise any accepted input (see the module docstring) into an `Aoi`.

    Raises GridError naming the problem: an empty area, a geometry without area (a point or a
    line, or one that `shapely.make_valid` cannot repair into an area), an unknown input type or
    file format, a malformed bbox or an unknown CRS.
    """
    if isinstance(aoi, Aoi):
        return aoi
    if isinstance(aoi, gpd.GeoDataFrame | gpd.GeoSeries):
        return _from_frame(aoi, "AOI")
    if isinstance(aoi, BaseGeometry):
        return Aoi(_repaired(aoi), LONLAT)
    if isinstance(aoi, str | os.PathLike):
        path = Path(aoi)
        return _from_frame(read_vector(path), str(path))
    if isinstance(aoi, Mapping):
        if "type" in aoi:
            return Aoi(_repaired(_from_geojson(aoi)), LONLAT)
        missing = [k for k in _BBOX_KEYS if k not in aoi]
        if missing:
            raise GridError("AOI dict needs the keys west, south, east and north "
                            f"(missing {', '.join(missing)}) or a GeoJSON 'type'")
        return _bbox([aoi[k] for k in _BBOX_KEYS], _crs(aoi.get("crs")))
    if isinstance(aoi, Sequence | np.ndarray) and not isinstance(aoi, bytes):
        return _bbox(list(aoi), LONLAT)
    raise GridError(f"unsupported AOI type {type(aoi).__name__}: give a bbox (W, S, E, N), a bbox dict, "
                    "a GeoJSON mapping, a shapely geometry, a GeoDataFrame/GeoSeries or a file path")


def _crs(value: object) -> pyproj.CRS:
    if value is None:
        return LONLAT
    try:
        return pyproj.CRS.from_user_input(value)
    except pyproj.exceptions.CRSError as exc:
        raise GridError(f"unknown AOI crs {value!r}: {exc}") from exc


def _bbox(values: list[Any], crs: pyproj.CRS) -> Aoi:
    if len(values) != 4:
        raise GridError(f"a bbox needs 4 numbers (west, south, east, north), got {len(values)}")
    try:
        west, south, east, north = (float(v) for v in values)
    except (TypeError, ValueError):
        raise GridError(f"a bbox needs 4 numbers (west, south, east, north), got {values!r}") from None
    if not all(math.isfinite(v) for v in (west, south, east, north)):
        raise GridError(f"bbox values must be finite, got {values!r}")
    if south >= north:
        raise GridError(f"bbox south ({south:g}) must be less than north ({north:g})")
    if west == east:
        raise GridError(f"bbox west and east are equal ({west:g}): the AOI is empty")
    if not crs.is_geographic:
        if west > east:
            raise GridError(f"bbox west ({west:g}) must be less than east ({east:g}) in a projected CRS")
        return Aoi(box(west, south, east, north), crs)
    if not (-180.0 <= west <= 180.0 and -180.0 <= east <= 180.0):
        raise GridError(f"bbox longitudes must be within -180..180, got west={west:g}, east={east:g}")
    if not (south >= -90.0 and north <= 90.0):
        raise GridError(f"bbox latitudes must be within -90..90, got south={south:g}, north={north:g}")
    if west > east:  # across the antimeridian: one box either side of it
        return Aoi(MultiPolygon([box(west, south, 180.0, north), box(-180.0, south, east, north)]), crs)
    return Aoi(box(west, south, east, north), crs)


def _from_geojson(mapping: Mapping[str, Any]) -> BaseGeometry:
    kind = mapping.get("type")
    try:
        if kind == "FeatureCollection":
            geometries = [shape(f["geometry"]) for f in mapping.get("features", []) if f.get("geometry")]
            return shapely.union_all(shapely.make_valid(np.array(geometries, dtype=object))) \
                if geometries else Polygon()
        if kind == "Feature":
            return shape(mapping["geometry"]) if mapping.get("geometry") else Polygon()
        return shape(mapping)
    except (KeyError, TypeError, ValueError, AttributeError, GEOSException) as exc:
        raise GridError(f"AOI is not valid GeoJSON ({kind!r}): {exc}") from exc


def _from_frame(frame: gpd.GeoDataFrame | gpd.GeoSeries, what: str) -> Aoi:
    series = frame.geometry if isinstance(frame, gpd.GeoDataFrame) else frame
    geometries = np.asarray(series.values, dtype=object)
    geometries = geometries[~(shapely.is_missing(geometries) | shapely.is_empty(geometries))]
    if len(geometries) == 0:
        raise GridError(f"{what} is empty: it has no geometries")
    crs = series.crs
    if crs is None:
        # Like a bare shapely geometry, a frame without a CRS is taken as lon/lat, but only
        # when its coordinates can be degrees.
        west, south, east, north = shapely.total_bounds(geometries)
        if not (west >= -360.0 and east <= 360.0 and south >= -90.0 and north <= 90.0):
            raise GridError(f"{what} has no CRS and its coordinates are not lon/lat degrees; set one "
                            "with .set_crs()")
        crs = LONLAT
    try:
        merged = shapely.union_all(shapely.make_valid(geometries))
    except GEOSException as exc:
        raise GridError(f"{what} geometries cannot be merged into one area: {exc}") from exc
    return Aoi(_repaired(merged), pyproj.CRS.from_user_input(crs))


def _repaired(geometry: BaseGeometry, context: str = "") -> BaseGeometry:
    """A valid polygonal geometry, repaired with make_valid where needed, or GridError."""
    where = f" {context}" if context else ""
    if geometry is None or geometry.is_empty:
        raise GridError(f"AOI is empty{where}")
    if not np.isfinite(shapely.get_coordinates(geometry)).all():
        raise GridError(f"AOI has non-finite (NaN or infinite) coordinates{where}")
    if not geometry.is_valid:
        reason = shapely.is_valid_reason(geometry)
        try:
            geometry = shapely.make_valid(geometry)
        except GEOSException as exc:
            raise GridError(f"AOI geometry is invalid ({reason}) and cannot be repaired{where}: "
                            f"{exc}") from exc
        area = polygonal(geometry)
        if area.is_empty or area.area <= 0.0:
            raise GridError(f"AOI geometry is invalid ({reason}) and make_valid leaves no area{where}")
        return area
    area = polygonal(geometry)
    if area.is_empty or area.area <= 0.0:
        raise GridError(f"AOI has no area{where}: a {geometry.geom_type} cannot be tiled; "
                        "give a polygon or a bbox")
    return area
