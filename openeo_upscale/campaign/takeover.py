"""Taking over a campaign that the ``openeo`` client's ``MultiBackendJobManager`` (MBJM) started.

`read_takeover` reads the manager's job table (``job_tracker.csv``, or its Parquet) with
`exchange.read_job_rows`, which retries a read caught while the manager rewrites the file, and
turns each row into a tile of a new campaign and, where the row's job has gone somewhere, an
`Adoption`: where its task starts instead of `pending`. `take_over` creates the campaign with them in
one transaction (`Campaign.create` with ``adopt``). Nothing is asked of a backend here: the next run
(`Campaign.run`, ``openeo-upscale run``) follows the adopted jobs with the backends it is given,
whose names must be the table's ``backend_name`` values.

By the row's status (`TAKEOVER_STATES`):

- ``finished``: `finished` with the job id, so our download path fetches its results (no new job);
- ``created``, ``queued_for_start``, ``queued_for_start_failed``: created on the backend and not
  (known to be) started: `creating` with the job id; the reconciler starts that very job if it is
  still ``created``, and follows it otherwise. No second job is created;
- ``queued``, ``running``: followed by their job id like any of our jobs;
- ``error``: `failed` with the job's id and error, ready for `Campaign.retry`; ``start_failed`` (the
  manager could not create the job): `failed` without one;
- ``canceled``, ``skipped``: `canceled`, `skipped` (a `retry` of those states runs them);
- ``not_started``: `pending`.

Every adopted task's first event names its job id and the row's status. An adopted job whose backend
no longer lists it puts its task back to `pending` (see `reconcile`), with an event saying so; one that
finished but whose results are gone fails its download, and `retry` runs the tile again.
"""

from __future__ import annotations

import enum
import math
import os
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from openeo_upscale.campaign.campaign import Campaign
from openeo_upscale.campaign.creator import Udp
from openeo_upscale.campaign.exchange import read_job_rows, task_rows_of, tile_records_of
from openeo_upscale.campaign.reconcile import parse_time
from openeo_upscale.campaign.states import JobStatus, TaskState
from openeo_upscale.campaign.store import Adoption, Store
from openeo_upscale.errors import UpscaleError

__all__ = ["ADOPTED_JOB_STATUS", "TAKEOVER_STATES", "MbjmStatus", "TakeOver", "adoption_of", "read_takeover",
           "take_over"]


class MbjmStatus(enum.StrEnum):
    """The statuses ``MultiBackendJobManager`` writes in its job table's ``status`` column: the
    backend's job statuses plus its own bookkeeping ones."""

    NOT_STARTED = "not_started"
    CREATED = "created"
    QUEUED_FOR_START = "queued_for_start"
    """Created, and its start handed to the manager's worker thread."""
    QUEUED_FOR_START_FAILED = "queued_for_start_failed"
    """Created, but its start could not be handed to the worker thread."""
    QUEUED = "queued"
    RUNNING = "running"
    FINISHED = "finished"
    ERROR = "error"
    CANCELED = "canceled"
    START_FAILED = "start_failed"
    """The job could not be created (a connection error): there is no job."""
    SKIPPED = "skipped"
    """The manager's job creator returned no job for the row."""


S, M = TaskState, MbjmStatus

TAKEOVER_STATES: Mapping[MbjmStatus, TaskState] = MappingProxyType({
    M.NOT_STARTED: S.PENDING,
    M.CREATED: S.CREATING,
    M.QUEUED_FOR_START: S.CREATING,
    M.QUEUED_FOR_START_FAILED: S.CREATING,
    M.QUEUED: S.QUEUED,
    M.RUNNING: S.RUNNING,
    M.FINISHED: S.FINISHED,
    M.ERROR: S.FAILED,
    M.START_FAILED: S.FAILED,
    M.CANCELED: S.CANCELED,
    M.SKIPPED: S.SKIPPED,
})
"""The state a task starts in, by its row's status (see the module docstring)."""

ADOPTED_JOB_STATUS: Mapping[MbjmStatus, JobStatus | None] = MappingProxyType({
    M.NOT_STARTED: None,
    M.CREATED: JobStatus.CREATED,
    M.QUEUED_FOR_START: JobStatus.CREATED,
    M.QUEUED_FOR_START_FAILED: JobStatus.CREATED,
    M.QUEUED: JobStatus.QUEUED,
    M.RUNNING: JobStatus.RUNNING,
    M.FINISHED: JobStatus.FINISHED,
    M.ERROR: JobStatus.ERROR,
    M.START_FAILED: None,
    M.CANCELED: JobStatus.CANCELED,
    M.SKIPPED: None,
})
"""The backend's job status last seen by the manager, by its row's status (None: no job to speak of)."""

_WHAT: Mapping[TaskState, str] = MappingProxyType({
    S.CREATING: "created but not started there: this job is started here, no new one is created",
    S.QUEUED: "followed here by its job id",
    S.RUNNING: "followed here by its job id",
    S.FINISHED: "finished there: its results are downloaded here",
    S.FAILED: "failed there: `retry` runs the tile again",
    S.CANCELED: "canceled there",
    S.SKIPPED: "skipped there",
})


@dataclass(frozen=True)
class TakeOver:
    """What a job table holds for a new campaign: its rows (as `exchange.import_tasks` gives them),
    and where each tile whose job went somewhere starts."""

    rows: list[dict[str, Any]]
    adoptions: list[Adoption]
    statuses: dict[str, int]
    """How many rows had each status."""

    @property
    def tiles(self) -> list[dict[str, Any]]:
        """The tiles, as `Campaign.create` takes them."""
        return tile_records_of(self.rows)

    @property
    def backends(self) -> list[str]:
        """The backends of the adopted jobs: a run must be given backends of these names."""
        return sorted({a.backend for a in self.adoptions if a.backend is not None and a.job_id is not None})


def read_takeover(path: str | os.PathLike[str], *, format: str | None = None, pin_from: str | None = None,
                  wait: Callable[[float], None] = time.sleep) -> TakeOver:
    """Read a ``MultiBackendJobManager`` job table for `take_over` (see the module docstring).

    Raises `UpscaleError` for a file that cannot be read, a status the manager does not write, a
    job id without a ``backend_name``, a job that is followed or downloaded without a job id, or a
    job id on two rows (one job cannot be two tiles).
    """
    records = read_job_rows(path, format=format, wait=wait)
    rows = task_rows_of(records, pin_from)
    adoptions, statuses = [], Counter[str]()
    seen: dict[tuple[str, str], str] = {}
    for row, record in zip(rows, records, strict=True):
        adoption = adoption_of(row["tile_id"], record)
        statuses[str(record.get("status") or M.NOT_STARTED.value)] += 1
        if adoption is None:
            continue
        if adoption.job_id is not None:
            key = (str(adoption.backend), adoption.job_id)
            if key in seen:
                raise UpscaleError(f"{path}: job {adoption.job_id} on backend {adoption.backend} is on "
                                   f"the rows of tiles {seen[key]} and {adoption.tile_id}")
            seen[key] = adoption.tile_id
        adoptions.append(adoption)
    return TakeOver(rows, adoptions, dict(statuses))


def adoption_of(tile_id: str, cells: Mapping[str, Any]) -> Adoption | None:
    """Where the task of one job table row starts (None: pending, nothing to adopt); see
    `TAKEOVER_STATES`. Raises `UpscaleError` for a row that cannot be taken over safely."""
    text = _text(cells.get("status")) or M.NOT_STARTED.value
    try:
        status = MbjmStatus(text)
    except ValueError:
        known = ", ".join(s.value for s in MbjmStatus)
        raise UpscaleError(f"tile {tile_id}: unknown job table status {text!r} (known: {known})") from None
    state = TAKEOVER_STATES[status]
    if state is S.PENDING:
        return None
    job_id, backend = _text(cells.get("id")), _text(cells.get("backend_name"))
    if job_id is not None and backend is None:
        raise UpscaleError(f"tile {tile_id}: job {job_id} (status {status}) has no backend_name")
    if job_id is None and state in (S.CREATING, S.QUEUED, S.RUNNING, S.FINISHED):
        raise UpscaleError(f"tile {tile_id}: status {status} but no job id: that job cannot be found, and "
                           "running the tile again could run it twice")
    where = f"job {job_id} on backend {backend}" if job_id is not None else "no job"
    reason = f"adopted from the job table ({where}, status {status}): {_WHAT[state]}"
    error = None
    if status is M.ERROR:
        error = f"job {job_id} failed on backend {backend} (status error in the job table)"
    elif status is M.START_FAILED:
        error = "the job manager could not create the job (status start_failed in the job table)"
        reason = f"adopted from the job table (no job, status {status}): {error}; `retry` runs the tile"
    costs = cells.get("costs")
    return Adoption(
        tile_id=tile_id, state=state, reason=reason, backend=backend if job_id is not None else None,
        job_id=job_id, job_status=ADOPTED_JOB_STATUS[status] if job_id is not None else None,
        started=parse_time(_text(cells.get("running_start_time"))) if state is S.RUNNING else None,
        costs=float(costs) if isinstance(costs, int | float) and math.isfinite(costs) else None,
        error=error)


def take_over(store: Store | str | os.PathLike[str], path: str | os.PathLike[str],
              udp: Udp | str | os.PathLike[str] | Mapping[str, Any], *, name: str = "campaign",
              pin_from: str | None = None, wait: Callable[[float], None] = time.sleep,
              **create: Any) -> Campaign:
    """A new campaign of a ``MultiBackendJobManager`` job table's tiles, each adopting its row's job
    (`read_takeover`); ``create`` are further arguments of `Campaign.create` (``defaults``,
    ``output_dir``, ``namespace``, ...). Raises `CampaignExistsError` when the store holds a
    campaign of that name: a take-over never merges into one. Run the campaign with backends named
    as the table's ``backend_name`` values.
    """
    table = read_takeover(path, pin_from=pin_from, wait=wait)
    return Campaign.create(store, table.tiles, udp, name=name, on_exists="error", adopt=table.adoptions,
                           **create)


def _text(value: Any) -> str | None:
    """A cell as stripped text, None when missing or blank."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    text = str(value).strip()
    return text or None

