"""What the dashboard shows, read from the store: tile geometries, task states and an overview.

Pure, read-only functions of a `Store` and a campaign id. Everything is aggregated in SQL or read
as plain columns (no `Task` objects), so that each call stays well under a second at 100,000
tasks. The payloads are plain JSON-ready dicts:

- `tiles_geojson`: the tile geometries, once (they do not change while a campaign runs);
- `states`: per task, in columns, what changes (state, backend, job, attempts, duration, credits),
  all of it or only the tasks updated since a cursor;
- `overview`: counts, per-backend slot use, credits, throughput, ETA, states over time and the
  failed tasks.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import shapely
import sqlalchemy as sa

from openeo_upscale.campaign.states import TASK_ACTIVE, TASK_TERMINAL, TaskState
from openeo_upscale.campaign.store import Store, campaign_table, events_table, tasks_table
from openeo_upscale.monitor.colors import STATE_COLORS

COORDINATE_DIGITS = 5
"""Decimals kept in tile coordinates (1e-5 degree is about a metre)."""
SIMPLIFY_TOLERANCE = 1e-4
"""Degrees: clipped tiles with many vertices are simplified to about 10 m."""
THROUGHPUT_WINDOW_S = 3600.0
"""Seconds of recent history the throughput (and so the ETA) is measured over."""
TIMELINE_BINS = 200
"""Most bins in the states-over-time series."""
FAILURES_LIMIT = 200
"""Most failed tasks listed, newest first."""
CURSOR_OVERLAP_S = 60.0
"""`states(since=...)` re-reads this much before the cursor: a transaction that took its
timestamp earlier may commit after the previous read."""

STATE_ORDER: tuple[str, ...] = tuple(state.value for state in TaskState)
"""Task states in lifecycle order; `states` encodes a state as its index here."""

_t = tasks_table
_e = events_table


def _epoch(column: Any, dialect: str) -> Any:
    """A timestamp column as seconds since 1970 (float), computed by the database."""
    if dialect == "sqlite":
        # the store keeps naive UTC text in SQLite; julianday reads it as UTC
        return (sa.func.julianday(sa.type_coerce(column, sa.String)) - 2440587.5) * 86400.0
    # PostgreSQL's extract() is numeric: a Decimal in Python, which does not mix with floats.
    return sa.cast(sa.extract("epoch", column), sa.Float)


def _now(now: datetime | None) -> datetime:
    return now if now is not None else datetime.now(UTC)


def _as_float(value: Any) -> float | None:
    return None if value is None else float(value)


# tiles -------------------------------------------------------------------------------------------


def tiles_geojson(store: Store, campaign_id: int, *, centres: bool = False) -> dict[str, Any]:
    """The campaign's tile geometries as a GeoJSON FeatureCollection (EPSG:4326).

    Feature ``id`` is the task id, ``properties`` holds ``tile_id``; coordinates are rounded to
    `COORDINATE_DIGITS` decimals and long outlines simplified, to keep the payload small. With
    ``centres`` each tile is a Point at its centroid instead (what a map of 100,000 tiles draws).
    Tasks without a geometry are left out. ``bbox`` covers every tile (None when there are none).
    """
    query = (sa.select(_t.c.id, _t.c.tile_id, _t.c.geometry)
             .where(_t.c.campaign_id == campaign_id, _t.c.geometry.is_not(None))
             .order_by(_t.c.id))
    with store.engine.connect() as conn:
        rows = conn.execute(query).all()
    geoms = shapely.from_wkt([row.geometry for row in rows], on_invalid="ignore")
    keep = ~(shapely.is_missing(geoms) | shapely.is_empty(geoms))
    rows = [row for row, kept in zip(rows, keep, strict=True) if kept]
    geoms = geoms[keep]
    if not rows:
        return {"type": "FeatureCollection", "features": [], "bbox": None}
    bbox = [round(float(v), COORDINATE_DIGITS) for v in shapely.total_bounds(geoms)]
    if centres:
        points = shapely.get_coordinates(shapely.centroid(geoms)).round(COORDINATE_DIGITS).tolist()
        geometries: list[dict[str, Any]] = [{"type": "Point", "coordinates": xy} for xy in points]
    else:
        geometries = _outlines(shapely.simplify(geoms, SIMPLIFY_TOLERANCE, preserve_topology=True))
    features = [{"type": "Feature", "id": int(row.id), "properties": {"tile_id": row.tile_id},
                 "geometry": geometry}
                for row, geometry in zip(rows, geometries, strict=True)]
    return {"type": "FeatureCollection", "features": features, "bbox": bbox}


def _outlines(geoms: Any) -> list[dict[str, Any]]:
    """GeoJSON geometries with rounded coordinates; polygons vectorized, anything else one by one."""
    kinds = shapely.get_type_id(geoms)
    if not ((kinds == shapely.GeometryType.POLYGON) | (kinds == shapely.GeometryType.MULTIPOLYGON)).all():
        return [_rounded(shapely.geometry.mapping(geom)) for geom in geoms]
    kind, coords, offsets = shapely.to_ragged_array(geoms)
    points = coords.round(COORDINATE_DIGITS).tolist()
    rings = [points[a:b] for a, b in zip(offsets[0][:-1], offsets[0][1:], strict=True)]
    polygons = [rings[a:b] for a, b in zip(offsets[1][:-1], offsets[1][1:], strict=True)]
    if kind == shapely.GeometryType.POLYGON:
        return [{"type": "Polygon", "coordinates": polygon} for polygon in polygons]
    return [{"type": "MultiPolygon", "coordinates": polygons[a:b]}
            for a, b in zip(offsets[2][:-1], offsets[2][1:], strict=True)]


def _rounded(value: Any) -> Any:
    """GeoJSON coordinates (nested tuples) as nested lists of rounded floats."""
    if isinstance(value, dict):
        return {key: _rounded(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        if value and isinstance(value[0], float | int):
            return [round(float(v), COORDINATE_DIGITS) for v in value]
        return [_rounded(item) for item in value]
    return value


# states ------------------------------------------------------------------------------------------


def states(store: Store, campaign_id: int, *, since: float | None = None,
           now: datetime | None = None) -> dict[str, Any]:
    """Per task, what changes while the campaign runs, as columns of equal length.

    ``{"cursor", "full", "states", "backends", "id", "state", "backend", "job_id", "attempts",
    "duration_s", "costs"}``: ``state`` and ``backend`` are indices into the ``states`` and
    ``backends`` lists (backend -1: none yet); ``duration_s`` runs from ``started`` to
    ``finished`` (or to now while a job is active; None before a start). With ``since`` (the
    ``cursor`` of an earlier answer, seconds since 1970) only tasks updated since then are
    listed and ``full`` is False; pass the new ``cursor`` next time.
    """
    moment = _now(now)
    dialect = store.dialect
    updated = _epoch(_t.c.updated, dialect)
    query = (sa.select(_t.c.id, _t.c.state, _t.c.backend, _t.c.job_id, _t.c.attempts,
                       _epoch(_t.c.started, dialect), _epoch(_t.c.finished, dialect), _t.c.costs, updated)
             .where(_t.c.campaign_id == campaign_id)
             .order_by(_t.c.id))
    if since is not None:
        query = query.where(_t.c.updated >= datetime.fromtimestamp(since - CURSOR_OVERLAP_S, UTC))
    with store.engine.connect() as conn:
        rows = conn.execute(query).all()
    now_s = moment.timestamp()
    index = {state: i for i, state in enumerate(STATE_ORDER)}
    running = {state.value for state in TASK_ACTIVE}
    backends: dict[str, int] = {}
    ids: list[int] = []
    codes: list[int] = []
    backend_codes: list[int] = []
    job_ids: list[str | None] = []
    attempts: list[int] = []
    durations: list[float | None] = []
    costs: list[float | None] = []
    cursor = since if since is not None else 0.0
    for task_id, state, backend, job_id, tries, started, finished, cost, changed in rows:
        ids.append(task_id)
        codes.append(index[state])
        backend_codes.append(-1 if backend is None else backends.setdefault(backend, len(backends)))
        job_ids.append(job_id)
        attempts.append(tries)
        end = finished if finished is not None else now_s if state in running else None
        durations.append(None if started is None or end is None else round(max(end - started, 0.0), 1))
        costs.append(cost)
        if changed is not None and changed > cursor:
            cursor = changed
    return {"cursor": cursor, "full": since is None, "states": list(STATE_ORDER), "backends": list(backends),
            "id": ids, "state": codes, "backend": backend_codes, "job_id": job_ids, "attempts": attempts,
            "duration_s": durations, "costs": costs}


# overview ----------------------------------------------------------------------------------------


def overview(store: Store, campaign_id: int, *, now: datetime | None = None,
             window_s: float = THROUGHPUT_WINDOW_S, bins: int = TIMELINE_BINS,
             failures_limit: int = FAILURES_LIMIT) -> dict[str, Any]:
    """Counts, per-backend slot use, credits, throughput, ETA, states over time and failures.

    ``{"campaign", "now", "tasks", "counts", "colors", "backends", "credits", "throughput",
    "eta", "timeline", "failures"}``; see the module and the keys' builders for the details.
    ``credits.projected`` is spent / done * tasks (None before the first done task); throughput
    counts tasks that reached ``done`` over the last ``window_s`` (or since the first event when
    the campaign is younger); ``eta.seconds`` is the tasks not yet terminal over that rate.
    """
    moment = _now(now)
    with store.engine.connect() as conn:
        campaign = conn.execute(sa.select(campaign_table.c.name, campaign_table.c.config)
                                .where(campaign_table.c.id == campaign_id)).first()
        per_backend = conn.execute(
            sa.select(_t.c.backend, _t.c.state, sa.func.count(),
                      sa.func.coalesce(sa.func.sum(_t.c.costs), 0.0))
            .where(_t.c.campaign_id == campaign_id)
            .group_by(_t.c.backend, _t.c.state)).all()
        timeline = _timeline(conn, store.dialect, campaign_id, moment, bins)
        failures = _failures(conn, campaign_id, failures_limit)
    counts = dict.fromkeys(STATE_ORDER, 0)
    spent = 0.0
    backends: dict[str, dict[str, Any]] = {}
    capacity = _capacities(campaign.config if campaign is not None else None)
    for backend, state, count, cost in per_backend:
        counts[state] += int(count)
        spent += float(cost)
        if backend is None:
            continue
        entry = backends.setdefault(backend, {"active": 0, "done": 0, "failed": 0, "counts": {},
                                              "parallel_jobs": capacity.get(backend)})
        entry["counts"][state] = int(count)
        if TaskState(state) in TASK_ACTIVE and state != TaskState.DOWNLOADING:
            entry["active"] += int(count)
        elif state == TaskState.DONE:
            entry["done"] += int(count)
        elif state == TaskState.FAILED:
            entry["failed"] += int(count)
    total = sum(counts.values())
    done = counts[TaskState.DONE]
    remaining = sum(n for state, n in counts.items() if TaskState(state) not in TASK_TERMINAL)
    rate = _throughput(timeline, moment, window_s)
    eta_s = remaining / rate * 3600.0 if rate > 0 and remaining else (0.0 if not remaining else None)
    return {
        "campaign": campaign.name if campaign is not None else None,
        "now": moment.timestamp(),
        "tasks": total,
        "counts": counts,
        "colors": {state.value: color for state, color in STATE_COLORS.items()},
        "backends": dict(sorted(backends.items())),
        "credits": {"spent": round(spent, 6),
                    "projected": round(spent / done * total, 6) if done else None},
        "throughput": {"done_per_hour": round(rate, 3), "window_s": window_s},
        "eta": {"remaining": remaining, "seconds": None if eta_s is None else round(eta_s, 1),
                "at": None if eta_s is None else (moment + timedelta(seconds=eta_s)).timestamp()},
        "timeline": {key: value for key, value in timeline.items() if not key.startswith("_")},
        "failures": failures,
    }


def _capacities(config: Any) -> dict[str, int]:
    """``parallel_jobs`` per backend when the stored config lists its backends."""
    found: dict[str, int] = {}
    listed = config.get("backends") if isinstance(config, dict) else None
    if isinstance(listed, list):
        for item in listed:
            if isinstance(item, dict) and isinstance(item.get("name"), str) \
                    and isinstance(item.get("parallel_jobs"), int):
                found[item["name"]] = item["parallel_jobs"]
    return found


def _timeline(conn: sa.Connection, dialect: str, campaign_id: int, moment: datetime,
              bins: int) -> dict[str, Any]:
    """Tasks in each state at each bin edge, and tasks done per bin, from the events.

    Every task starts pending; each event that changes the state moves one task between two
    counts. Edges run from the first event to ``moment`` in at most ``bins`` bins. ``_done_at``
    (private) keeps the done events' bins for the throughput.
    """
    campaign_events = sa.select(_e.c.at, _e.c.from_state, _e.c.to_state).join_from(
        _e, _t, _e.c.task_id == _t.c.id).where(_t.c.campaign_id == campaign_id).subquery()
    at = _epoch(campaign_events.c.at, dialect)
    total = conn.execute(sa.select(sa.func.count()).where(_t.c.campaign_id == campaign_id)).scalar() or 0
    first = conn.execute(sa.select(sa.func.min(at))).scalar()
    end = moment.timestamp()
    if first is None:
        return {"edges": [], "counts": {}, "done_per_bin": [], "bin_s": None, "_first": None}
    first = float(first)
    span = max(end - first, 1.0)
    count = max(1, min(bins, math.ceil(span)))
    width = span / count
    bin_of = sa.cast((at - first) / width, sa.Integer)
    moves = conn.execute(
        sa.select(bin_of.label("bin"), campaign_events.c.from_state, campaign_events.c.to_state,
                  sa.func.count())
        .where(campaign_events.c.from_state != campaign_events.c.to_state)
        .group_by(bin_of, campaign_events.c.from_state, campaign_events.c.to_state)).all()
    delta = {state: [0] * count for state in STATE_ORDER}
    done_per_bin = [0] * count
    for index, source, target, number in moves:
        slot = min(max(int(index), 0), count - 1)
        delta[source][slot] -= number
        delta[target][slot] += number
        if target == TaskState.DONE:
            done_per_bin[slot] += number
    series: dict[str, list[int]] = {}
    for state in STATE_ORDER:
        level = total if state == TaskState.PENDING else 0
        values = [level]
        for change in delta[state]:
            level += change
            values.append(level)
        series[state] = values
    edges = [round(first + i * width, 3) for i in range(count + 1)]
    return {"edges": edges, "counts": {s: v for s, v in series.items() if any(v)},
            "done_per_bin": done_per_bin, "bin_s": round(width, 3), "_first": first}


def _throughput(timeline: dict[str, Any], moment: datetime, window_s: float) -> float:
    """Tasks done per hour over the last ``window_s`` (or since the first event), from the bins."""
    if timeline["_first"] is None:
        return 0.0
    end = moment.timestamp()
    start = max(end - window_s, timeline["_first"])
    edges: Sequence[float] = timeline["edges"]
    done = 0.0
    for i, number in enumerate(timeline["done_per_bin"]):
        low, high = edges[i], edges[i + 1]
        if high <= start or not number:
            continue
        share = 1.0 if low >= start else (high - start) / (high - low)  # a bin cut by the window
        done += number * share
    hours = max(end - start, 60.0) / 3600.0  # no huge rates from the first seconds
    return done / hours


def _failures(conn: sa.Connection, campaign_id: int, limit: int) -> list[dict[str, Any]]:
    """Failed tasks, most recently changed first, with their last event's reason."""
    rows = conn.execute(
        sa.select(_t.c.id, _t.c.tile_id, _t.c.backend, _t.c.job_id, _t.c.attempts, _t.c.error)
        .where(_t.c.campaign_id == campaign_id, _t.c.state == TaskState.FAILED.value)
        .order_by(_t.c.updated.desc(), _t.c.id.desc())
        .limit(limit)).all()
    if not rows:
        return []
    last = (sa.select(_e.c.task_id, sa.func.max(_e.c.id).label("last"))
            .where(_e.c.task_id.in_([row.id for row in rows]))
            .group_by(_e.c.task_id).subquery())
    reasons = dict(conn.execute(sa.select(_e.c.task_id, _e.c.reason)
                                .join_from(_e, last, _e.c.id == last.c.last)).all())
    return [{"task_id": row.id, "tile_id": row.tile_id, "backend": row.backend, "job_id": row.job_id,
             "attempts": row.attempts, "error": row.error, "reason": reasons.get(row.id)} for row in rows]

