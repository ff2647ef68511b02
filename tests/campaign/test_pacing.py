"""Backoff and the adaptive tick, with no clock at all: the pacer only does arithmetic."""

from __future__ import annotations

import random

import pytest

from openeo_upscale.campaign import Backoff, Pacer, Polling, RetryPolicy
from openeo_upscale.campaign.pacing import END_MARGIN, ActiveJob
from openeo_upscale.campaign.scheduler import advertised_capacity

POLLING = Polling(min_interval=0.5, max_interval=30.0, growth=2.0)


def test_backoff_doubles_up_to_the_ceiling_with_jitter_and_honours_retry_after() -> None:
    backoff = Backoff(RetryPolicy(backoff_base=1.0, backoff_max=8.0), random.Random(1))
    for failures, ceiling in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (10, 8.0)]:
        waits = [backoff.delay(failures) for _ in range(50)]
        assert all(ceiling / 2 <= w <= ceiling for w in waits)
        assert len(set(waits)) > 1, "jitter spreads retries apart"
    assert backoff.delay(1, retry_after=20.0) == 20.0


def test_without_history_the_interval_restarts_after_a_change_and_grows_while_idle() -> None:
    pacer = Pacer(POLLING)
    job = ActiveJob("b", running=3.0)
    assert pacer.next_interval("b", changed=True, jobs=[job]) == 0.5
    assert pacer.next_interval("b", changed=False, jobs=[job]) == 1.0
    assert pacer.next_interval("b", changed=False, jobs=[job]) == 2.0
    assert pacer.next_interval("other", changed=False, jobs=[job]) == 1.0, "each backend has its own"
    for _ in range(10):
        last = pacer.next_interval("b", changed=False, jobs=[job])
    assert last == 30.0
    assert pacer.next_interval("b", changed=True, jobs=[job]) == 0.5


def test_running_jobs_are_looked_at_when_their_durations_say_they_end() -> None:
    pacer = Pacer(POLLING)
    for seconds in (10.0, 12.0, 14.0):
        pacer.record_duration("b", seconds)
    assert pacer.expected_duration("b") == 12.0
    assert pacer.next_interval("b", changed=True, jobs=[ActiveJob("b", running=4.0)]) == pytest.approx(
        8.0 + END_MARGIN)
    # Not started yet: it cannot end before the shortest job seen.
    assert pacer.remaining(ActiveJob("b", running=None)) == 10.0
    # Slightly overdue: a tenth of the expected duration; far overdue: no guess.
    assert pacer.remaining(ActiveJob("b", running=13.0)) == pytest.approx(1.2)
    assert pacer.remaining(ActiveJob("b", running=30.0)) is None


def test_reported_progress_beats_durations() -> None:
    pacer = Pacer(POLLING)
    # Two readings 2 s apart, 10 points apart: 5 points a second, 50 points (10 s) to go,
    # the last reading 1 s ago.
    job = ActiveJob("b", running=3.0, progress=((3.0, 40.0), (1.0, 50.0)))
    assert pacer.remaining(job) == pytest.approx(9.0)
    # One reading and a known duration: the share left of the usual duration.
    pacer.record_duration("b", 20.0)
    single = ActiveJob("b", running=3.0, progress=((0.0, 75.0),))
    assert pacer.remaining(single) == pytest.approx(5.0)


def test_the_interval_stays_within_its_bounds() -> None:
    pacer = Pacer(POLLING)
    pacer.record_duration("b", 100.0)
    assert pacer.next_interval("b", changed=False, jobs=[ActiveJob("b", running=99.99)]) == 0.5
    assert pacer.next_interval("b", changed=False, jobs=[ActiveJob("b", running=1.0)]) == 30.0


@pytest.mark.parametrize("me, expected", [
    ({}, None),
    ({"limits": {"queued_jobs": {"max": 4}, "running_jobs": {"max": 2}}}, 4),
    ({"limits": {"queued_jobs": {"max": None}, "running_jobs": {"max": 2},
                 "concurrent_job_policy": "reject"}}, 2),
    ({"limits": "unlimited"}, None),
])
def test_advertised_capacity(me: dict[str, object], expected: int | None) -> None:
    assert advertised_capacity(me) == expected
