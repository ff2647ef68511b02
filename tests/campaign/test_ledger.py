"""The ledger and the launch claim on SQLite and PostgreSQL: one row per attempt, slots and budget
counted in the claiming transaction, credits over every attempt."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest

from openeo_upscale.campaign import JobStatus, Store, TaskState
from openeo_upscale.campaign.store import Launch, Spending

S = TaskState


def _tasks(store: Store, n: int) -> tuple[int, list[int]]:
    campaign = store.create_campaign("ledger", config={"uid": "0123456789ab"})
    store.add_tasks(campaign, ({"tile_id": f"t{i}"} for i in range(n)))
    return campaign, [t.id for t in store.tasks_in(campaign, S.PENDING)]


def _launch(task_id: int, attempt: int = 1) -> Launch:
    return Launch(task_id, attempt, f"ou-0123456789ab-{task_id}-{attempt}", f"attempt {attempt} on backend b")


def _end(
    store: Store, task_id: int, *, costs: float | None, to: TaskState = S.FINISHED, job_id: str = "j"
) -> None:
    """Create, queue, run and end the task's current job."""
    assert store.transition(
        task_id, S.CREATING, S.CREATING, actor="t", job_id=f"{job_id}-{task_id}", job_status=JobStatus.CREATED
    )
    assert store.transition(task_id, S.CREATING, S.QUEUED, actor="t", job_status=JobStatus.QUEUED)
    assert store.transition(
        task_id, S.QUEUED, S.RUNNING, actor="t", job_status=JobStatus.RUNNING, started=store.now()
    )
    status = JobStatus.FINISHED if to is S.FINISHED else JobStatus.ERROR
    assert store.transition(
        task_id,
        S.RUNNING,
        to,
        actor="t",
        job_status=status,
        costs=costs,
        error=None if to is S.FINISHED else "boom",
    )


def test_a_claim_fills_free_slots_only(store: Store) -> None:
    campaign, ids = _tasks(store, 5)
    claimed = store.claim_launches(campaign, "b", [_launch(i) for i in ids], runner_id=None, capacity=2)
    assert claimed.task_ids == ids[:2] and "holds 0 of 2" in (claimed.held_back or "")
    again = store.claim_launches(campaign, "b", [_launch(i) for i in ids[2:]], runner_id=None, capacity=2)
    assert again.task_ids == [] and "holds 2 of 2" in (again.held_back or "")
    rows = [store.jobs_of(i) for i in ids[:2]]
    assert [(r[0].attempt, r[0].backend, r[0].client_token, r[0].finished) for r in rows] == [
        (1, "b", f"ou-0123456789ab-{i}-1", None) for i in ids[:2]
    ]
    events = store.events_of(ids[0])
    assert [(e.from_state, e.to_state, e.reason) for e in events] == [
        (S.PENDING, S.CREATING, "attempt 1 on backend b")
    ]


def test_a_claim_needs_the_runners_lease_on_the_backend(store: Store) -> None:
    campaign, ids = _tasks(store, 2)
    registration = store.register_runner(
        campaign,
        host="h",
        pid=1,
        version="t",
        backends=["b"],
        lease_seconds=30,
        exclusive=False,
        is_gone=lambda r: False,
    )
    assert registration.runner is not None
    me = registration.runner.id
    refused = store.claim_launches(campaign, "b", [_launch(ids[0])], runner_id=me, capacity=4)
    assert refused.task_ids == [] and f"runner {me} no longer holds backend b" in (refused.held_back or "")
    assert store.acquire_leases(campaign, me, ["b"], lease_seconds=30) == {"b"}
    assert store.claim_launches(campaign, "b", [_launch(ids[0])], runner_id=me, capacity=4).task_ids == [
        ids[0]
    ]
    assert store.task(ids[0]).claimed_by == me and store.jobs_of(ids[0])[0].runner_id == me
    store.release_leases(campaign, me)
    assert store.claim_launches(campaign, "b", [_launch(ids[1])], runner_id=me, capacity=4).task_ids == []


def test_racing_claims_never_exceed_the_capacity(store: Store) -> None:
    campaign, ids = _tasks(store, 12)
    barrier = threading.Barrier(6)
    won: list[int] = []
    lock = threading.Lock()

    def claim(mine: list[int]) -> None:
        barrier.wait()
        got = store.claim_launches(campaign, "b", [_launch(i) for i in mine], runner_id=None, capacity=3)
        with lock:
            won.extend(got.task_ids)

    threads = [threading.Thread(target=claim, args=(ids[2 * k : 2 * k + 2],)) for k in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(won) == 3 and store.counts(campaign)[S.CREATING] == 3


def test_the_ledger_follows_each_attempt_and_credits_add_up(store: Store) -> None:
    campaign, (task_id, *_) = _tasks(store, 1)
    assert store.claim_launches(campaign, "b", [_launch(task_id, 1)], runner_id=None, capacity=1).task_ids
    _end(store, task_id, costs=0.7, to=S.PENDING)
    assert store.claim_launches(campaign, "b", [_launch(task_id, 2)], runner_id=None, capacity=1).task_ids
    _end(store, task_id, costs=1.1, to=S.FINISHED)
    first, second = store.jobs_of(task_id)
    assert (first.attempt, first.status, first.costs, first.error, first.job_id) == (
        1,
        JobStatus.ERROR,
        0.7,
        "boom",
        f"j-{task_id}",
    )
    assert (second.attempt, second.status, second.costs, second.error) == (2, JobStatus.FINISHED, 1.1, None)
    assert all(row.created and row.started and row.finished for row in (first, second))
    assert first.requested <= first.created <= first.started <= first.finished <= second.requested
    task = store.task(task_id)
    assert task.costs == pytest.approx(1.8) and task.attempts == 2
    assert store.credits(campaign) == pytest.approx(1.8)
    assert store.spending(campaign) == Spending(pytest.approx(1.8), 0, pytest.approx(0.9))
    assert store.retried_tasks(campaign) == 1
    assert store.ledger_summary(campaign) == {
        "b": {"jobs": 2, "in_flight": 0, "errors": 1, "credits": pytest.approx(1.8)}
    }
    # Downloading and done do not touch the ledger: the job ended at `finished`.
    assert store.transition(task_id, S.FINISHED, S.DOWNLOADING, actor="t")
    assert store.transition(task_id, S.DOWNLOADING, S.DONE, actor="t", result_paths=[])
    assert [r.finished for r in store.jobs_of(task_id)] == [first.finished, second.finished]


def test_the_budget_counts_the_jobs_in_flight(store: Store) -> None:
    campaign, ids = _tasks(store, 10)
    first = store.claim_launches(
        campaign, "b", [_launch(ids[0])], runner_id=None, capacity=10, max_credits=5.0
    )
    assert first.task_ids == [ids[0]]
    _end(store, ids[0], costs=1.5)
    # 1.5 spent, a job costs about 1.5: two more fit under 5, not three.
    claimed = store.claim_launches(
        campaign, "b", [_launch(i) for i in ids[1:6]], runner_id=None, capacity=10, max_credits=5.0
    )
    assert claimed.task_ids == ids[1:3] and claimed.budget
    assert claimed.held_back == "credit budget of 5: 1.50 spent; a job costs about 1.50"
    assert store.spending(campaign).in_flight == 2
    held = store.claim_launches(
        campaign, "b", [_launch(ids[6])], runner_id=None, capacity=10, max_credits=5.0
    )
    assert held.task_ids == [] and held.held_back == (
        "credit budget of 5: 1.50 spent, 2 job(s) in flight; a job costs about 1.50"
    )
    assert Spending(5.0, 0, 1.0).room(5.0) == 0 and Spending(0.0, 0, None).room(5.0) == float("inf")


def test_costs_listed_late_reach_the_ledger_once(store: Store) -> None:
    campaign, (task_id, *_) = _tasks(store, 1)
    store.claim_launches(campaign, "b", [_launch(task_id)], runner_id=None, capacity=1)
    _end(store, task_id, costs=None, to=S.FAILED)
    since = store.now() - timedelta(hours=1)
    assert store.jobs_missing_costs(campaign, "b", since=since) == {f"j-{task_id}"}
    assert store.record_late_costs(campaign, "b", f"j-{task_id}", 0.4, {"cpu": {"value": 1}})
    assert not store.record_late_costs(campaign, "b", f"j-{task_id}", 0.4, None)
    assert store.jobs_missing_costs(campaign, "b", since=since) == set()
    assert store.credits(campaign) == pytest.approx(0.4) and store.task(task_id).costs == pytest.approx(0.4)


def test_a_claim_counts_the_tasks_another_runner_took_first(store: Store) -> None:
    campaign, ids = _tasks(store, 4)
    assert store.claim_launches(campaign, "a", [_launch(ids[0])], runner_id=None, capacity=4).task_ids
    claimed = store.claim_launches(campaign, "b", [_launch(i) for i in ids[:3]], runner_id=None, capacity=2)
    assert claimed.task_ids == [ids[1]] and claimed.lost == 1
