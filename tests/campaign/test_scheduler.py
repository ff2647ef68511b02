"""`Scheduler.tick` on its own: a fake backend (`tests.campaign.fakes`), a clock the test moves, a real
SQLite store, and the runner's leases without their heartbeat thread (the test beats by hand).

Each test checks what the store says (states, attempts, events, the ledger) and what the backend was
asked, call by call; nothing sleeps and nothing talks HTTP.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pytest

from openeo_upscale.campaign import (
    BackendClient,
    BackendSettings,
    Backoff,
    JobStatus,
    Leases,
    Leasing,
    Limits,
    Pacer,
    Polling,
    RetryPolicy,
    Store,
    Task,
    TaskState,
)
from openeo_upscale.campaign.scheduler import BackendSlot, Scheduler, TickResult, client_token, token_of
from openeo_upscale.errors import TransientError
from tests.campaign.fakes import FakeBackend, FakeClock

S = TaskState
UID = "0123456789ab"
POLLING = Polling(min_interval=1.0, max_interval=8.0, growth=2.0)
RETRY = RetryPolicy(max_attempts=2, backoff_base=1.0, backoff_max=8.0)
NO_ME = Limits(me_refresh=None)
"""No ``GET /me``: these tests are about the scheduler's own bookkeeping."""


class TopOfJitter(random.Random):
    """A backoff draw at the top of its jitter range: each delay is exactly its ceiling."""

    def random(self) -> float:
        return 1.0


def job_spec(task: Task, token: str) -> tuple[dict[str, Any], str, str]:
    """What `Campaign` sends: a one-node process, the token in brackets in the title and description."""
    process = {"process_graph": {"run": {"process_id": "max_ndvi", "arguments": task.parameters,
                                         "result": True}}}
    return process, f"unit {task.tile_id} [{token}]", f"unit tile {task.tile_id} [{token}]"


@dataclass
class Engine:
    """A scheduler over one fake backend ``a``, built as `Campaign.scheduler` builds it."""

    store: Store
    campaign_id: int
    clock: FakeClock
    backend: FakeBackend
    leases: Leases
    scheduler: Scheduler

    def tick(self) -> TickResult:
        self.leases.beat()  # what the heartbeat thread does every couple of seconds
        return self.scheduler.tick()

    def after(self, seconds: float) -> TickResult:
        """Move the clock on, then tick."""
        self.clock.advance(seconds)
        return self.tick()

    def tasks(self) -> list[Task]:
        return list(self.store.all_tasks(self.campaign_id))

    def states(self) -> dict[str, S]:
        return {task.tile_id: task.state for task in self.tasks()}

    def reasons(self, task_id: int) -> list[str | None]:
        return [event.reason for event in self.store.events_of(task_id)]


EngineFactory = Callable[..., Engine]
"""``engine_for(tasks, parallel_jobs=2, retry=RETRY)``: an `Engine` over that many pending tasks."""


@pytest.fixture
def engine_for(tmp_path: Path) -> Iterator[EngineFactory]:
    opened: list[Engine] = []

    def build(tasks: int, *, parallel_jobs: int = 2, retry: RetryPolicy = RETRY) -> Engine:
        clock = FakeClock()
        store = Store.open(tmp_path / f"campaign-{len(opened)}.sqlite", clock=clock.wall)
        campaign_id = store.create_campaign("unit", config={"uid": UID},
                                            tasks=({"tile_id": f"t{i}"} for i in range(tasks)))
        backend = FakeBackend("a", clock)
        leases = Leases(store, campaign_id, ["a"], leasing=Leasing(), beating=False, name="campaign 'unit'")
        leases.join()
        scheduler = Scheduler(
            store, campaign_id, UID,
            [BackendSlot(BackendSettings("a", parallel_jobs=parallel_jobs), cast(BackendClient, backend))],
            job_spec, retry=retry, limits=NO_ME, pacer=Pacer(POLLING), leases=leases,
            monotonic=clock.monotonic, wall=clock.wall, backoff=Backoff(retry, TopOfJitter()))
        engine = Engine(store, campaign_id, clock, backend, leases, scheduler)
        opened.append(engine)
        return engine

    yield build
    for engine in opened:
        engine.scheduler.close()
        engine.store.close()


def test_at_most_parallel_jobs_at_once_and_a_freed_slot_is_filled_again(engine_for: EngineFactory) -> None:
    engine = engine_for(5, parallel_jobs=2)
    first = engine.tick()
    assert first.launched == 2 and first.active == 2
    assert engine.states() == {"t0": S.QUEUED, "t1": S.QUEUED, "t2": S.PENDING, "t3": S.PENDING,
                               "t4": S.PENDING}
    fake = engine.backend
    assert fake.called("create_job") == [f"unit t0 [{client_token(UID, 1, 1)}]",
                                         f"unit t1 [{client_token(UID, 2, 1)}]"]
    assert fake.called("start_job") == ["a-job-1", "a-job-2"]
    assert engine.reasons(1) == ["attempt 1 on backend a", "job created", "job started"]

    # While both jobs run, no tick launches anything, however often it looks.
    fake.set_status("a-job-1", "running")
    fake.set_status("a-job-2", "running")
    for _ in range(4):
        assert engine.after(10.0).launched == 0
    assert len(fake.called("create_job")) == 2
    assert len(fake.called("list_jobs")) == 4
    assert engine.states()["t0"] is S.RUNNING and engine.states()["t1"] is S.RUNNING
    assert engine.store.count_in(engine.campaign_id, (S.PENDING,)) == 3

    # One job ends: the tick that sees it frees its slot and fills it with the next task.
    fake.set_status("a-job-1", "finished", costs=1.5)
    refill = engine.after(10.0)
    assert refill.launched == 1 and refill.active == 2
    assert engine.states() == {"t0": S.FINISHED, "t1": S.RUNNING, "t2": S.QUEUED, "t3": S.PENDING,
                               "t4": S.PENDING}
    assert fake.called("create_job")[-1] == f"unit t2 [{client_token(UID, 3, 1)}]"
    assert len(fake.called("create_job")) == 3
    [finished] = engine.store.jobs_of(1)
    assert finished.status is JobStatus.FINISHED and finished.costs == 1.5 and finished.finished is not None


def test_a_failed_create_waits_a_backoff_that_doubles_up_to_its_maximum(engine_for: EngineFactory) -> None:
    engine = engine_for(1, parallel_jobs=1, retry=RetryPolicy(backoff_base=1.0, backoff_max=8.0))
    fake = engine.backend
    fake.fail("create_job", TransientError("POST /jobs: HTTP 503 ServiceUnavailable: busy", status=503),
              times=5)
    engine.tick()
    assert len(fake.called("create_job")) == 1
    [task] = engine.tasks()
    assert task.state is S.CREATING and task.job_id is None and task.attempts == 1

    for failures, delay in enumerate([1.0, 2.0, 4.0, 8.0, 8.0], start=1):
        engine.after(delay - 0.25)
        assert len(fake.called("create_job")) == failures, f"retried before the backoff of {delay} s"
        before = len(fake.calls)
        engine.after(0.25)
        assert len(fake.called("create_job")) == failures + 1, f"not retried after the backoff of {delay} s"
        # The retry lists the jobs first: a job carrying the token would be adopted, not created again.
        assert [name for name, _ in fake.calls[before:]][:2] == ["list_jobs", "create_job"]

    # The sixth request went through: one job, of the same attempt and token, and nothing else.
    [task] = engine.tasks()
    assert task.state is S.QUEUED and task.attempts == 1 and task.job_id == "a-job-1"
    assert list(fake.jobs) == ["a-job-1"] and token_of(fake.jobs["a-job-1"]) == task.client_token
    assert engine.reasons(task.id) == ["attempt 1 on backend a", "job created", "job started"]
    assert len(engine.store.jobs_of(task.id)) == 1


def test_polls_wait_for_the_interval_which_grows_while_nothing_changes(engine_for: EngineFactory) -> None:
    engine = engine_for(1, parallel_jobs=1)
    fake = engine.backend
    launched = engine.tick()
    assert launched.launched == 1 and launched.next_tick == POLLING.min_interval
    assert fake.called("list_jobs") == []
    fake.set_status("a-job-1", "running")

    listings = 0
    for interval, following in [(1.0, 2.0), (2.0, 4.0), (4.0, 8.0), (8.0, 8.0), (8.0, 8.0)]:
        early = engine.after(interval - 0.25)
        assert len(fake.called("list_jobs")) == listings, f"listed before its interval of {interval} s"
        assert early.next_tick == 0.25
        due = engine.after(0.25)
        listings += 1
        assert len(fake.called("list_jobs")) == listings
        assert due.next_tick == following, "nothing changed: the interval grows, up to max_interval"
    assert engine.states() == {"t0": S.RUNNING}

    # A change (the job failed, a new one was launched) starts the interval over. (A job that
    # finished would instead set the next look by its duration: see `Pacer`.)
    fake.set_status("a-job-1", "error")
    changed = engine.after(8.0)
    assert changed.launched == 1 and changed.next_tick == POLLING.min_interval
    assert len(fake.called("list_jobs")) == listings + 1
    [task] = engine.tasks()
    assert task.state is S.QUEUED and task.attempts == 2
    engine.after(POLLING.min_interval - 0.25)
    assert len(fake.called("list_jobs")) == listings + 1
    engine.after(0.25)
    assert len(fake.called("list_jobs")) == listings + 2


def test_a_job_whose_create_answer_was_lost_is_adopted_not_created_twice(engine_for: EngineFactory) -> None:
    engine = engine_for(1, parallel_jobs=1)
    fake = engine.backend
    fake.lose_create_answer()
    engine.tick()
    [task] = engine.tasks()
    assert task.state is S.CREATING and task.job_id is None
    assert list(fake.jobs) == ["a-job-1"], "the backend made the job; only its answer was lost"
    assert token_of(fake.jobs["a-job-1"]) == task.client_token == client_token(UID, task.id, 1)

    engine.after(RETRY.backoff_base)
    assert [name for name, _ in fake.calls if name in ("list_jobs", "create_job", "start_job")] == [
        "create_job", "list_jobs", "start_job"]
    assert list(fake.jobs) == ["a-job-1"]
    [task] = engine.tasks()
    assert task.state is S.QUEUED and task.job_id == "a-job-1" and task.attempts == 1
    assert engine.reasons(task.id) == ["attempt 1 on backend a", "adopted the job carrying the task's token",
                                       "job started"]
    [record] = engine.store.jobs_of(task.id)
    assert record.job_id == "a-job-1" and record.client_token == task.client_token


def test_a_failed_job_is_retried_with_a_new_job_then_fails_with_its_reason(engine_for: EngineFactory) -> None:
    engine = engine_for(1, parallel_jobs=1, retry=RetryPolicy(max_attempts=2))
    fake = engine.backend
    engine.tick()
    fake.set_status("a-job-1", "running")
    engine.after(1.0)
    fake.set_status("a-job-1", "error", costs=0.25)
    fake.logs["a-job-1"] = ["worker lost", "OutOfMemoryError: java heap space"]

    # The tick that sees the error sends the task back to pending, and launches it again at once.
    retried = engine.after(2.0)
    assert retried.launched == 1
    [task] = engine.tasks()
    assert task.state is S.QUEUED and task.attempts == 2 and task.job_id == "a-job-2"
    assert fake.called("error_logs") == ["a-job-1"]
    assert fake.called("create_job")[-1] == f"unit t0 [{client_token(UID, task.id, 2)}]"
    failure = "the job failed on the backend: worker lost | OutOfMemoryError: java heap space"
    events = engine.store.events_of(task.id)
    back = next(e for e in events if e.to_state is S.PENDING)
    assert (back.from_state, back.job_status, back.reason) == (S.RUNNING, JobStatus.ERROR,
                                                               f"attempt 1 of 2: {failure}")
    first, second = engine.store.jobs_of(task.id)
    assert (first.job_id, first.status, first.error) == ("a-job-1", JobStatus.ERROR, failure)
    assert first.costs == 0.25, "a failed job's costs count"
    assert first.finished is not None and second.finished is None and second.attempt == 2

    # The second job fails too: no attempts left, the task fails with the reason, nothing is launched.
    fake.set_status("a-job-2", "error")
    ended = engine.after(2.0)
    assert ended.launched == 0 and ended.idle
    [task] = engine.tasks()
    assert task.state is S.FAILED and task.attempts == 2 and task.error == "the job failed on the backend"
    assert engine.reasons(task.id)[-1] == "attempt 2 of 2: the job failed on the backend"
    assert len(fake.called("create_job")) == 2 and fake.called("error_logs") == ["a-job-1", "a-job-2"]
    assert fake.called("job") == ["a-job-2"], "a listing without costs or usage: the job's metadata is read"
