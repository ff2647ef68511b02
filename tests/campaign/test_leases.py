"""Runners of a campaign: registration, heartbeats, takeover, and the leases on backends and downloads.

A clock the test moves stands in for time; heartbeats are called by hand (``beating=False``) so
that each step is one the test chose.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from openeo_upscale.campaign import CampaignBusyError, JobStatus, Leases, Leasing, Store, TaskState
from openeo_upscale.campaign.leases import process_gone
from openeo_upscale.campaign.models import RunnerInfo
from openeo_upscale.campaign.store import Launch
from tests.helpers import wait_until

S = TaskState
LEASE = Leasing(lease_seconds=30.0)


class Clock:
    """A clock that moves only when told."""

    def __init__(self) -> None:
        self.now = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def timed(store_target: str, clock: Clock) -> Iterator[Store]:
    with Store.open(store_target, clock=clock) as opened:
        yield opened


def _campaign(store: Store, tasks: int = 3) -> int:
    campaign = store.create_campaign("leases", config={"uid": "0123456789ab"})
    store.add_tasks(campaign, ({"tile_id": f"t{i}"} for i in range(tasks)))
    return campaign


def _leases(store: Store, campaign: int, backends: tuple[str, ...] = ("a", "b"), **options: object) -> Leases:
    return Leases(store, campaign, backends, leasing=LEASE, beating=False, **options)  # type: ignore[arg-type]


def test_a_sqlite_store_has_one_runner_at_a_time(tmp_path: object, clock: Clock) -> None:
    with Store.open(f"{tmp_path}/campaign.sqlite", clock=clock) as store:
        campaign = _campaign(store)
        first = _leases(store, campaign)
        holder = first.join()
        assert first.held() == {"a", "b"}
        second = _leases(store, campaign)
        with pytest.raises(
            CampaignBusyError, match=rf"being run by runner {holder.id} \(pid \d+ on host .+, since"
        ) as busy:
            second.join()
        assert busy.value.holder is not None and "last heartbeat 0 s ago" in busy.value.holder
        assert "PostgreSQL" in str(busy.value)

        # With wait, it joins once the holder has left.
        told: list[RunnerInfo] = []
        joined = threading.Event()

        def wait_for_it() -> None:
            second.join(wait=True, on_wait=told.append)
            joined.set()

        waiter = threading.Thread(target=wait_for_it)
        waiter.start()
        while not told:
            joined.wait(0.01)
        assert [r.id for r in told] == [holder.id] and not joined.is_set()
        first.leave()
        waiter.join(timeout=10)
        assert joined.is_set() and second.held() == {"a", "b"}
        second.leave()


def test_a_holder_silent_for_the_lease_is_taken_over(tmp_path: object, clock: Clock) -> None:
    with Store.open(f"{tmp_path}/campaign.sqlite", clock=clock) as store:
        campaign = _campaign(store)
        first = _leases(store, campaign)
        holder = first.join()
        clock.advance(LEASE.lease_seconds - 1)
        with pytest.raises(CampaignBusyError):
            _leases(store, campaign).join()
        clock.advance(2)
        second = _leases(store, campaign)
        second.join()
        assert second.held() == {"a", "b"}
        reaped = store.runner(holder.id)
        assert reaped is not None and "no heartbeat for 31 s" in (reaped.stop_reason or "")
        # The old holder notices at its next heartbeat, and must stop.
        first.beat()
        assert first.lost is not None and first.held() == frozenset()
        with pytest.raises(CampaignBusyError, match="lost the campaign"):
            first.check()


def test_a_holder_whose_process_is_gone_is_taken_over_at_once(tmp_path: object, clock: Clock) -> None:
    with Store.open(f"{tmp_path}/campaign.sqlite", clock=clock) as store:
        campaign = _campaign(store)
        child = subprocess.Popen([sys.executable, "-c", "pass"])
        child.wait()
        registration = store.register_runner(
            campaign,
            host=_leases(store, campaign).host,
            pid=child.pid,
            backends=["a"],
            version="0.1",
            lease_seconds=30,
            exclusive=True,
            is_gone=lambda r: False,
        )
        assert registration.runner is not None
        assert process_gone(registration.runner)
        taking = _leases(store, campaign)
        taking.join()
        dead = store.runner(registration.runner.id)
        assert dead is not None and f"process {child.pid} on host" in (dead.stop_reason or "")


def test_a_killed_child_not_yet_waited_for_counts_as_gone() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        info = RunnerInfo(
            1,
            1,
            socket.gethostname(),
            child.pid,
            "t",
            ["a"],
            datetime.now(UTC),
            datetime.now(UTC),
            None,
            None,
        )
        assert not process_gone(info)
        child.kill()
        wait_until(lambda: process_gone(info), "the killed child to be a zombie")  # not waited for yet
    finally:
        child.kill()
        child.wait()
    other_host = RunnerInfo(
        1, 1, "elsewhere", child.pid, "t", ["a"], datetime.now(UTC), datetime.now(UTC), None, None
    )
    assert not process_gone(other_host)


def test_runners_share_the_backends_and_take_over_a_leaver(postgres_url: str, clock: Clock) -> None:
    with Store.open(postgres_url, clock=clock) as store:
        campaign = _campaign(store)
        first, second = _leases(store, campaign), _leases(store, campaign)
        first.join()
        assert first.held() == {"a", "b"}
        second.join()
        assert second.held() == frozenset()  # both taken; its share is one
        first.beat()
        first.rebalance(busy=lambda backend: backend == "a")  # busy on a: hands b over
        assert first.held() == {"a"}
        second.beat()
        assert len(second.held()) == 1 and first.held() | second.held() == {"a", "b"}
        holders = store.lease_holders(campaign)
        assert {holders[name][0] for name in first.held()} == {first.runner_id}
        first.leave()
        second.beat()
        assert second.held() == {"a", "b"}
        second.leave()
        assert {holder for holder, _ in store.lease_holders(campaign).values()} == {None}


def test_runners_that_stalled_together_do_not_take_each_other_over(postgres_url: str, clock: Clock) -> None:
    """Every process paused at once (a stalled store, a machine that froze): on waking, each finds
    the others silent for longer than the lease, but was silent as long itself, so judges nobody."""
    with Store.open(postgres_url, clock=clock) as store:
        campaign = _campaign(store)
        both = [_leases(store, campaign, monotonic=lambda: clock.now.timestamp()) for _ in range(2)]
        for runner in both:
            runner.join()
        clock.advance(LEASE.lease_seconds + 10)
        for runner in both:
            runner.beat()
        clock.advance(1)
        for runner in both:
            runner.beat()
        assert [r.lost for r in both] == [None, None]
        assert all(r.stopped is None for r in store.runners(campaign))
        assert both[0].held() | both[1].held() == {"a", "b"}
        # One that really went silent is still taken over by one that kept beating.
        first, second = both
        for _ in range(4):
            clock.advance(LEASE.lease_seconds / 3)
            first.beat()
        assert first.held() == {"a", "b"}
        second.beat()
        assert second.lost is not None and "no heartbeat for 40 s" in second.lost


def test_a_reaped_runners_downloads_go_back_to_finished(postgres_url: str, clock: Clock) -> None:
    with Store.open(postgres_url, clock=clock) as store:
        campaign = _campaign(store, tasks=2)
        first = _leases(store, campaign)
        first.join()
        ids = [t.id for t in store.tasks_in(campaign, S.PENDING)]
        launches = [Launch(i, 1, f"ou-0123456789ab-{i}-1", "attempt 1") for i in ids]
        assert (
            store.claim_launches(campaign, "a", launches, runner_id=first.runner_id, capacity=2).task_ids
            == ids
        )
        for task_id in ids:
            for source, target, status in (
                (S.CREATING, S.QUEUED, JobStatus.QUEUED),
                (S.QUEUED, S.RUNNING, JobStatus.RUNNING),
                (S.RUNNING, S.FINISHED, JobStatus.FINISHED),
            ):
                assert store.transition(
                    task_id, source, target, actor="t", job_id=f"j{task_id}", job_status=status
                )
        claimed = store.claim_downloads(campaign, first.runner_id, ["a"], limit=5, lease_seconds=30)
        assert [t.id for t in claimed] == ids and all(t.claimed_by == first.runner_id for t in claimed)
        assert store.claim_downloads(campaign, first.runner_id, ["a"], limit=5, lease_seconds=30) == []

        second = _leases(store, campaign)
        second.join()
        clock.advance(20)
        first.beat()  # renews its download claims too
        clock.advance(20)
        second.beat()
        assert store.counts(campaign)[S.DOWNLOADING] == 2  # 20 s of silence: still within the lease
        clock.advance(15)
        second.beat()
        assert store.counts(campaign)[S.FINISHED] == 2
        reasons = [e.reason for e in store.events_of(ids[0])]
        assert reasons[-1] == (
            f"download interrupted (runner {first.runner_id}: taken over: no heartbeat for "
            "35 s (lease 30 s)); resuming"
        )
        assert second.held() == {"a", "b"}
        # A failed download waits for its backoff before anyone claims it again.
        (again,) = store.claim_downloads(campaign, second.runner_id, ["a"], limit=1, lease_seconds=30)
        assert store.transition(
            again.id,
            S.DOWNLOADING,
            S.FINISHED,
            actor="t",
            claimed=second.runner_id,
            claimed_by=None,
            claim_expires=clock.now + timedelta(seconds=10),
        )
        assert [
            t.id for t in store.claim_downloads(campaign, second.runner_id, ["a"], limit=5, lease_seconds=30)
        ] == [i for i in ids if i != again.id]
        clock.advance(11)
        assert [
            t.id for t in store.claim_downloads(campaign, second.runner_id, ["a"], limit=5, lease_seconds=30)
        ] == [again.id]


def test_a_backend_only_one_runner_may_use_stays_with_it(postgres_url: str, clock: Clock) -> None:
    with Store.open(postgres_url, clock=clock) as store:
        campaign = _campaign(store)
        first, second = _leases(store, campaign, ("a", "b")), _leases(store, campaign, ("c",))
        first.join()
        second.join()
        assert (first.held(), second.held()) == ({"a", "b"}, {"c"})
        first.beat()
        first.rebalance(busy=lambda backend: False)  # nobody else may use a or b
        second.beat()
        assert (first.held(), second.held()) == ({"a", "b"}, {"c"})
        # A lease freed is taken again at once by the only runner that may use it.
        store.release_leases(campaign, first.runner_id or 0, ["b"])
        first.beat()
        assert first.held() == {"a", "b"}
