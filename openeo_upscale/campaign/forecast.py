"""What the whole campaign will cost and take, from the tasks measured so far (`forecast`).

Each task's *size* is the area of the extent its job loads (the bounding box of its spatial
parameter, in its UTM zone, so a partial edge tile clipped to the area counts what it covers) times
the months of its temporal extent. Every finished task is one measurement (`Measurement`): its
credits over all its attempts, the time it held a backend slot, its queue and run times, CPU and
memory from the backend's usage, and the size of its results on disk.

Three quantities are modelled as ``a + b * size`` (a start fee and a rate per km²·month; least
squares, neither below zero): credits, the seconds a job holds a slot, and result bytes. The 90 %
intervals come from refitting on bootstrap resamples of the measurements (a fixed seed, so the
same measurements always give the same forecast). The makespan replays the launch order over the
configured slots: tasks in id order, each to the slot that frees first, created one after the
other by the one scheduler (each creation takes what the pilot's took: `launch_cost`).

Hand-written rather than taken from a statistics library: two-parameter fits, a bootstrap and a
list schedule are a few lines of numpy each, and no library models a campaign.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from functools import cache
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
import shapely
import shapely.geometry
from pyproj import Transformer

from openeo_upscale.campaign.models import JobRecord, Task
from openeo_upscale.campaign.states import TaskState
from openeo_upscale.campaign.store import Store
from openeo_upscale.grid.zones import utm_epsg, zone_number

S = TaskState

RESAMPLES = 400
"""Bootstrap resamples behind each interval."""
SCHEDULE_RESAMPLES = 60
"""Resamples behind the makespan interval (each replays the whole schedule)."""
EXACT_SCHEDULE_MAX = 20_000
"""Above this many tasks left, the schedule is estimated from the total work instead of replayed."""
SEED = 20261202
MONTH_DAYS = 30.44


# -- sizes ----------------------------------------------------------------------------------------


@cache
def _to_utm(source: int, epsg: int) -> Transformer:
    return Transformer.from_crs(source, epsg, always_xy=True)


def _box_km2(bounds: tuple[float, float, float, float], crs: int | None, epsg: int | None) -> float:
    """Area of a box given in ``crs`` (None: lon/lat), measured in the UTM zone ``epsg``."""
    west, south, east, north = bounds
    if crs is not None and crs != 4326:
        return max(0.0, (east - west) * (north - south) / 1e6)  # a projected CRS: metres
    zone = epsg or utm_epsg(zone_number((west + east) / 2), (south + north) / 2 >= 0)
    w, s, e, n = _to_utm(4326, zone).transform_bounds(west, south, east, north)
    return max(0.0, (e - w) * (n - s) / 1e6)


def extent_km2(task: Task) -> float:
    """The area of the extent the task's job loads (see the module docstring), in km²."""
    bounds = (task.west, task.south, task.east, task.north)
    return extent_of(task.parameters, task.geometry, task.epsg, bounds)


def extent_of(parameters: Mapping[str, Any], geometry: str | None, epsg: int | None,
              bounds: tuple[float | None, ...]) -> float:
    """`extent_km2` from a task's columns: its parameters, lon/lat geometry, zone and native box."""
    for value in parameters.values():
        if isinstance(value, Mapping) and all(k in value for k in ("west", "south", "east", "north")):
            crs = value.get("crs")
            try:
                box = (float(value["west"]), float(value["south"]),
                       float(value["east"]), float(value["north"]))
                return _box_km2(box, None if crs is None else int(crs), epsg)
            except (TypeError, ValueError):
                continue
        if isinstance(value, Mapping) and "type" in value and ("coordinates" in value or "features" in value):
            try:
                shapes = [shapely.geometry.shape(f["geometry"]) for f in value["features"]] \
                    if value["type"] == "FeatureCollection" else [shapely.geometry.shape(value)]
                found = shapely.unary_union(shapes).bounds
            except (KeyError, TypeError, ValueError, AttributeError, shapely.errors.ShapelyError):
                continue
            return _box_km2(found, None, epsg)
    if geometry:
        return _box_km2(shapely.from_wkt(geometry).bounds, None, epsg)
    west, south, east, north = bounds
    if west is not None and south is not None and east is not None and north is not None:
        return _box_km2((west, south, east, north), epsg, epsg)
    return 0.0


def months_of(parameters: Mapping[str, Any]) -> float:
    """The months of a temporal extent among ``parameters`` (a value of two ISO dates), at least one."""
    for value in parameters.values():
        if isinstance(value, list | tuple) and len(value) == 2 and all(isinstance(v, str) for v in value):
            try:
                start, end = (date.fromisoformat(v[:10]) for v in value)
            except ValueError:
                continue
            return max(1.0, (end - start).days / MONTH_DAYS)
    return 1.0


def months(task: Task) -> float:
    """The months of the task's temporal extent, at least one."""
    return months_of(task.parameters)


def size(task: Task) -> float:
    """km² times months: what the models scale by."""
    return extent_km2(task) * months(task)


# -- measurements ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Measurement:
    """One done task, as the forecast sees it."""

    task_id: int
    tile_id: str
    backend: str | None
    km2: float
    months: float
    credits: float
    slot_seconds: float | None
    """From the launch (the token recorded) to the job seen finished: the time it held a slot."""
    job_seconds: float | None
    """From the job created (its id recorded) to it seen finished: the slot's time without the wait
    for the launches before it in the same tick."""
    launched: float | None
    """When its last job's token was recorded, and when the job was created (seconds since 1970):
    the launches of one tick are made one after the other, which `launch_cost` reads."""
    created: float | None
    queue_seconds: float | None
    run_seconds: float | None
    download_seconds: float | None
    cpu: str | None
    memory: str | None
    output_bytes: int

    @property
    def size(self) -> float:
        return self.km2 * self.months

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _seconds(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return max(0.0, (end - start).total_seconds())


def _usage(usage: Mapping[str, Any] | None, key: str) -> str | None:
    entry = (usage or {}).get(key)
    if isinstance(entry, Mapping) and isinstance(entry.get("value"), int | float):
        return f"{entry['value']:g} {entry.get('unit', '')}".strip()
    return None


def _output_bytes(paths: Iterable[str] | None) -> int:
    total = 0
    for path in paths or ():
        try:
            total += Path(path).stat().st_size
        except OSError:
            continue
    return total


def measure(task: Task, attempts: Sequence[JobRecord]) -> Measurement:
    """A done task's measurement: ``attempts`` are its ledger rows (every job it had)."""
    last = max(attempts, key=lambda row: row.attempt) if attempts else None
    return Measurement(
        task_id=task.id,
        tile_id=task.tile_id,
        backend=task.backend,
        km2=round(extent_km2(task), 6),
        months=round(months(task), 4),
        credits=float(sum(row.costs or 0.0 for row in attempts) or task.costs or 0.0),
        slot_seconds=_seconds(last.requested, last.finished) if last else None,
        job_seconds=_seconds(last.created, last.finished) if last else None,
        launched=last.requested.timestamp() if last else None,
        created=last.created.timestamp() if last and last.created else None,
        queue_seconds=_seconds(last.created, last.started) if last else None,
        run_seconds=_seconds(last.started, last.finished) if last else None,
        download_seconds=_seconds(task.finished, task.updated) if task.state is S.DONE else None,
        cpu=_usage(task.usage, "cpu"),
        memory=_usage(task.usage, "memory"),
        output_bytes=_output_bytes(task.result_paths),
    )


def measurements(tasks: Iterable[Task], ledger: Iterable[JobRecord]) -> list[Measurement]:
    """The measurement of every done task among ``tasks``."""
    by_task: dict[int, list[JobRecord]] = {}
    for row in ledger:
        by_task.setdefault(row.task_id, []).append(row)
    return [measure(task, by_task.get(task.id, [])) for task in tasks if task.state is S.DONE]


# -- the models -----------------------------------------------------------------------------------


Values = Sequence[float] | np.ndarray[Any, Any]


def fit(sizes: Values, values: Values) -> tuple[float, float]:
    """``(a, b)`` of ``value ≈ a + b * size``, neither below zero; all sizes alike: ``b`` alone."""
    x = np.asarray(sizes, dtype=float)
    return _weighted_fit(x, np.asarray(values, dtype=float), np.ones_like(x))


def _weighted_fit(x: np.ndarray[Any, Any], y: np.ndarray[Any, Any], w: np.ndarray[Any, Any],
                  xx: np.ndarray[Any, Any] | None = None, xy: np.ndarray[Any, Any] | None = None
                  ) -> tuple[float, float]:
    """`fit` with each point counted ``w`` times (a bootstrap resample), from the weighted sums
    (``xx`` and ``xy``: ``x * x`` and ``x * y``, when the caller has them already)."""
    sw = float(w.sum())
    if sw <= 0:
        return 0.0, 0.0
    sx, sy = float(np.dot(w, x)), float(np.dot(w, y))
    sxx = float(np.dot(w, x * x if xx is None else xx))
    sxy = float(np.dot(w, x * y if xy is None else xy))
    spread = sxx - sx * sx / sw
    if spread <= 1e-9 * max(1.0, sxx):
        return (0.0, sy / sx) if sx > 0 else (sy / sw, 0.0)
    b = (sxy - sx * sy / sw) / spread
    a = (sy - b * sx) / sw
    if b < 0:
        return max(0.0, sy / sw), 0.0
    if a < 0:
        return 0.0, sxy / sxx
    return a, b


@dataclass(frozen=True)
class Interval:
    """A median and a 90 % interval."""

    median: float
    low: float
    high: float

    @classmethod
    def of(cls, samples: Sequence[float] | np.ndarray[Any, Any]) -> Interval:
        values = np.asarray(samples, dtype=float)
        low, median, high = np.percentile(values, [5, 50, 95])
        return cls(float(median), float(low), float(high))

    def shifted(self, by: float) -> Interval:
        return Interval(self.median + by, self.low + by, self.high + by)

    def to_dict(self) -> dict[str, float]:
        return {"median": round(self.median, 6), "low": round(self.low, 6), "high": round(self.high, 6)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Interval:
        return cls(float(data["median"]), float(data["low"]), float(data["high"]))


def _bootstrap(
    sizes: np.ndarray[Any, Any], values: np.ndarray[Any, Any], count: int
) -> list[tuple[float, float]]:
    """The fits on ``count`` resamples with replacement, as weights (each point's count), so that
    one resample of 100,000 measurements costs a few dot products."""
    rng = np.random.default_rng(SEED)
    n = len(sizes)
    xx, xy = sizes * sizes, sizes * values
    def weights() -> np.ndarray[Any, Any]:
        return np.bincount(rng.integers(0, n, n), minlength=n).astype(float)

    return [_weighted_fit(sizes, values, weights(), xx, xy) for _ in range(count)]


def schedule(durations: Values, slots: Sequence[int], launch: float = 0.0) -> float:
    """Seconds until the last of ``durations`` ends, launched in order, each into the slot (of the
    backends' ``slots``) that frees first, by one launcher that takes ``launch`` seconds a job (the
    scheduler creates jobs one after the other)."""
    total = sum(max(0, s) for s in slots)
    times = np.asarray(durations, dtype=float)
    if not len(times) or total <= 0:
        return 0.0
    if len(times) > EXACT_SCHEDULE_MAX:
        return max(float(times.sum()) / total, launch * len(times)) + float(times.max())
    free = [0.0] * min(total, len(times))
    heapq.heapify(free)
    end = launcher = 0.0
    for duration in times.tolist():
        launcher = max(heapq.heappop(free), launcher) + launch
        finish = launcher + duration
        end = max(end, finish)
        heapq.heappush(free, finish)
    return end


SAME_TICK_S = 0.05
"""Tokens recorded this close together were claimed in one tick, and created one after the other."""


def launch_cost(measured: Sequence[Measurement]) -> float:
    """Seconds the scheduler takes to create one job: the median gap between the creations of jobs
    claimed in the same tick (else the median wait from the token to the job); 0 when unknown."""
    timed = sorted((m.created, m.launched) for m in measured
                   if m.launched is not None and m.created is not None)
    gaps = [later[0] - earlier[0] for earlier, later in pairwise(timed)
            if abs(later[1] - earlier[1]) <= SAME_TICK_S and later[0] > earlier[0]]
    if gaps:
        return float(np.median(gaps))
    waits = [created - launched for created, launched in timed if created >= launched]
    return float(np.median(waits)) if waits else 0.0


# -- the forecast ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Forecast:
    """The whole campaign's credits, the time left and the results' volume (see the module docstring)."""

    basis: str
    """``"pilot"`` (from the pilot tiles) or ``"running"`` (from every task done so far)."""
    made: str
    """When (ISO 8601)."""
    measured: int
    """Done tasks the models were fitted on."""
    tasks: int
    """Tasks forecast: every task of the campaign that is or will be run."""
    remaining: int
    """Of them, not done yet."""
    credits: Interval
    """Credits of the whole campaign: spent on the done tasks plus the rest's forecast."""
    makespan_s: Interval
    """Seconds from `made` until the last remaining task is done, with `slots` job slots."""
    volume_bytes: Interval
    """Bytes of results of the whole campaign."""
    slots: int
    spent: float
    """Credits spent on the done tasks when it was made."""
    launch_s: float = 0.0
    """Seconds the scheduler took to create one job (`launch_cost`), which the makespan counts."""
    models: dict[str, tuple[float, float]] = field(default_factory=dict)
    """``(a, b)`` of each model (``credits``, ``slot_seconds``, ``job_seconds``, ``output_bytes``),
    for `tracking`."""
    credits_per_km2: float | None = None
    """Credits per km² of one month, over the tasks measured."""
    seconds_per_km2: float | None = None
    """Job slot seconds per km² of one month, over the tasks measured."""

    def over(self, budget: float | None) -> bool:
        """Whether the median forecast exceeds ``budget`` credits."""
        return budget is not None and self.credits.median > budget

    def predict(self, model: str, task_size: float) -> float:
        a, b = self.models.get(model, (0.0, 0.0))
        return a + b * task_size

    def to_dict(self) -> dict[str, Any]:
        return {
            "basis": self.basis,
            "made": self.made,
            "measured": self.measured,
            "tasks": self.tasks,
            "remaining": self.remaining,
            "credits": self.credits.to_dict(),
            "makespan_s": self.makespan_s.to_dict(),
            "volume_bytes": self.volume_bytes.to_dict(),
            "slots": self.slots,
            "spent": round(self.spent, 6),
            "launch_s": round(self.launch_s, 6),
            "models": {name: [a, b] for name, (a, b) in self.models.items()},
            "credits_per_km2": self.credits_per_km2,
            "seconds_per_km2": self.seconds_per_km2,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Forecast:
        return cls(
            basis=str(data["basis"]),
            made=str(data["made"]),
            measured=int(data["measured"]),
            tasks=int(data["tasks"]),
            remaining=int(data["remaining"]),
            credits=Interval.from_dict(data["credits"]),
            makespan_s=Interval.from_dict(data["makespan_s"]),
            volume_bytes=Interval.from_dict(data["volume_bytes"]),
            slots=int(data["slots"]),
            spent=float(data.get("spent", 0.0)),
            launch_s=float(data.get("launch_s", 0.0)),
            models={str(k): (float(v[0]), float(v[1])) for k, v in (data.get("models") or {}).items()},
            credits_per_km2=data.get("credits_per_km2"),
            seconds_per_km2=data.get("seconds_per_km2"),
        )


def forecast(
    measured: Sequence[Measurement],
    remaining: Sequence[float],
    *,
    slots: Sequence[int],
    basis: str,
    made: datetime,
) -> Forecast | None:
    """The forecast from the ``measured`` tasks for the tasks still to run, given by their sizes
    (``remaining``, in launch order), with the backends' ``slots``; None with nothing measured."""
    if not measured:
        return None
    x = np.array([m.size for m in measured])
    left = np.asarray(remaining, dtype=float)
    spent = float(sum(m.credits for m in measured))
    volume_done = float(sum(m.output_bytes for m in measured))
    models: dict[str, tuple[float, float]] = {}
    intervals: dict[str, Interval] = {}
    for name, values in (
        ("credits", [m.credits for m in measured]),
        ("output_bytes", [float(m.output_bytes) for m in measured]),
    ):
        y = np.array(values)
        models[name] = fit(x, y)
        totals = [a * len(left) + b * float(left.sum()) for a, b in _bootstrap(x, y, RESAMPLES)]
        intervals[name] = Interval.of(totals)
    timed = [m for m in measured if m.slot_seconds is not None]
    tail = float(np.median([m.download_seconds for m in measured if m.download_seconds is not None] or [0.0]))
    launch = launch_cost(measured)
    if timed:
        tx = np.array([m.size for m in timed])
        models["slot_seconds"] = fit(tx, [float(m.slot_seconds or 0.0) for m in timed])
        ty = np.array([float(m.job_seconds if m.job_seconds is not None else m.slot_seconds or 0.0)
                       for m in timed])
        models["job_seconds"] = fit(tx, ty)
        spans = [
            schedule(a + b * left, slots, launch) + tail if len(left) else 0.0
            for a, b in _bootstrap(tx, ty, SCHEDULE_RESAMPLES)
        ]
        makespan = Interval.of(spans)
    else:
        makespan = Interval(math.nan, math.nan, math.nan)
    unit = float(x.sum())
    return Forecast(
        basis=basis,
        made=made.isoformat(),
        measured=len(measured),
        tasks=len(measured) + len(remaining),
        remaining=len(remaining),
        credits=intervals["credits"].shifted(spent),
        makespan_s=makespan,
        volume_bytes=intervals["output_bytes"].shifted(volume_done),
        slots=int(sum(slots)),
        spent=spent,
        launch_s=launch,
        models=models,
        credits_per_km2=round(spent / unit, 6) if unit > 0 else None,
        seconds_per_km2=round(sum(m.slot_seconds or 0.0 for m in timed) / float(tx.sum()), 6)
        if timed and float(tx.sum()) > 0 else None,
    )


@dataclass(frozen=True)
class Tracking:
    """How the done tasks compare with what a forecast expected of them."""

    done: int
    spent: float
    expected: float

    @property
    def ratio(self) -> float | None:
        return self.spent / self.expected if self.expected > 0 else None

    def describe(self) -> str:
        if self.ratio is None:
            return f"{self.done} task(s) done, {self.spent:,.2f} credits"
        return (f"{self.done} task(s) done for {self.spent:,.2f} credits, "
                f"{(self.ratio - 1) * 100:+.0f} % against the forecast ({self.expected:,.2f})")

    def to_dict(self) -> dict[str, Any]:
        ratio = self.ratio
        return {"done": self.done, "spent": round(self.spent, 6), "expected": round(self.expected, 6),
                "ratio": None if ratio is None else round(ratio, 4)}


def tracking(baseline: Forecast, measured: Sequence[Measurement]) -> Tracking:
    """The done tasks' credits against what ``baseline`` (the pilot's forecast) expected of them."""
    expected = sum(baseline.predict("credits", m.size) for m in measured)
    return Tracking(len(measured), float(sum(m.credits for m in measured)), float(expected))


# -- from a store ---------------------------------------------------------------------------------

WILL_RUN: frozenset[TaskState] = frozenset(
    {S.PENDING, S.CREATING, S.QUEUED, S.RUNNING, S.FINISHED, S.DOWNLOADING}
)
"""States of the tasks a forecast counts as still to come (failed, canceled, skipped ones will not
run unless retried)."""


class Gauge:
    """What a campaign's forecasts are made from, kept between them (one per process and campaign):
    each task's size and each done task's measurement. A task that is done stays done, and a
    task's extent never changes, so a forecast reads every task's state (two plain columns) and
    only the tasks new to it, or done since the last one."""

    def __init__(self, store: Store, campaign_id: int) -> None:
        self.store = store
        self.campaign_id = campaign_id
        self._sizes: dict[int, float] = {}
        self._measured: dict[int, Measurement] = {}

    def forecast(self, *, slots: Sequence[int], basis: str) -> tuple[Forecast | None, list[Measurement]]:
        """The forecast from every task done so far, and the measurements it was made from."""
        states = self.store.task_states(self.campaign_id)
        unsized = [task_id for task_id, _ in states if task_id not in self._sizes]
        for chunk in _chunks(unsized):
            self._sizes.update(self.store.task_sizes(self.campaign_id, chunk, size_of=_size_of))
        done = [task_id for task_id, state in states if state is S.DONE]
        for chunk in _chunks([task_id for task_id in done if task_id not in self._measured]):
            tasks = self.store.tasks_in(self.campaign_id, (S.DONE,), ids=chunk)
            ledger = self.store.ledger_of(self.campaign_id, chunk)
            self._measured.update((m.task_id, m) for m in measurements(tasks, ledger))
        measured = [self._measured[task_id] for task_id in done if task_id in self._measured]
        left = [self._sizes.get(task_id, 0.0) for task_id, state in states if state in WILL_RUN]
        return forecast(measured, left, slots=slots, basis=basis, made=self.store.now()), measured


def of_campaign(
    store: Store, campaign_id: int, *, slots: Sequence[int], basis: str
) -> tuple[Forecast | None, list[Measurement]]:
    """The forecast of a campaign from every task done in ``store`` so far, and its measurements."""
    return Gauge(store, campaign_id).forecast(slots=slots, basis=basis)


def _size_of(parameters: Mapping[str, Any], geometry: str | None, epsg: int | None,
             bounds: tuple[float | None, ...]) -> float:
    return extent_of(parameters, geometry, epsg, bounds) * months_of(parameters)


def _chunks(ids: Sequence[int], size: int = 5_000) -> list[list[int]]:
    return [list(ids[i:i + size]) for i in range(0, len(ids), size)]
