"""A campaign's tasks as a job table of the ``openeo`` client (``openeo.extra.job_management``), and back.

`export_tasks` writes one row per task in the column layout of the client's job database
(``MultiBackendJobManager``): ``id`` (job id), ``backend_name``, ``status`` (the client's status
strings, see `CLIENT_STATUS`), ``start_time``, ``running_start_time``, the usage columns ``cpu``,
``memory``, ``duration`` (``"<value> <unit>"``, as the client formats them) and ``costs``; then
the tile columns (``tile_id, epsg, west, south, east, north``), one column per UDP parameter, the
``upscale_*`` columns the client does not know, and ``geometry`` (lon/lat). CSV holds the geometry as
WKT; Parquet is GeoParquet (WKB, EPSG:4326) that ``geopandas.read_parquet`` and the client's
``ParquetJobDatabase`` read. Tasks are read and written a chunk at a time, so a campaign of 100,000
tiles does not have to fit in memory. A parameter whose values are not all of one scalar type
(lists, objects, mixed types) is written as JSON text.

`import_tasks` reads such a file, or one the client wrote itself, into rows for `Store.add_tasks`;
`read_job_rows` reads it safely while the client may be rewriting it (retrying a read cut short),
and `takeover` turns the client's job ids and statuses into adopted tasks.
Every column that is not a bookkeeping column (`BOOKKEEPING_COLUMNS`) is a UDP parameter; an empty
cell leaves the parameter out (so the campaign default applies). Text cells that hold a list or an
object, as JSON or as a Python literal (the client's CSV stores list and dict cells with ``str()``),
are parsed back.
"""

from __future__ import annotations

import ast
import csv
import enum
import io
import json
import math
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import UTC, datetime
from itertools import islice
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pyproj
import shapely
import shapely.ops

from openeo_upscale.campaign.creator import PIN_COLUMN, TILE_COLUMNS
from openeo_upscale.campaign.models import Task
from openeo_upscale.campaign.states import JobStatus, TaskState
from openeo_upscale.campaign.store import Store
from openeo_upscale.errors import UpscaleError

__all__ = ["BOOKKEEPING_COLUMNS", "CLIENT_STATUS", "EXPORT_CHUNK", "READ_ATTEMPTS", "READ_BACKOFF",
           "ClientStatus", "export_tasks", "import_tasks", "read_job_rows", "task_rows_of",
           "tile_records_of"]

EXPORT_CHUNK = 10_000
"""Tasks read from the store and written to the file at a time."""

READ_ATTEMPTS = 6
"""Reads of a job table another process may be rewriting, before giving up (`read_job_rows`)."""

READ_BACKOFF = 0.05
"""Seconds before the second read of a job table; doubled before each further one."""


class ClientStatus(enum.StrEnum):
    """A job's status in the ``openeo`` client's job database: the backend's (`JobStatus`) plus
    ``not_started`` and ``skipped`` of its own."""

    NOT_STARTED = "not_started"
    CREATED = JobStatus.CREATED.value
    QUEUED = JobStatus.QUEUED.value
    RUNNING = JobStatus.RUNNING.value
    FINISHED = JobStatus.FINISHED.value
    ERROR = JobStatus.ERROR.value
    CANCELED = JobStatus.CANCELED.value
    SKIPPED = "skipped"


CLIENT_STATUS: Mapping[TaskState, ClientStatus] = MappingProxyType({
    TaskState.PENDING: ClientStatus.NOT_STARTED,
    # No job is known to exist yet while it is being created: restarting it is the client's only option.
    TaskState.CREATING: ClientStatus.NOT_STARTED,
    TaskState.QUEUED: ClientStatus.QUEUED,
    TaskState.RUNNING: ClientStatus.RUNNING,
    TaskState.FINISHED: ClientStatus.FINISHED,
    TaskState.DOWNLOADING: ClientStatus.FINISHED,
    TaskState.DONE: ClientStatus.FINISHED,
    TaskState.FAILED: ClientStatus.ERROR,
    TaskState.CANCELED: ClientStatus.CANCELED,
    TaskState.SKIPPED: ClientStatus.SKIPPED,
    # Replaced by its quadrants, rows of their own: the client must not run the tile again.
    TaskState.SPLIT: ClientStatus.SKIPPED,
})
"""The client's status of a task in each of our states (the backend's job status is in our state)."""

_JOB_COLUMNS = ("id", "backend_name", "status", "start_time", "running_start_time")
_USAGE_COLUMNS = ("cpu", "memory", "duration")
_TILE_COLUMNS = ("tile_id", "epsg", "west", "south", "east", "north")
_UPSCALE_COLUMNS = ("upscale_state", "upscale_attempts", "upscale_error", "upscale_pinned_backend")
_GEOMETRY = "geometry"

BOOKKEEPING_COLUMNS: frozenset[str] = frozenset({
    *_JOB_COLUMNS, *_USAGE_COLUMNS, "costs", *_TILE_COLUMNS, *_UPSCALE_COLUMNS, _GEOMETRY,
    # Columns the client or the grid add that are not UDP parameters either.
    "input_pixel", "network_received", "max_executor_memory", "sentinelhub", "area_km2", "aoi_fraction",
    "Unnamed: 0",
})
"""Columns that are never UDP parameters: job bookkeeping, tile layout and geometry."""

_FORMATS = {".csv": "csv", ".parquet": "parquet", ".geoparquet": "parquet"}
_WGS84 = pyproj.CRS.from_epsg(4326)


def export_tasks(store: Store, campaign_id: int, path: str | os.PathLike[str], *, format: str | None = None,
                 chunk_size: int = EXPORT_CHUNK) -> int:
    """Write the campaign's tasks to a CSV or (Geo)Parquet job table; return the number of rows.

    ``format`` is ``"csv"`` or ``"parquet"``, by default from the file's suffix. Raises
    `UpscaleError` for an unknown format or a parameter named like a bookkeeping column, and
    `StoreError` when the store cannot be read.
    """
    target = Path(path)
    kind = _format_of(target, format)
    kinds = _parameter_kinds(store, campaign_id, chunk_size)
    clashing = sorted(kinds.keys() & BOOKKEEPING_COLUMNS)
    if clashing:
        raise UpscaleError(f"campaign {campaign_id}: parameter(s) {clashing} have the name of a job table "
                           "column and cannot be exported")
    parameters = sorted(kinds)
    columns = [*_JOB_COLUMNS, *_USAGE_COLUMNS, "costs", *_TILE_COLUMNS, *parameters, *_UPSCALE_COLUMNS,
               _GEOMETRY]
    chunks = (_rows(store, chunk, kinds) for chunk in _task_chunks(store, campaign_id, chunk_size))
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        if kind == "csv":
            return _write_csv(target, columns, chunks)
        return _write_parquet(target, columns, kinds, chunks)
    except OSError as exc:
        raise UpscaleError(f"cannot write {target}: {exc}") from exc


def import_tasks(path: str | os.PathLike[str], *, format: str | None = None,
                 pin_from: str | None = None,
                 wait: Callable[[float], None] = time.sleep) -> list[dict[str, Any]]:
    """Rows for `Store.add_tasks` from a job table in CSV or (Geo)Parquet (see the module docstring).

    The tile id is the ``tile_id`` column, else the row's position. A task is pinned to the backend
    in ``upscale_pinned_backend`` (written by `export_tasks`), else to the one in the column
    ``pin_from`` names (e.g. ``"backend_name"``: where the client ran the job), else to none.
    The file is read as `read_job_rows` reads it (``wait`` sleeps between two reads). Raises
    `UpscaleError` when the file cannot be read.
    """
    return task_rows_of(read_job_rows(path, format=format, wait=wait), pin_from, source=path)


def task_rows_of(records: Iterable[Mapping[str, Any]], pin_from: str | None = None, *,
                 source: str | os.PathLike[str] = "the job table") -> list[dict[str, Any]]:
    """Rows for `Store.add_tasks` from the rows of a job table (`read_job_rows`), as `import_tasks`
    makes them. Raises `UpscaleError` for a cell that cannot be read (``source`` names the file)."""
    try:
        return [_task_row(record, position, pin_from) for position, record in enumerate(records)]
    except (ValueError, shapely.errors.ShapelyError) as exc:
        raise UpscaleError(f"cannot read the job table {source}: {exc}") from exc


def read_job_rows(path: str | os.PathLike[str], *, format: str | None = None,
                   wait: Callable[[float], None] = time.sleep) -> list[dict[str, Any]]:
    """Every row of a job table (column name -> cell, geometries as lon/lat WKT), read safely while
    another process may be rewriting it.

    The client's job manager rewrites its CSV in place on every loop, so a read may catch a file
    cut short: empty, a header alone, a last line cut mid-row (or a Parquet file without its
    footer). Such a read is never taken as "no rows": the file is read again after a short backoff
    (`READ_BACKOFF`, doubled each time, up to `READ_ATTEMPTS` reads), and it is taken only once two
    complete reads in a row give the same number of rows (a rewrite cut exactly at a line break
    shows fewer rows than the read after it). Raises `UpscaleError` when no such pair of reads comes.
    """
    source = Path(path)
    kind = _format_of(source, format)
    data = _settled_bytes(source, kind, wait)
    try:
        batches = _read_csv(data) if kind == "csv" else _read_parquet(data)
        return [record for batch in batches for record in batch]
    except (OSError, ValueError, pa.ArrowException, shapely.errors.ShapelyError) as exc:
        raise UpscaleError(f"cannot read the job table {source}: {exc}") from exc


def _settled_bytes(source: Path, kind: str, wait: Callable[[float], None]) -> bytes:
    """The file's bytes once two complete reads in a row agree on its row count (see `read_job_rows`)."""
    previous: int | None = None
    problem = "it was not read"
    for attempt in range(READ_ATTEMPTS):
        if attempt:
            wait(READ_BACKOFF * 2 ** (attempt - 1))
        try:
            data = source.read_bytes()
        except OSError as exc:
            raise UpscaleError(f"cannot read the job table {source}: {exc}") from exc
        rows, trouble = _csv_rows(data) if kind == "csv" else _parquet_rows(data)
        if trouble is not None:
            problem, previous = trouble, None
            continue
        if rows == previous:
            return data
        if previous is not None:
            problem = f"its row count changed from {previous} to {rows} between two reads"
        previous = rows
    raise UpscaleError(f"cannot read the job table {source}: {problem} (read {READ_ATTEMPTS} times; "
                       "is another process still writing it?)")


def _csv_rows(data: bytes) -> tuple[int, str | None]:
    """The number of data rows of a CSV file, or why the file is not complete."""
    if not data.strip():
        return 0, "the file is empty"
    if not data.endswith(b"\n"):
        return 0, "its last line is cut short"
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        return 0, f"it is not UTF-8 text ({exc})"
    try:
        lines = [row for row in csv.reader(io.StringIO(text, newline="")) if row]
    except csv.Error as exc:
        return 0, f"it is not valid CSV ({exc})"
    if len(lines) < 2:
        return 0, "it has a header but no rows"
    width = len(lines[0])
    for number, row in enumerate(lines[1:], start=2):
        if len(row) != width:
            return 0, f"line {number} has {len(row)} field(s), the header {width}"
    return len(lines) - 1, None


def _parquet_rows(data: bytes) -> tuple[int, str | None]:
    """The number of rows of a Parquet file, or why it cannot be read."""
    try:
        rows = int(pq.ParquetFile(pa.BufferReader(data)).metadata.num_rows)
    except (pa.ArrowException, OSError, ValueError) as exc:
        return 0, f"it is not a complete Parquet file ({exc})"
    return rows, None if rows else "it has no rows"


# -- export ------------------------------------------------------------------------------------------


def _format_of(path: Path, given: str | None) -> str:
    kind = given.lower() if given else _FORMATS.get(path.suffix.lower())
    if kind not in ("csv", "parquet"):
        raise UpscaleError(f"unknown job table format {given or path.suffix!r} for {path}: "
                           "use 'csv' or 'parquet'")
    return kind


def _task_chunks(store: Store, campaign_id: int, size: int) -> Iterator[list[Task]]:
    """The campaign's tasks, oldest id first, ``size`` at a time."""
    tasks = store.all_tasks(campaign_id, chunk=size)
    while chunk := list(islice(tasks, size)):
        yield chunk


def _parameter_kinds(store: Store, campaign_id: int, size: int) -> dict[str, str]:
    """Each parameter's column type over all tasks: ``bool``, ``int``, ``float``, ``str`` or ``json``."""
    seen: dict[str, set[str]] = {}
    for parameters in store.task_parameters(campaign_id, chunk=size):
        for name, value in parameters.items():
            if value is not None:
                seen.setdefault(name, set()).add(_kind(value))
    kinds = {}
    for name, found in seen.items():
        if len(found) == 1:
            kinds[name] = found.pop()
        elif found == {"int", "float"}:
            kinds[name] = "float"
        else:
            kinds[name] = "json"
    return kinds


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "str"
    return "json"


def _rows(store: Store, chunk: list[Task], kinds: Mapping[str, str]) -> list[dict[str, Any]]:
    """The job table rows of one chunk of tasks."""
    running = store.first_running([task.id for task in chunk])
    rows = []
    for task in chunk:
        usage = task.usage or {}
        row: dict[str, Any] = {
            "id": task.job_id,
            "backend_name": task.backend,
            "status": CLIENT_STATUS[task.state].value,
            "start_time": _rfc3339(task.started),
            "running_start_time": _rfc3339(running.get(task.id)),
            **{name: _usage_text(usage.get(name)) for name in _USAGE_COLUMNS},
            "costs": task.costs,
            "tile_id": task.tile_id, "epsg": task.epsg,
            "west": task.west, "south": task.south, "east": task.east, "north": task.north,
            "upscale_state": task.state.value, "upscale_attempts": task.attempts,
            "upscale_error": task.error, "upscale_pinned_backend": task.pinned_backend,
            _GEOMETRY: _geometry(task.geometry),
        }
        for name, kind in kinds.items():
            value = task.parameters.get(name)
            if kind == "float" and value is not None:
                value = float(value)
            row[name] = json.dumps(value) if kind == "json" and value is not None else value
        rows.append(row)
    return rows


def _rfc3339(value: datetime | None) -> str | None:
    """The client's timestamp format: ``2024-01-01T12:00:00Z``."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if value is not None else None


def _usage_text(entry: Any) -> str | None:
    """A usage entry as the client writes it: ``"<value> <unit>"``."""
    if not isinstance(entry, Mapping):
        return None
    return f"{entry.get('value', 0)} {entry.get('unit', '')}".strip()


def _geometry(text: str | None) -> shapely.Geometry | None:
    if not text:
        return None
    text = text.strip()
    return shapely.from_geojson(text) if text.startswith("{") else shapely.from_wkt(text)


def _write_csv(target: Path, columns: list[str], chunks: Iterable[list[dict[str, Any]]]) -> int:
    count = 0
    with target.open("w", newline="", encoding="utf-8") as file:
        writer = csv.DictWriter(file, fieldnames=columns)
        writer.writeheader()
        for rows in chunks:
            for row in rows:
                geometry = row[_GEOMETRY]
                row[_GEOMETRY] = _wkt(geometry) if geometry is not None else None
                writer.writerow(row)
            count += len(rows)
    return count


_ARROW_TYPES = {"bool": pa.bool_(), "int": pa.int64(), "float": pa.float64(), "str": pa.string(),
                "json": pa.string()}


def _write_parquet(target: Path, columns: list[str], kinds: Mapping[str, str],
                   chunks: Iterable[list[dict[str, Any]]]) -> int:
    types = {name: pa.string() for name in (*_JOB_COLUMNS, *_USAGE_COLUMNS, "tile_id", "upscale_state",
                                            "upscale_error", "upscale_pinned_backend")}
    types.update({"costs": pa.float64(), "epsg": pa.int64(), "west": pa.float64(), "south": pa.float64(),
                  "east": pa.float64(), "north": pa.float64(), "upscale_attempts": pa.int64(),
                  _GEOMETRY: pa.binary()})
    types.update({name: _ARROW_TYPES[kind] for name, kind in kinds.items()})
    # GeoParquet 1.0 metadata, written up front: geometry types and bbox are optional and left out.
    geo = {"version": "1.0.0", "primary_column": _GEOMETRY,
           "columns": {_GEOMETRY: {"encoding": "WKB", "geometry_types": [], "crs": _WGS84.to_json_dict()}}}
    schema = pa.schema([pa.field(name, types[name]) for name in columns],
                       metadata={b"geo": json.dumps(geo).encode()})
    count = 0
    with pq.ParquetWriter(target, schema) as writer:
        for rows in chunks:
            geometries = [row[_GEOMETRY] for row in rows]
            wkb = shapely.to_wkb(np.array(geometries, dtype=object))
            data = {name: [row[name] for row in rows] for name in columns if name != _GEOMETRY}
            data[_GEOMETRY] = list(wkb)
            writer.write_table(pa.Table.from_pydict(data, schema=schema))
            count += len(rows)
    return count


# -- import ------------------------------------------------------------------------------------------


def _read_csv(data: bytes) -> Iterator[list[dict[str, Any]]]:
    with pd.read_csv(io.BytesIO(data), chunksize=EXPORT_CHUNK, dtype_backend="numpy_nullable") as reader:
        for frame in reader:
            yield frame.to_dict("records")


def _read_parquet(data: bytes) -> Iterator[list[dict[str, Any]]]:
    file = pq.ParquetFile(pa.BufferReader(data))
    metadata = file.schema_arrow.metadata or {}
    geo = json.loads(metadata[b"geo"]) if b"geo" in metadata else {}
    geometry_columns: Mapping[str, Any] = geo.get("columns") or {}
    for batch in file.iter_batches(batch_size=EXPORT_CHUNK):
        records = batch.to_pylist()
        for name, spec in geometry_columns.items():
            _decode_geometries(records, name, spec)
        yield records


def _decode_geometries(records: list[dict[str, Any]], name: str, spec: Mapping[str, Any]) -> None:
    """Turn a GeoParquet geometry column into lon/lat WKT, in place."""
    crs = spec.get("crs", "OGC:CRS84")
    source = pyproj.CRS.from_user_input(crs) if crs is not None else pyproj.CRS("OGC:CRS84")
    project = None
    if not (source.equals(_WGS84, ignore_axis_order=True)):
        transformer = pyproj.Transformer.from_crs(source, _WGS84, always_xy=True)
        project = transformer.transform
    for record in records:
        value = record.get(name)
        if isinstance(value, bytes | bytearray):
            shape = shapely.from_wkb(bytes(value))
        elif isinstance(value, str) and value:
            shape = shapely.from_wkt(value)
        else:
            continue
        if project is not None:
            shape = shapely.ops.transform(project, shape)
        record[name] = _wkt(shape)


def tile_records_of(rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The tiles of imported rows (`import_tasks`) for a new campaign: their tile columns, their
    pinned backend and their parameters, as `Campaign.create` takes tiles."""
    records = []
    for row in rows:
        # A bounding box exported as a parameter value is the tile's own extent; the creator derives
        # spatial parameters from the tile again (and reads a same-named cell only as a geometry).
        record: dict[str, Any] = {name: value for name, value in row["parameters"].items()
                                  if not _is_bbox(value)}
        record.update({key: row.get(key) for key in TILE_COLUMNS})
        if row.get("pinned_backend"):
            record[PIN_COLUMN] = row["pinned_backend"]
        records.append(record)
    return records


def _is_bbox(value: Any) -> bool:
    """A bounding-box mapping (not GeoJSON)."""
    corners = {"west", "south", "east", "north"}
    return isinstance(value, dict) and "type" not in value and corners <= value.keys()


def _task_row(record: Mapping[str, Any], position: int, pin_from: str | None) -> dict[str, Any]:
    """One `Store.add_tasks` row from one table row (column name -> cell)."""
    cells = {str(name): _plain(value) for name, value in record.items()}
    tile_id = cells.get("tile_id")
    epsg = cells.get("epsg")
    geometry = cells.get(_GEOMETRY)
    if geometry is not None and not isinstance(geometry, str):
        geometry = _wkt(geometry) if isinstance(geometry, shapely.Geometry) else str(geometry)
    row: dict[str, Any] = {
        "tile_id": str(tile_id) if tile_id is not None else str(position),
        "epsg": int(epsg) if epsg is not None else None,
        **{side: float(cells[side]) if cells.get(side) is not None else None
           for side in ("west", "south", "east", "north")},
        "geometry": geometry,
        "parameters": {name: _parsed(value) for name, value in cells.items()
                       if name not in BOOKKEEPING_COLUMNS and value is not None},
        "pinned_backend": None,
    }
    pinned = cells.get("upscale_pinned_backend")
    if pinned is None and pin_from is not None:
        pinned = cells.get(pin_from)
    if pinned is not None:
        row["pinned_backend"] = str(pinned)
    return row


def _plain(value: Any) -> Any:
    """A cell as a plain Python value; every kind of missing (None, NaN, NA, NaT) becomes None."""
    if isinstance(value, list | dict | tuple | np.ndarray):
        return value.tolist() if isinstance(value, np.ndarray) else value
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def _parsed(value: Any) -> Any:
    """A text cell holding a list or an object, as JSON or a Python literal, parsed back."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if (text[:1], text[-1:]) not in (("[", "]"), ("{", "}")):
        return value
    try:
        return json.loads(text)
    except ValueError:
        pass
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return value


def _wkt(shape: shapely.Geometry) -> str:
    """Full-precision WKT (shapely's default rounds to 6 decimals)."""
    return str(shapely.to_wkt(shape, rounding_precision=-1))
