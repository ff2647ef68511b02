"""The job creator: a campaign's tiles become the store's task rows (`tile_records`, `task_rows`),
each with the value every UDP parameter gets for it (`parameters_for`).

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
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import openeo
import pandas as pd
import pyproj
import requests
import shapely
import shapely.errors
import shapely.geometry
from shapely.geometry.base import BaseGeometry

from openeo_upscale.campaign.settings import job_options
from openeo_upscale.errors import CampaignError, ParameterError
from openeo_upscale.grid.aoi import transform

__all__ = ["Udp", "parameters_for", "plain", "row_cell", "spatial_parameters"]

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


def spatial_parameters(udp: Udp) -> list[str]:
    """The UDP's parameters whose value `parameters_for` derives from the tile (its geometry or
    extent), in order: what changes when a tile is replaced by smaller ones."""
    return [spec["name"] for spec in udp.parameters if _spatial_kind(spec.get("schema")) is not None]


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


# -- tasks from tiles ------------------------------------------------------------------------------------

TILE_COLUMNS = ("tile_id", "epsg", "west", "south", "east", "north", "geometry")
"""Columns of a tile that the store keeps in their own columns."""

PIN_COLUMN = "backend"
"""A tiles column naming the only backend a task may run on."""
JOB_OPTIONS_COLUMN = "job_options"
"""A tiles column with the tile's own backend job options (a JSON object, or its text)."""

MAX_PROBLEMS = 20
"""How many problems a campaign-wide refusal lists before it only counts."""

_TILE_ID = re.compile(r"[A-Za-z0-9_.-]+")


def tile_id_problem(tile_id: str) -> str | None:
    """Why `tile_id` cannot name a task's result folder, or None.

    A tile id becomes one folder under the campaign's output, so it must be a single, plain path
    segment: letters, digits, ``_``, ``-`` and ``.``, and not ``.`` or ``..``.
    """
    if tile_id in ("", ".", ".."):
        return "is empty" if not tile_id else f"is {tile_id!r}"
    if len(tile_id) > 200:
        return "is longer than 200 characters"
    if not _TILE_ID.fullmatch(tile_id):
        return "holds characters other than letters, digits, '_', '-' and '.'"
    return None


def check_tile_ids(tile_ids: Iterable[Any], *, max_problems: int = MAX_PROBLEMS) -> None:
    """`CampaignError` listing the tile ids that are not safe folder names (see `tile_id_problem`)."""
    bad: list[str] = []
    count = 0
    for tile_id in tile_ids:
        problem = tile_id_problem(str(tile_id))
        if problem is not None:
            count += 1
            if len(bad) < max_problems:
                bad.append(f"{str(tile_id)!r} {problem}")
    if count:
        more = f"; ... ({len(bad)} of {count} shown)" if count > len(bad) else ""
        raise CampaignError(f"{count} tile ids are not safe folder names (letters, digits, '_', '-', '.'; "
                            f"not '.' or '..'): {'; '.join(bad)}{more}")


def tile_records(tiles: gpd.GeoDataFrame | Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The tiles as records with a unique, safe ``tile_id`` and their geometry as lon/lat WKT.

    Raises `CampaignError` for no tiles, repeated ids or ids that cannot name a folder."""
    if isinstance(tiles, gpd.GeoDataFrame):
        frame = tiles
        if frame.crs is not None and frame.crs.to_epsg() != 4326:
            # GeoJSON parameters must be lon/lat: a projected geometry sent as-is lands elsewhere.
            frame = frame.to_crs(4326)
        frame = pd.DataFrame(frame)
        name = tiles.geometry.name
        frame[name] = [g.wkt if g is not None else None for g in frame[name]]
        if name != "geometry":
            frame = frame.rename(columns={name: "geometry"})
    else:
        frame = pd.DataFrame(list(tiles))
    if "tile_id" not in frame.columns:
        frame = frame.reset_index(names="tile_id")
    frame["tile_id"] = frame["tile_id"].astype(str)
    check_tile_ids(frame["tile_id"])
    duplicated = frame["tile_id"][frame["tile_id"].duplicated()]
    if not duplicated.empty:
        raise CampaignError(f"tile ids must be unique; repeated: {sorted(set(duplicated))[:5]}")
    if frame.empty:
        raise CampaignError("no tiles given")
    records: list[dict[str, Any]] = frame.to_dict("records")
    return records


def task_rows(udp: Udp, records: Iterable[Mapping[str, Any]], *, defaults: Mapping[str, Any] | None = None,
              column_map: Mapping[str, str] | None = None) -> Iterator[dict[str, Any]]:
    """The store's row of each tile record (from `tile_records`): its tile columns, its pinned
    backend and job options, and the UDP's arguments for it (see `parameters_for`)."""
    for record in records:
        yield _task_row(udp, record, defaults, column_map)


def _task_row(udp: Udp, record: Mapping[str, Any], defaults: Mapping[str, Any] | None,
              column_map: Mapping[str, str] | None) -> dict[str, Any]:
    row: dict[str, Any] = {key: record.get(key) for key in TILE_COLUMNS if key in record}
    for key in ("epsg",):
        if row.get(key) is not None and not pd.isna(row[key]):
            row[key] = int(row[key])
    for key in ("west", "south", "east", "north"):
        if key in row and row[key] is not None:
            row[key] = None if pd.isna(row[key]) else float(row[key])
    pin = record.get(PIN_COLUMN)
    row["pinned_backend"] = None if pin is None or (isinstance(pin, float) and pd.isna(pin)) else str(pin)
    row["parameters"] = parameters_for(udp, record, defaults=defaults, column_map=column_map)
    options = record.get(JOB_OPTIONS_COLUMN)
    if options is not None and not (isinstance(options, float) and pd.isna(options)) and options != "":
        row["job_options"] = job_options(options, f"tile {record.get('tile_id')}")
    return row
