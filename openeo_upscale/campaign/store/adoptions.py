"""Jobs taken over from another job manager, recorded with the campaign's tasks (part of `Store`).

A task whose tile another tool (the ``openeo`` client's ``MultiBackendJobManager``) already ran or is
running starts in the state its job has reached, holding that job's id, instead of `pending`:
`create_campaign` writes the tasks and these adoptions in one transaction, so a crash never leaves a
campaign whose adopted tiles look pending (and would be run a second time).

An adopted job carries no client token in its title. Its ledger row and its task are given the
marker `adopted_token` instead (the ledger needs a unique one per job), which `TOKEN_PATTERN` of the
reconciler never matches: the scheduler follows an adopted job by its job id alone and never looks
for it, or creates it, by token.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from openeo_upscale.campaign.states import TASK_HOLDING, JobStatus, TaskState
from openeo_upscale.campaign.store.schema import events_table, jobs_table, tasks_table
from openeo_upscale.errors import StoreError

ADOPTED_PREFIX = "adopted-"
"""How the marker of an adopted job (`adopted_token`) begins."""

_WITH_JOB = frozenset({TaskState.CREATING, TaskState.QUEUED, TaskState.RUNNING, TaskState.FINISHED})
"""States an adopted task may only be in with a job id (it is followed or downloaded by it)."""


def adopted_token(task_id: int) -> str:
    """The marker of the job a task adopted: unique in the store (task ids are), never in a title."""
    return f"{ADOPTED_PREFIX}{task_id}"


def is_adopted_token(token: str | None) -> bool:
    """Whether a task's client token marks a job it adopted (rather than one it created)."""
    return token is not None and token.startswith(ADOPTED_PREFIX)


@dataclass(frozen=True)
class Adoption:
    """Where one tile of a new campaign starts: the state its job reached elsewhere, and that job.

    ``job_id`` and ``backend`` are required for the states in which the task is followed or
    downloaded (creating, queued, running, finished); a failed, canceled or skipped task may have
    none (its job was never created). ``reason`` is the text of the task's first event.
    """

    tile_id: str
    state: TaskState
    reason: str
    backend: str | None = None
    job_id: str | None = None
    job_status: JobStatus | None = None
    started: datetime | None = None
    costs: float | None = None
    error: str | None = None

    def __post_init__(self) -> None:
        if self.state in _WITH_JOB and (self.job_id is None or self.backend is None):
            raise StoreError(f"tile {self.tile_id}: a task adopted as {self.state} needs a job id and "
                             "a backend")
        if self.job_id is not None and self.backend is None:
            raise StoreError(f"tile {self.tile_id}: job {self.job_id} has no backend")


def insert_adoptions(conn: sa.Connection, campaign_id: int, adoptions: Sequence[Adoption], *,
                     now: datetime, actor: str) -> int:
    """Move the campaign's pending tasks named by ``adoptions`` to their adopted state, with their
    first event and, for those holding a job, its ledger row; inside the caller's transaction.
    Returns how many tasks were adopted; raises `StoreError` for a tile the campaign does not have."""
    t = tasks_table
    wanted = [a.tile_id for a in adoptions]
    ids: dict[str, int] = {}
    for start in range(0, len(wanted), 1000):
        chunk = wanted[start:start + 1000]
        ids.update((str(tile), int(task)) for tile, task in conn.execute(
            sa.select(t.c.tile_id, t.c.id).where(t.c.campaign_id == campaign_id, t.c.tile_id.in_(chunk))))
    missing = [tile for tile in wanted if tile not in ids]
    if missing:
        raise StoreError(f"campaign {campaign_id}: no task for the adopted tile(s) {missing[:5]}")
    updates, events, jobs = [], [], []
    for adoption in adoptions:
        task_id = ids[adoption.tile_id]
        token = adopted_token(task_id) if adoption.job_id is not None else None
        status = adoption.job_status.value if adoption.job_status is not None else None
        # The adopted job is attempt 1, and the floor too: it was not ours, so every task keeps its
        # full allowance of `max_attempts` jobs of its own.
        attempts = 1 if token is not None else 0
        ended = now if token is not None and adoption.state not in TASK_HOLDING else None
        updates.append({"_id": task_id, "_state": adoption.state.value, "_job_status": status,
                        "_backend": adoption.backend, "_job_id": adoption.job_id, "_token": token,
                        "_attempts": attempts, "_started": adoption.started, "_costs": adoption.costs,
                        "_error": adoption.error})
        events.append({"task_id": task_id, "at": now, "actor": actor, "from_state": TaskState.PENDING.value,
                       "to_state": adoption.state.value, "job_status": status, "reason": adoption.reason})
        if token is not None:
            jobs.append({"campaign_id": campaign_id, "task_id": task_id, "attempt": 1,
                         "backend": adoption.backend, "client_token": token, "job_id": adoption.job_id,
                         "runner_id": None, "requested": now, "created": now, "started": adoption.started,
                         "finished": ended, "status": status, "costs": adoption.costs,
                         "usage": None, "error": adoption.error})
    if not updates:
        return 0
    statement = (
        sa.update(t)
        .where(t.c.id == sa.bindparam("_id"), t.c.state == TaskState.PENDING.value)
        .values(state=sa.bindparam("_state"), job_status=sa.bindparam("_job_status"),
                backend=sa.bindparam("_backend"), job_id=sa.bindparam("_job_id"),
                client_token=sa.bindparam("_token"), attempts=sa.bindparam("_attempts"),
                attempt_floor=sa.bindparam("_attempts"), started=sa.bindparam("_started"),
                costs=sa.bindparam("_costs"), error=sa.bindparam("_error"), updated=now)
    )
    conn.execute(statement, updates)
    conn.execute(sa.insert(events_table), events)
    if jobs:
        conn.execute(sa.insert(jobs_table), jobs)
    return len(updates)
