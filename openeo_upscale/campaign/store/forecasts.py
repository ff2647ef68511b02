"""The forecasts of a campaign (part of `Store`): each one as JSON, with when it was made and
from what (``"pilot"``, ``"running"``), and the plain reads a forecast is made from (every
task's state, the columns a task's size comes from, the ledger rows of some tasks).
`campaign.forecast` reads and writes the JSON."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from openeo_upscale.campaign.models import JobRecord
from openeo_upscale.campaign.states import TaskState
from openeo_upscale.campaign.store.base import StoreBase, chunks
from openeo_upscale.campaign.store.schema import forecasts_table, jobs_table, tasks_table

_f = forecasts_table
_t = tasks_table

ID_CHUNK = 5_000
"""Task ids per query."""

SizeOf = Callable[[Mapping[str, Any], str | None, int | None, tuple[float | None, ...]], float]
"""A task's size from its parameters, lon/lat geometry WKT, EPSG code and native box."""


@dataclass(frozen=True)
class StoredForecast:
    id: int
    made: datetime
    basis: str
    forecast: dict[str, Any]


class ForecastQueries(StoreBase):
    """Recording and reading forecasts."""

    def record_forecast(self, campaign_id: int, basis: str, forecast: Mapping[str, Any]) -> int:
        """Keep one forecast; returns its id."""
        with self._write() as conn:
            return int(
                conn.execute(
                    sa.insert(_f)
                    .values(campaign_id=campaign_id, made=self._clock(), basis=basis, forecast=dict(forecast))
                    .returning(_f.c.id)
                ).scalar_one()
            )

    def forecast(
        self, campaign_id: int, *, basis: str | None = None, first: bool = False
    ) -> StoredForecast | None:
        """The newest forecast (of ``basis`` when given; the oldest one with ``first``), or None."""
        query = sa.select(_f).where(_f.c.campaign_id == campaign_id)
        if basis is not None:
            query = query.where(_f.c.basis == basis)
        query = query.order_by(_f.c.id if first else _f.c.id.desc()).limit(1)
        with self._read() as conn:
            row = conn.execute(query).first()
        if row is None:
            return None
        return StoredForecast(int(row.id), row.made, str(row.basis), dict(row.forecast))

    def task_states(self, campaign_id: int) -> list[tuple[int, TaskState]]:
        """Every task's id and state, by id (two plain columns: cheap at 100,000 tasks)."""
        query = sa.select(_t.c.id, _t.c.state).where(_t.c.campaign_id == campaign_id).order_by(_t.c.id)
        with self._read() as conn:
            return [(int(task_id), TaskState(state)) for task_id, state in conn.execute(query)]

    def task_sizes(self, campaign_id: int, task_ids: Sequence[int], *, size_of: SizeOf) -> dict[int, float]:
        """``size_of`` each of the tasks ``task_ids``, read from their columns alone."""
        query = sa.select(_t.c.id, _t.c.parameters, _t.c.geometry, _t.c.epsg, _t.c.west, _t.c.south,
                          _t.c.east, _t.c.north).where(_t.c.campaign_id == campaign_id,
                                                       _t.c.id.in_(list(task_ids)))
        with self._read() as conn:
            rows = conn.execute(query).all()
        return {int(row.id): size_of(row.parameters or {}, row.geometry, row.epsg,
                                     (row.west, row.south, row.east, row.north)) for row in rows}

    def ledger_of(self, campaign_id: int, task_ids: Sequence[int]) -> list[JobRecord]:
        """The ledger rows (every job) of the tasks ``task_ids``, oldest first (asked for in chunks:
        a database takes only so many values in one query)."""
        found: list[JobRecord] = []
        with self._read() as conn:
            for chunk in chunks(task_ids, ID_CHUNK):
                query = sa.select(jobs_table).where(jobs_table.c.campaign_id == campaign_id,
                                                    jobs_table.c.task_id.in_(chunk))
                found += [JobRecord.from_row(dict(row._mapping)) for row in conn.execute(query)]
        return sorted(found, key=lambda row: row.id)
