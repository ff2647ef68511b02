"""What the dashboard shows, read from the store: tile geometries, task states and an overview.

Pure, read-only functions of a `Store` and a campaign id. Everything is aggregated in SQL or read
as plain columns (no `Task` objects), so that each call stays well under a second at 100,000
tasks. The payloads are plain JSON-ready dicts:

- `tiles_geojson`: the tile geometries, once (they do not change while a campaign runs);
- `states`: per task, in columns, what changes (state, backend, job, attempts, duration, credits),
  all of it or only the tasks updated since a cursor;
- `overview`: counts, per-backend slot use and jobs, credits (from the ledger: every attempt),
  throughput, ETA, states over time and the failed tasks (a split tile is not one: its quadrants
  carry it, and it counts as ended work for the ETA);
- `task_jobs`: one task's backend jobs from the ledger, every attempt.

Every query is a named query of `Store`; this module only shapes their answers.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import shapely

from openeo_upscale.campaign.models import CampaignSettings, JobRecord
from openeo_upscale.campaign.states import TASK_ACTIVE, TASK_HOLDING, TASK_TERMINAL, TaskState
from openeo_upscale.campaign.store import Store
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
"""Task states in lifecycle order (the order counts and timelines are listed in)."""

DRAW_ORDER: tuple[str, ...] = (TaskState.SPLIT.value,
                               *(state for state in STATE_ORDER if state != TaskState.SPLIT))
"""Task states in the order a map draws them, which `states` encodes a state as its index in: split
tiles first, beneath the quadrants that replaced them."""


def _now(now: datetime | None) -> datetime:
    return now if now is not None else datetime.now(UTC)


# tiles -------------------------------------------------------------------------------------------


def tiles_geojson(store: Store, campaign_id: int, *, centres: bool = False) -> dict[str, Any]:
    """The campaign's tile geometries as a GeoJSON FeatureCollection (EPSG:4326).

    Feature ``id`` is the task id, ``properties`` holds ``tile_id``; coordinates are rounded to
    `COORDINATE_DIGITS` decimals and long outlines simplified, to keep the payload small. With
    ``centres`` each tile is a Point at its centroid instead (what a map of 100,000 tiles draws).
    Tasks without a geometry are left out. ``bbox`` covers every tile (None when there are none).
    """
    rows = store.tile_geometries(campaign_id)
    geoms = shapely.from_wkt([geometry for _, _, geometry in rows], on_invalid="ignore")
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
    features = [{"type": "Feature", "id": int(task_id), "properties": {"tile_id": tile_id},
                 "geometry": geometry}
                for (task_id, tile_id, _), geometry in zip(rows, geometries, strict=True)]
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
    listed and ``full`` is False; pass the new ``cursor`` next time. The ``states`` list is in
    `DRAW_ORDER`, the order the dashboard's map draws the states in.
    """
    moment = _now(now)
    rows = store.task_progress(campaign_id, updated_since=None if since is None
                               else datetime.fromtimestamp(since - CURSOR_OVERLAP_S, UTC))
    now_s = moment.timestamp()
    index = {state: i for i, state in enumerate(DRAW_ORDER)}
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
    return {"cursor": cursor, "full": since is None, "states": list(DRAW_ORDER), "backends": list(backends),
            "id": ids, "state": codes, "backend": backend_codes, "job_id": job_ids, "attempts": attempts,
            "duration_s": durations, "costs": costs}


# overview ----------------------------------------------------------------------------------------


def overview(store: Store, campaign_id: int, *, now: datetime | None = None,
             window_s: float = THROUGHPUT_WINDOW_S, bins: int = TIMELINE_BINS,
             failures_limit: int = FAILURES_LIMIT) -> dict[str, Any]:
    """Counts, per-backend slot use and jobs, credits, throughput, ETA, states over time and failures.

    ``{"campaign", "now", "tasks", "counts", "colors", "backends", "credits", "throughput",
    "eta", "timeline", "failures", "forecast"}``; see the module and the keys' builders for the details.
    A ``backends`` entry counts the tasks whose current job is there (``active``, ``done``,
    ``failed``, ``counts`` per state) and, from the ledger, every job ever recorded there
    (``jobs``) and their ``credits``; a backend only earlier attempts ran on is listed too.
    ``credits.spent`` is the ledger's sum over every job, retries included; ``credits.projected``
    is spent / done * tasks (None before the first done task); throughput counts tasks that
    reached ``done`` over the last ``window_s`` (or since the first event when the campaign is
    younger); ``eta.seconds`` is the tasks not yet terminal over that rate; ``forecast`` is the
    newest forecast (`campaign.forecast.Forecast.to_dict`, its ``tracking`` and ``max_credits``), or
    None before a pilot. Raises `StoreError` for an unknown campaign.
    """
    moment = _now(now)
    campaign = store.campaign(campaign_id)
    counts = {state.value: n for state, n in store.counts(campaign_id).items()}
    per_backend = store.backend_counts(campaign_id)
    ledger = store.ledger_summary(campaign_id)
    spent = store.credits(campaign_id)
    total = sum(counts.values())
    timeline = _timeline(store, campaign_id, total, moment, bins)
    failures = [{"task_id": f.task_id, "tile_id": f.tile_id, "backend": f.backend, "job_id": f.job_id,
                 "attempts": f.attempts, "jobs": f.jobs, "error": f.error, "reason": f.reason}
                for f in store.failed_tasks(campaign_id, limit=failures_limit)]
    capacity = {slots.name: slots.parallel_jobs
                for slots in CampaignSettings.from_dict(campaign["config"]).backends}
    backends: dict[str, dict[str, Any]] = {}
    for backend in sorted(per_backend.keys() | ledger.keys()):
        states = per_backend.get(backend, {})
        jobs = ledger.get(backend, {})
        backends[backend] = {
            "active": sum(n for state, n in states.items() if state in TASK_HOLDING),
            "done": states.get(TaskState.DONE, 0),
            "failed": states.get(TaskState.FAILED, 0),
            "counts": {state.value: states[state] for state in TaskState if state in states},
            "parallel_jobs": capacity.get(backend),
            "jobs": int(jobs.get("jobs", 0)),
            "credits": round(float(jobs.get("credits", 0.0)), 6),
        }
    done = counts[TaskState.DONE]
    remaining = sum(n for state, n in counts.items() if TaskState(state) not in TASK_TERMINAL)
    rate = _throughput(timeline, moment, window_s)
    eta_s = remaining / rate * 3600.0 if rate > 0 and remaining else (0.0 if not remaining else None)
    return {
        "campaign": campaign["name"],
        "now": moment.timestamp(),
        "tasks": total,
        "counts": counts,
        "colors": {state.value: color for state, color in STATE_COLORS.items()},
        "backends": backends,
        "credits": {"spent": round(spent, 6),
                    "projected": round(spent / done * total, 6) if done else None},
        "throughput": {"done_per_hour": round(rate, 3), "window_s": window_s},
        "eta": {"remaining": remaining, "seconds": None if eta_s is None else round(eta_s, 1),
                "at": None if eta_s is None else (moment + timedelta(seconds=eta_s)).timestamp()},
        "timeline": {key: value for key, value in timeline.items() if not key.startswith("_")},
        "failures": failures,
        "forecast": _forecast(store, campaign_id, campaign),
    }


def _forecast(store: Store, campaign_id: int, campaign: Mapping[str, Any]) -> dict[str, Any] | None:
    """The newest forecast with how the done tasks track the pilot's and the budget, or None."""
    stored = store.forecast(campaign_id)
    if stored is None:
        return None
    found = dict(stored.forecast)
    found["max_credits"] = CampaignSettings.from_dict(campaign["config"]).limits.max_credits
    return found


def _timeline(store: Store, campaign_id: int, total: int, moment: datetime, bins: int) -> dict[str, Any]:
    """Tasks in each state at each bin edge, and tasks done per bin, from the events.

    Every task starts pending; each event that changes the state moves one task between two
    counts. Edges run from the first event to ``moment`` in at most ``bins`` bins; ``_first``
    (private) is the first event's time, for the throughput.
    """
    first = store.first_event_at(campaign_id)
    end = moment.timestamp()
    if first is None:
        return {"edges": [], "counts": {}, "done_per_bin": [], "bin_s": None, "_first": None}
    span = max(end - first, 1.0)
    count = max(1, min(bins, math.ceil(span)))
    width = span / count
    moves = store.state_moves(campaign_id, start=first, width=width)
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


# jobs --------------------------------------------------------------------------------------------


def task_jobs(store: Store, campaign_id: int, task_id: int) -> dict[str, Any] | None:
    """One task's backend jobs from the ledger, first attempt first; None when the campaign has no
    such task.

    ``{"task_id", "tile_id", "state", "jobs": [...]}``; each job has ``attempt, backend, job_id,
    status, requested, created, started, finished`` (seconds since 1970 or None), ``duration_s``
    (from its start to its end, None while either is unknown), ``costs``, ``usage`` and ``error``.
    """
    task = store.campaign_task(campaign_id, task_id)
    if task is None:
        return None
    return {"task_id": task.id, "tile_id": task.tile_id, "state": task.state.value,
            "jobs": [_job(job) for job in store.jobs_of(task.id)]}


def _job(job: JobRecord) -> dict[str, Any]:
    duration = None
    if job.started is not None and job.finished is not None:
        duration = round(max((job.finished - job.started).total_seconds(), 0.0), 1)
    return {"attempt": job.attempt, "backend": job.backend, "job_id": job.job_id,
            "status": None if job.status is None else job.status.value,
            "requested": _seconds(job.requested), "created": _seconds(job.created),
            "started": _seconds(job.started), "finished": _seconds(job.finished),
            "duration_s": duration, "costs": job.costs, "usage": job.usage, "error": job.error}


def _seconds(value: datetime | None) -> float | None:
    return None if value is None else value.timestamp()
