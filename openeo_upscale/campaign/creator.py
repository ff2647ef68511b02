"""The job creator's parameter logic: which value each UDP parameter gets for one task.

Where a value comes from, first match wins:

1. the task: a column named like the parameter, or the column `column_map` names for it;
2. the campaign `defaults`;
3. the `default` of the parameter in the UDP.

Spatial parameters are derived from the tile instead (a mapped or same-named column may hold the
geometry to use: a shapely geometry, WKT or a GeoJSON mapping):

- a `geojson` parameter gets the tile geometry as GeoJSON in EPSG:4326;
- a `bounding-box` parameter whose schema declares a `crs` property gets the tile's native extent,
  ``{"west", "south", "east", "north", "crs": epsg}`` in UTM metres, exactly the tile;
- a `bounding-box` parameter whose schema has no `crs` property gets the lon/lat bounds of the tile
  geometry: without a `crs` field the backend reads the box as EPSG:4326, so UTM metres would land
  somewhere else entirely (the shared max_ndvi.json does declare `crs`, so it gets the UTM box);
- a parameter whose schema is a choice (`anyOf`, `oneOf` or a list of schemas) is a bounding box if
  one branch is, since the box is the exact tile; otherwise GeoJSON if one branch is GeoJSON.

Columns that are not UDP parameters (tile_id, epsg, west ... north, geometry, area_km2,
aoi_fraction, state, job_id, backend, attempts, ...) are never passed. A missing cell (None, NaN)
counts as absent, so the next source applies.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import openeo
import pandas as pd
import pyproj
import requests
import shapely
import shapely.errors
import shapely.geometry
from shapely.geometry.base import BaseGeometry

from openeo_upscale.errors import ParameterError
from openeo_upscale.grid.aoi import transform

__all__ = ["Udp", "parameters_for", "plain", "row_cell"]

_MISSING = object()


@dataclass(frozen=True)
class Udp:
    """A user-defined process: its id, where it lives, its declared parameters and its whole document."""

    process_id: str
    namespace: str | None
    parameters: list[dict[str, Any]]
    definition: dict[str, Any]

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any], namespace: str | None = None) -> Udp:
        """Build from a process document (a dict with `id`, `parameters`, `process_graph`, ...)."""
        process_id = doc.get("id")
        if not isinstance(process_id, str) or not process_id:
            raise ParameterError("UDP document has no 'id'", rule="id")
        parameters = doc.get("parameters") or []
        if not isinstance(parameters, list) or not all(
                isinstance(p, dict) and isinstance(p.get("name"), str) for p in parameters):
            raise ParameterError(f"UDP {process_id!r}: 'parameters' must be a list of objects with a 'name'",
                                 rule="parameters")
        return cls(process_id=process_id, namespace=namespace, parameters=[dict(p) for p in parameters],
                   definition=dict(doc))

    @classmethod
    def from_file(cls, path: str | Path, namespace: str | None = None) -> Udp:
        """Read a process document from a JSON file."""
        try:
            doc = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ParameterError(f"cannot read UDP from {path}: {exc}") from exc
        if not isinstance(doc, dict):
            raise ParameterError(f"UDP file {path} does not hold a JSON object")
        return cls.from_dict(doc, namespace)

    @classmethod
    def from_url(cls, url: str, *, timeout: float = 30.0) -> Udp:
        """Download a process document from its public URL, which also becomes its namespace."""
        try:
            answer = requests.get(url, timeout=timeout)
            answer.raise_for_status()
            doc = answer.json()
        except (requests.RequestException, ValueError) as exc:
            raise ParameterError(f"cannot download the UDP from {url}: {exc}") from exc
        if not isinstance(doc, dict):
            raise ParameterError(f"{url} does not hold a process document")
        return cls.from_dict(doc, url)

    @classmethod
    def from_backend(cls, connection: openeo.Connection, process_id: str) -> Udp:
        """A process stored on a backend as the account's own (``GET /process_graphs/{id}``).

        It has no namespace, so the campaign stores it on each of its backends as it is.
        """
        try:
            doc = connection.user_defined_process(process_id).describe()
        except (requests.RequestException, openeo.rest.OpenEoApiPlainError) as exc:
            raise ParameterError(f"cannot read the process {process_id!r} from the backend: {exc}") from exc
        return cls.from_dict(doc, None)

    @property
    def parameter_names(self) -> list[str]:
        """The declared parameter names, in order."""
        return [p["name"] for p in self.parameters]


# -- values ---------------------------------------------------------------------------------------------


def parameters_for(udp: Udp, task_row: Mapping[str, Any], *, defaults: Mapping[str, Any] | None = None,
                   column_map: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The UDP arguments for one task (see the module docstring for the order and the spatial rule).

    A parameter with no value anywhere is left out; `validate_parameters` reports it if required.
    """
    defaults = defaults or {}
    column_map = column_map or {}
    values: dict[str, Any] = {}
    for spec in udp.parameters:
        name = spec["name"]
        column = column_map.get(name, name)
        cell = _cell(task_row, column)
        kind = _spatial_kind(spec.get("schema"))
        if kind is not None:
            value: Any = _spatial_value(kind, spec.get("schema"), task_row,
                                        None if cell is _MISSING else cell)
        elif cell is not _MISSING:
            value = cell
        elif name in defaults and not _is_missing(defaults[name]):
            value = defaults[name]
        elif "default" in spec:
            value = spec["default"]
        else:
            continue
        if value is not _MISSING:
            values[name] = plain(value)
    return values


def _cell(row: Mapping[str, Any], column: str) -> Any:
    """The row's value in `column`, or `_MISSING` where absent or empty."""
    if column not in row:
        return _MISSING
    value = row[column]
    return _MISSING if _is_missing(value) else value


def row_cell(row: Mapping[str, Any], column: str) -> Any:
    """The row's value in `column`, or None where absent or empty (None, NaN, NA)."""
    value = _cell(row, column)
    return None if value is _MISSING else value


def _is_missing(value: Any) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    return isinstance(value, float | np.floating) and math.isnan(value)


def _branches(schema: Any) -> list[dict[str, Any]]:
    """The alternative schemas of a choice (a list, anyOf or oneOf), flattened; a plain schema is one."""
    if isinstance(schema, list):
        return [b for s in schema for b in _branches(s)]
    if isinstance(schema, dict):
        for key in ("anyOf", "oneOf"):
            if isinstance(schema.get(key), list):
                return [b for s in schema[key] for b in _branches(s)]
        return [schema]
    return []


def _spatial_kind(schema: Any) -> str | None:
    """'bbox-crs', 'bbox-lonlat', 'geojson' or None (not a spatial parameter)."""
    branches = _branches(schema)
    for branch in branches:
        if branch.get("subtype") == "bounding-box":
            return "bbox-crs" if "crs" in (branch.get("properties") or {}) else "bbox-lonlat"
    if any(branch.get("subtype") == "geojson" for branch in branches):
        return "geojson"
    return None


def _spatial_value(kind: str, schema: Any, row: Mapping[str, Any], source: Any) -> Any:
    """The tile as the parameter wants it, or `_MISSING` when the row has nothing to derive it from."""
    if _is_bbox(source):
        # A bounding box given as such (an exported job table holds these): used as it is where the
        # parameter takes a box with its crs, else read as a geometry in lon/lat.
        if kind == "bbox-crs":
            return dict(source)
        source = _bbox_geometry(source)
    geometry = _geometry(source if source is not None else _cell(row, "geometry"))
    if kind == "bbox-crs":
        extent = [_cell(row, key) for key in ("epsg", "west", "south", "east", "north")]
        if source is None and all(v is not _MISSING for v in extent):
            epsg, west, south, east, north = extent
            return {"west": west, "south": south, "east": east, "north": north, "crs": int(epsg)}
        if geometry is None:
            return _MISSING
        west, south, east, north = geometry.bounds
        return {"west": west, "south": south, "east": east, "north": north, "crs": 4326}
    if geometry is None:
        geometry = _native_box(row)
        if geometry is None:
            return _MISSING
    if kind == "bbox-lonlat":
        west, south, east, north = geometry.bounds
        return {"west": west, "south": south, "east": east, "north": north}
    return shapely.geometry.mapping(geometry)


_BBOX_KEYS = ("west", "south", "east", "north")


def _is_bbox(value: Any) -> bool:
    return isinstance(value, Mapping) and all(key in value for key in _BBOX_KEYS)


def _bbox_geometry(value: Mapping[str, Any]) -> BaseGeometry:
    """A bounding-box mapping as a lon/lat polygon (transformed from its `crs` where it has one)."""
    try:
        box = shapely.geometry.box(*(float(value[key]) for key in _BBOX_KEYS))
        crs = value.get("crs")
        return box if crs in (None, 4326, "4326", "EPSG:4326") else transform(box, crs, 4326)
    except (TypeError, ValueError, pyproj.exceptions.CRSError) as exc:
        raise ParameterError(f"cannot read a bounding box from {_show(dict(value))}: {exc}",
                             rule="geometry") from exc


def _geometry(value: Any) -> BaseGeometry | None:
    """A shapely geometry (EPSG:4326) from a shapely object, WKT text or a GeoJSON mapping."""
    if value is None or value is _MISSING:
        return None
    if isinstance(value, BaseGeometry):
        return value
    if isinstance(value, str):
        return shapely.from_wkt(value)
    if _is_bbox(value):
        return _bbox_geometry(value)
    if isinstance(value, Mapping):
        try:
            return shapely.geometry.shape(value)
        except (AttributeError, KeyError, TypeError, ValueError, shapely.errors.ShapelyError) as exc:
            raise ParameterError(f"cannot read a GeoJSON geometry from {_show(dict(value))}: {exc}",
                                 rule="geometry") from exc
    raise ParameterError(f"cannot read a geometry from a {type(value).__name__}", rule="geometry")


def _native_box(row: Mapping[str, Any]) -> BaseGeometry | None:
    """The tile's native extent transformed to EPSG:4326, where the row has no geometry."""
    extent = [_cell(row, key) for key in ("epsg", "west", "south", "east", "north")]
    if any(v is _MISSING for v in extent):
        return None
    epsg, west, south, east, north = extent
    return transform(shapely.geometry.box(west, south, east, north), int(epsg), 4326)


def plain(value: Any) -> Any:
    """JSON-serialisable plain Python: numpy scalars and arrays, tuples and mappings converted."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return [plain(v) for v in value.tolist()]
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    return value


def _show(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 80 else text[:77] + "..."
