"""Campaign histories for the monitor tests, written through the store's own API: a launch is a
`Store.claim_launches` (which opens the attempt's ledger row), every later step a `Store.transition`."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

from openeo_upscale.campaign import Store, TaskState
from openeo_upscale.campaign.store.ledger import Launch

S = TaskState
T0 = datetime(2025, 5, 1, 12, 0, tzinfo=UTC)


class Clock:
    """A clock that moves only when told."""

    def __init__(self, start: datetime = T0) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def launch(store: Store, campaign_id: int, task_id: int, backend: str, attempt: int) -> None:
    """Claim a pending task's launch on ``backend`` (``pending -> creating`` with a client token)."""
    token = f"token-{task_id}-{attempt}"
    claimed = store.claim_launches(campaign_id, backend, [Launch(task_id, attempt, token, "test launch")],
                                   runner_id=None, capacity=1_000)
    assert claimed.task_ids == [task_id], claimed


def advance(store: Store, task_id: int, path: list[TaskState], **fields: Any) -> None:
    """Move a task along ``path``; ``fields`` go with the last step."""
    for before, after in itertools.pairwise(path):
        assert store.transition(task_id, before, after, actor="test", reason=f"to {after}",
                                **(fields if after is path[-1] else {}))


def run_job(store: Store, campaign_id: int, task_id: int, backend: str, attempt: int, *, job_id: str,
            end: TaskState, started: datetime | None = None, **fields: Any) -> None:
    """One attempt from the launch to ``end``: created and queued as ``job_id``, running from
    ``started``, then ended with ``fields`` (``job_status``, ``costs``, ``error``, ``finished``...)."""
    launch(store, campaign_id, task_id, backend, attempt)
    advance(store, task_id, [S.CREATING, S.QUEUED], job_id=job_id, job_status="queued")
    if end is S.QUEUED:
        return
    advance(store, task_id, [S.QUEUED, S.RUNNING], job_status="running",
            **({} if started is None else {"started": started}))
    if end is S.RUNNING:
        return
    advance(store, task_id, [S.RUNNING, end], **fields)
