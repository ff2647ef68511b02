"""Campaign histories for the monitor tests, written through the store's own API: a launch is a
`Store.claim_launches` (which opens the attempt's ledger row), every later step a `Store.transition`;
and `serving`, a dashboard app on a free loopback port."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI

from openeo_upscale.campaign import Store, TaskState
from openeo_upscale.campaign.store.ledger import Launch
from tests.helpers import free_port

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



# -- a finished campaign of 12 tiles for the maps, the report and the browser tests -------------------

MAP_T0 = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)
"""When the maps' and the report's campaign (`build_campaign`) began."""


EVIL = "<script>alert(1)</script>"


def square(col: int, row: int, size: float = 0.05) -> str:
    w, s = 4.0 + col * size, 51.0 + row * size
    return f"POLYGON (({w} {s}, {w + size} {s}, {w + size} {s + size}, {w} {s + size}, {w} {s}))"


RETRIED = "t010"
"""The tile of `build_campaign` whose first job failed on alpha before another got it done on beta."""


def build_campaign(tmp_path: Path, n: int = 12) -> tuple[Store, int]:
    """A store with ``n`` tiles: done, failed (one with a malicious error), running, queued, pending;
    each launched through the ledger, and `RETRIED` (when there are that many tiles) run twice."""
    store = Store.open(tmp_path / "store.db")
    rows = [{"tile_id": f"t{i:03d}", "geometry": square(i % 4, i // 4)} for i in range(n)]
    campaign_id = store.create_campaign("demo", config={"uid": "abc123"}, tasks=rows)
    tasks = {task.tile_id: task.id for task in store.all_tasks(campaign_id)}
    for i, (tile, task_id) in enumerate(sorted(tasks.items())):
        backend = "alpha" if i % 2 else "beta"
        started = MAP_T0 + timedelta(minutes=i)
        attempt = 1
        if tile == RETRIED:
            run_job(store, campaign_id, task_id, "alpha", 1, job_id=f"j-{tile}-1", end=S.PENDING,
                    started=started, finished=started + timedelta(minutes=4), job_status="error",
                    costs=0.5, error=f"lost the worker & <the> node running {tile}")
            attempt, started = 2, started + timedelta(minutes=5)
        job = {"job_id": f"j-{tile}", "started": started}
        kind = i % 5
        if kind == 0:
            run_job(store, campaign_id, task_id, backend, attempt, **job, end=S.FINISHED,
                    finished=MAP_T0 + timedelta(minutes=i + 10 + i), costs=1.5 + i, job_status="finished")
            advance(store, task_id, [S.FINISHED, S.DOWNLOADING, S.DONE])
        elif kind == 1:
            error = EVIL if i == 1 else f"out of memory on {tile}"
            run_job(store, campaign_id, task_id, backend, attempt, **job, end=S.FAILED,
                    finished=MAP_T0 + timedelta(minutes=i + 3), error=error, costs=0.25, job_status="error")
        elif kind == 2:
            run_job(store, campaign_id, task_id, backend, attempt, **job, end=S.RUNNING)
        elif kind == 3:
            run_job(store, campaign_id, task_id, backend, attempt, **job, end=S.QUEUED)
    return store, campaign_id


@contextmanager
def serving(app: FastAPI) -> Iterator[str]:
    """``app`` served by uvicorn in a thread on a free port of 127.0.0.1; yields its URL."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the dashboard did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
