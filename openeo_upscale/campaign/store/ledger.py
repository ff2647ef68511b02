"""The ledger of backend jobs and the launch claim (part of `Store`).

A launch is decided in the transaction that claims the slot: `claim_launches` checks that the
runner still holds the backend's lease, counts the campaign's jobs on that backend and, with a
credit cap, what has been spent and what the jobs in flight will cost, and only then records the
client tokens. Runners racing to launch take turns on the lease row (and on the campaign row when
a budget counts the whole campaign), so the number of a campaign's jobs on a backend never exceeds
its capacity, whatever the number of runners.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from openeo_upscale.campaign.models import JobRecord
from openeo_upscale.campaign.states import TASK_HOLDING, JobStatus, TaskState
from openeo_upscale.campaign.store.schema import backend_leases_table, jobs_table, tasks_table
from openeo_upscale.campaign.store.tasks import TaskQueries

_HOLDING = [state.value for state in TASK_HOLDING]
_WAITING = [JobStatus.CREATED.value, JobStatus.QUEUED.value]


@dataclass(frozen=True)
class Launch:
    """One pending task to launch: its next attempt and that attempt's client token."""

    task_id: int
    attempt: int
    token: str
    reason: str


@dataclass(frozen=True)
class Claimed:
    """What `claim_launches` recorded, and why it recorded fewer than asked (None: it did not)."""

    task_ids: list[int] = field(default_factory=list)
    held_back: str | None = None
    budget: bool = False
    """True when the credit budget is what held launches back."""
    lost: int = 0
    """Launches the slots allowed whose task was no longer pending (another runner took it)."""


@dataclass(frozen=True)
class Spending:
    """Credits of a campaign: billed so far, and what the jobs still in flight are expected to cost."""

    spent: float
    """Sum of the costs of all the campaign's jobs (every attempt)."""
    in_flight: int
    """Jobs whose token is recorded and that have not ended."""
    per_job: float | None
    """Mean costs of the ended jobs that have costs; None before the first."""

    @property
    def committed(self) -> float:
        """Spent plus the expected costs of the jobs in flight."""
        return self.spent + self.in_flight * (self.per_job or 0.0)

    def room(self, max_credits: float) -> float:
        """How many more jobs fit under ``max_credits``, counting the jobs in flight (inf: no basis)."""
        if self.spent >= max_credits:
            return 0
        if not self.per_job:
            return math.inf
        return max(0, math.floor((max_credits - self.spent) / self.per_job) - self.in_flight)

    def describe(self, max_credits: float) -> str:
        """``credit budget of 20: 17.40 spent, 2 job(s) in flight; a job costs about 1.30``."""
        text = f"credit budget of {max_credits:g}: {self.spent:.2f} spent"
        if self.in_flight:
            text += f", {self.in_flight} job(s) in flight"
        if self.per_job:
            text += f"; a job costs about {self.per_job:.2f}"
        return text


class LedgerQueries(TaskQueries):
    """The launch claim, and reads of the ledger."""

    def claim_launches(
        self,
        campaign_id: int,
        backend: str,
        launches: Sequence[Launch],
        *,
        runner_id: int | None,
        capacity: int,
        queue_limit: int | None = None,
        max_credits: float | None = None,
        actor: str = "scheduler",
    ) -> Claimed:
        """Record the client tokens of as many ``launches`` as the backend's slots and the budget allow.

        In one transaction: the runner's lease on ``backend`` is checked (``runner_id`` None: no
        lease is needed, one runner alone), the campaign's tasks holding a job there are counted
        against ``capacity`` (and those waiting against ``queue_limit``), the budget is checked
        (spent plus the jobs in flight at the mean cost of a job, see `Spending.room`), and each
        task claimed moves ``pending -> creating`` with its token, its ledger row and its event.
        """
        t = tasks_table
        with self._write() as conn:
            now = self._clock()
            if runner_id is not None:
                lease = conn.execute(
                    sa.select(backend_leases_table.c.runner_id, backend_leases_table.c.expires)
                    .where(
                        backend_leases_table.c.campaign_id == campaign_id,
                        backend_leases_table.c.backend == backend,
                    )
                    .with_for_update()
                ).first()
                if (
                    lease is None
                    or lease.runner_id != runner_id
                    or lease.expires is None
                    or lease.expires <= now
                ):
                    return Claimed([], f"runner {runner_id} no longer holds backend {backend}")
            if runner_id is None or max_credits is not None:
                self._lock_campaign(conn, campaign_id)
            on_backend = [t.c.campaign_id == campaign_id, t.c.backend == backend, t.c.state.in_(_HOLDING)]
            active = int(conn.execute(sa.select(sa.func.count()).where(*on_backend)).scalar() or 0)
            room = capacity - active
            held_back = (
                None if room >= len(launches) else f"backend {backend} holds {active} of {capacity} job(s)"
            )
            if queue_limit is not None:
                waiting = int(
                    conn.execute(
                        sa.select(sa.func.count()).where(
                            *on_backend,
                            sa.or_(t.c.state == TaskState.CREATING.value, t.c.job_status.in_(_WAITING)),
                        )
                    ).scalar()
                    or 0
                )
                if queue_limit - waiting < room:
                    room = queue_limit - waiting
                    held_back = f"backend {backend} has {waiting} of {queue_limit} job(s) waiting"
            budget = False
            if max_credits is not None:
                spending = self._spending(conn, campaign_id)
                allowed = spending.room(max_credits)
                if allowed < room:
                    room, held_back, budget = int(allowed), spending.describe(max_credits), True
            claimed = []
            for launch in launches[: max(room, 0)]:
                fields = {
                    "backend": backend,
                    "client_token": launch.token,
                    "attempts": launch.attempt,
                    "job_id": None,
                    "job_status": None,
                    "started": None,
                    "finished": None,
                    "error": None,
                    "claimed_by": runner_id,
                    "claim_expires": None,
                }
                if self._transition(
                    conn,
                    launch.task_id,
                    TaskState.PENDING,
                    TaskState.CREATING,
                    actor=actor,
                    reason=launch.reason,
                    fields=fields,
                ):
                    claimed.append(launch.task_id)
            lost = min(max(room, 0), len(launches)) - len(claimed)
            return Claimed(claimed, held_back, budget, lost)

    def spending(self, campaign_id: int) -> Spending:
        """The campaign's credits: spent over every job, jobs in flight, the mean costs of a job."""
        with self._read() as conn:
            return self._spending(conn, campaign_id)

    def _spending(self, conn: sa.Connection, campaign_id: int) -> Spending:
        j = jobs_table
        spent, in_flight, per_job = conn.execute(
            sa.select(
                sa.func.coalesce(sa.func.sum(j.c.costs), 0.0),
                sa.func.coalesce(sa.func.sum(sa.case((j.c.finished.is_(None), 1), else_=0)), 0),
                sa.func.avg(sa.case((j.c.finished.is_not(None), j.c.costs), else_=None)),
            ).where(j.c.campaign_id == campaign_id)
        ).one()
        return Spending(float(spent or 0.0), int(in_flight or 0), None if per_job is None else float(per_job))

    def jobs_missing_costs(self, campaign_id: int, backend: str, *, since: datetime) -> set[str]:
        """Job ids on ``backend`` that ended in error or were canceled after ``since`` with no costs yet."""
        j = jobs_table
        query = sa.select(j.c.job_id).where(
            j.c.campaign_id == campaign_id,
            j.c.backend == backend,
            j.c.job_id.is_not(None),
            j.c.costs.is_(None),
            j.c.finished >= since,
            j.c.status.in_([JobStatus.ERROR.value, JobStatus.CANCELED.value]),
        )
        with self._read() as conn:
            return {str(job_id) for job_id in conn.execute(query).scalars()}

    def record_late_costs(
        self, campaign_id: int, backend: str, job_id: str, costs: float, usage: dict[str, Any] | None
    ) -> bool:
        """Costs a backend listed after the job had ended for the campaign: on its ledger row and its
        task's total. False when the row has costs already (another runner recorded them)."""
        j, t = jobs_table, tasks_table
        with self._write() as conn:
            row = conn.execute(
                sa.select(j.c.id, j.c.task_id).where(
                    j.c.campaign_id == campaign_id,
                    j.c.backend == backend,
                    j.c.job_id == job_id,
                    j.c.costs.is_(None),
                )
            ).first()
            if row is None:
                return False
            values: dict[str, Any] = {"costs": costs}
            if usage is not None:
                values["usage"] = usage
            if (
                conn.execute(
                    sa.update(j).where(j.c.id == row.id, j.c.costs.is_(None)).values(values)
                ).rowcount
                != 1
            ):
                return False
            conn.execute(
                sa.update(t)
                .where(t.c.id == row.task_id)
                .values(costs=sa.func.coalesce(t.c.costs, 0.0) + costs)
            )
            return True

    def credits(self, campaign_id: int) -> float:
        """Credits billed so far: the sum of the costs of every job of the campaign, every attempt."""
        return self.spending(campaign_id).spent

    def jobs_of(self, task_id: int) -> list[JobRecord]:
        """The ledger rows of one task, first attempt first."""
        query = sa.select(jobs_table).where(jobs_table.c.task_id == task_id).order_by(jobs_table.c.id)
        with self._read() as conn:
            return [JobRecord.from_row(dict(row._mapping)) for row in conn.execute(query)]

    def ledger(self, campaign_id: int, *, chunk: int = 10_000) -> Iterator[JobRecord]:
        """Every ledger row of the campaign, oldest first, read in chunks."""
        last = 0
        while True:
            query = (
                sa.select(jobs_table)
                .where(jobs_table.c.campaign_id == campaign_id, jobs_table.c.id > last)
                .order_by(jobs_table.c.id)
                .limit(chunk)
            )
            with self._read() as conn:
                rows = [JobRecord.from_row(dict(row._mapping)) for row in conn.execute(query)]
            if not rows:
                return
            yield from rows
            last = rows[-1].id

    def ledger_summary(self, campaign_id: int) -> dict[str, dict[str, Any]]:
        """Per backend: jobs recorded, jobs in flight, jobs that ended in error, credits."""
        j = jobs_table
        query = (
            sa.select(
                j.c.backend,
                sa.func.count(),
                sa.func.sum(sa.case((j.c.finished.is_(None), 1), else_=0)),
                sa.func.sum(sa.case((j.c.status == JobStatus.ERROR.value, 1), else_=0)),
                sa.func.coalesce(sa.func.sum(j.c.costs), 0.0),
            )
            .where(j.c.campaign_id == campaign_id)
            .group_by(j.c.backend)
            .order_by(j.c.backend)
        )
        with self._read() as conn:
            return {
                backend: {
                    "jobs": int(n),
                    "in_flight": int(flying or 0),
                    "errors": int(errors or 0),
                    "credits": float(credits or 0.0),
                }
                for backend, n, flying, errors, credits in conn.execute(query)
            }

    def retried_tasks(self, campaign_id: int) -> int:
        """How many of the campaign's tasks needed more than one job."""
        j = jobs_table
        per_task = (
            sa.select(j.c.task_id)
            .where(j.c.campaign_id == campaign_id)
            .group_by(j.c.task_id)
            .having(sa.func.count() > 1)
            .subquery()
        )
        with self._read() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(per_task)).scalar() or 0)
