"""Read-only aggregates for the monitor, the report, exports and catalogues (part of `Store`).

The dashboard polls some of these every two seconds at 100,000 tasks, so they read plain columns
(timestamps as seconds since 1970, computed by the database) rather than `Task` objects, and
aggregate in SQL.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from openeo_upscale.campaign.models import Task
from openeo_upscale.campaign.states import TaskState
from openeo_upscale.campaign.store.base import StoreBase
from openeo_upscale.campaign.store.schema import events_table, jobs_table, tasks_table

_t = tasks_table
_e = events_table
_j = jobs_table

TileGeometry = tuple[int, str, str]
"""``(task id, tile id, geometry as WKT or GeoJSON text)``."""

TaskProgress = tuple[int, str, str | None, str | None, int, float | None, float | None, float | None, float]
"""``(task id, state, backend, job id, attempts, started, finished, costs, updated)``, the times in
seconds since 1970."""

StateMove = tuple[int, TaskState, TaskState, int]
"""``(bin, from state, to state, number of events)``."""


@dataclass(frozen=True)
class FailedTask:
    """A failed task as the dashboard lists it, with the reason of its last event."""

    task_id: int
    tile_id: str
    backend: str | None
    job_id: str | None
    attempts: int
    error: str | None
    reason: str | None
    """The reason recorded on the task's last event."""
    jobs: int
    """Its backend jobs in the ledger (every attempt)."""


def _epoch(column: Any, dialect: str) -> Any:
    """A timestamp column as seconds since 1970 (float), computed by the database."""
    if dialect == "sqlite":
        # the store keeps naive UTC text in SQLite; julianday reads it as UTC
        return (sa.func.julianday(sa.type_coerce(column, sa.String)) - 2440587.5) * 86400.0
    # PostgreSQL's extract() is numeric: a Decimal in Python, which does not mix with floats.
    return sa.cast(sa.extract("epoch", column), sa.Float)


class ViewQueries(StoreBase):
    """Named read-only queries over tasks, events and the ledger."""

    # tasks ----------------------------------------------------------------------------------------

    def task_count_and_last_id(self, campaign_id: int) -> tuple[int, int]:
        """How many tasks the campaign has, and its highest task id (0 without tasks): together they
        change exactly when tasks are added."""
        query = sa.select(sa.func.count(), sa.func.max(_t.c.id)).where(_t.c.campaign_id == campaign_id)
        with self._read() as conn:
            count, last = conn.execute(query).one()
        return int(count), int(last or 0)

    def campaign_task(self, campaign_id: int, task_id: int) -> Task | None:
        """The task with that id if it belongs to the campaign, else None."""
        query = sa.select(_t).where(_t.c.id == task_id, _t.c.campaign_id == campaign_id)
        with self._read() as conn:
            row = conn.execute(query).first()
        return None if row is None else Task.from_row(dict(row._mapping))

    def tile_geometries(self, campaign_id: int) -> Sequence[TileGeometry]:
        """The geometry text of each of the campaign's tasks that has one, by task id."""
        query = (
            sa.select(_t.c.id, _t.c.tile_id, _t.c.geometry)
            .where(_t.c.campaign_id == campaign_id, _t.c.geometry.is_not(None))
            .order_by(_t.c.id)
        )
        with self._read() as conn:
            return conn.execute(query).tuples().all()

    def task_progress(
        self, campaign_id: int, *, updated_since: datetime | None = None
    ) -> Sequence[TaskProgress]:
        """Per task, by id, what changes while the campaign runs (see `TaskProgress`); with
        ``updated_since`` only the tasks updated at or after it."""
        query = (
            sa.select(
                _t.c.id,
                _t.c.state,
                _t.c.backend,
                _t.c.job_id,
                _t.c.attempts,
                _epoch(_t.c.started, self.dialect),
                _epoch(_t.c.finished, self.dialect),
                _t.c.costs,
                _epoch(_t.c.updated, self.dialect),
            )
            .where(_t.c.campaign_id == campaign_id)
            .order_by(_t.c.id)
        )
        if updated_since is not None:
            query = query.where(_t.c.updated >= updated_since)
        with self._read() as conn:
            return conn.execute(query).tuples().all()

    def tasks_with_errors(self, campaign_id: int, *, limit: int) -> list[Task]:
        """The campaign's tasks that have an error recorded, most recently updated first, at most
        ``limit``."""
        query = (
            sa.select(_t)
            .where(_t.c.campaign_id == campaign_id, _t.c.error.is_not(None))
            .order_by(_t.c.updated.desc(), _t.c.id.desc())
            .limit(limit)
        )
        with self._read() as conn:
            return [Task.from_row(dict(row._mapping)) for row in conn.execute(query)]

    def failed_tasks(self, campaign_id: int, *, limit: int) -> list[FailedTask]:
        """The campaign's failed tasks, most recently changed first, at most ``limit``, each with the
        reason of its last event and its number of ledger jobs."""
        query = (
            sa.select(_t.c.id, _t.c.tile_id, _t.c.backend, _t.c.job_id, _t.c.attempts, _t.c.error)
            .where(_t.c.campaign_id == campaign_id, _t.c.state == TaskState.FAILED.value)
            .order_by(_t.c.updated.desc(), _t.c.id.desc())
            .limit(limit)
        )
        with self._read() as conn:
            rows = conn.execute(query).all()
            if not rows:
                return []
            ids = [row.id for row in rows]
            last = (
                sa.select(_e.c.task_id, sa.func.max(_e.c.id).label("last"))
                .where(_e.c.task_id.in_(ids))
                .group_by(_e.c.task_id)
                .subquery()
            )
            reasons: dict[int, str | None] = dict(
                conn.execute(sa.select(_e.c.task_id, _e.c.reason).join_from(_e, last, _e.c.id == last.c.last))
                .tuples()
                .all()
            )
            per_task = sa.select(_j.c.task_id, sa.func.count()).where(_j.c.task_id.in_(ids))
            jobs: dict[int, int] = dict(conn.execute(per_task.group_by(_j.c.task_id)).tuples().all())
        return [
            FailedTask(
                task_id=int(row.id),
                tile_id=row.tile_id,
                backend=row.backend,
                job_id=row.job_id,
                attempts=int(row.attempts),
                error=row.error,
                reason=reasons.get(row.id),
                jobs=int(jobs.get(row.id, 0)),
            )
            for row in rows
        ]

    def task_parameters(self, campaign_id: int, *, chunk: int = 10_000) -> Iterator[dict[str, Any]]:
        """Each task's UDP parameters, by task id, read in chunks (only that column)."""
        last = 0
        while True:
            query = (
                sa.select(_t.c.id, _t.c.parameters)
                .where(_t.c.campaign_id == campaign_id, _t.c.id > last)
                .order_by(_t.c.id)
                .limit(chunk)
            )
            with self._read() as conn:
                rows = conn.execute(query).tuples().all()
            for _, parameters in rows:
                yield dict(parameters or {})
            if len(rows) < chunk:
                return
            last = rows[-1][0]

    # events ---------------------------------------------------------------------------------------

    def first_running(self, task_ids: Sequence[int]) -> dict[int, datetime]:
        """When each of these tasks first went ``running``, from its events (tasks that never did are
        left out)."""
        if not task_ids:
            return {}
        query = (
            sa.select(_e.c.task_id, sa.func.min(_e.c.at))
            .where(_e.c.task_id.in_(list(task_ids)), _e.c.to_state == TaskState.RUNNING.value)
            .group_by(_e.c.task_id)
        )
        with self._read() as conn:
            # min() keeps the column's type, so the store's UTC decoding applies.
            return {int(task_id): at for task_id, at in conn.execute(query)}

    def _campaign_events(self, campaign_id: int) -> sa.Subquery:
        return (
            sa.select(_e.c.at, _e.c.from_state, _e.c.to_state)
            .join_from(_e, _t, _e.c.task_id == _t.c.id)
            .where(_t.c.campaign_id == campaign_id)
            .subquery()
        )

    def first_event_at(self, campaign_id: int) -> float | None:
        """Seconds since 1970 of the campaign's first event; None before any."""
        events = self._campaign_events(campaign_id)
        with self._read() as conn:
            first = conn.execute(sa.select(sa.func.min(_epoch(events.c.at, self.dialect)))).scalar()
        return None if first is None else float(first)

    def state_moves(self, campaign_id: int, *, start: float, width: float) -> list[StateMove]:
        """The campaign's events that changed a task's state, counted per time bin and pair of states.

        An event's bin is ``(at - start) / width`` (times in seconds since 1970) cast to an integer
        by the database; the caller clamps bins outside its range.
        """
        events = self._campaign_events(campaign_id)
        bin_of = sa.cast((_epoch(events.c.at, self.dialect) - start) / width, sa.Integer)
        query = (
            sa.select(bin_of, events.c.from_state, events.c.to_state, sa.func.count())
            .where(events.c.from_state != events.c.to_state)
            .group_by(bin_of, events.c.from_state, events.c.to_state)
        )
        with self._read() as conn:
            return [
                (int(index), TaskState(source), TaskState(target), int(number))
                for index, source, target, number in conn.execute(query)
            ]
