"""When to try again and when to look again: retry backoff with jitter, and the adaptive tick.

Only a job's *end* frees a slot, so the tick is timed on predicted ends: from the progress a
backend reports for a running job (most report a percentage), else from the durations of the
jobs that finished recently on the same backend. A job with no prediction at all (the first ones
of a campaign) is looked at on an interval that starts short after every change and grows while
nothing happens. Polling a job that just started is wasted: it cannot end before the shortest
duration seen so far.
"""

from __future__ import annotations

import random
import statistics
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

from openeo_upscale.campaign.settings import Polling, RetryPolicy

_DURATIONS_KEPT = 50
"""Recent job durations per backend used to predict when running jobs end."""

END_MARGIN = 0.05
"""Seconds added to a predicted end, so that the job has ended when we look."""


class Backoff:
    """Exponential backoff with full jitter; a server's Retry-After is a floor, never shortened."""

    def __init__(self, policy: RetryPolicy, rng: random.Random | None = None) -> None:
        self._policy = policy
        self._rng = rng or random.Random()

    def delay(self, failures: int, retry_after: float | None = None) -> float:
        """Seconds to wait after the ``failures``-th consecutive failure (1-based)."""
        ceiling = min(self._policy.backoff_max, self._policy.backoff_base * 2 ** max(0, failures - 1))
        # Full jitter (a uniform draw up to the ceiling) spreads retries of many tasks apart;
        # half the ceiling as a floor keeps the wait from collapsing to nothing.
        wait = ceiling * (0.5 + 0.5 * self._rng.random())
        return max(wait, retry_after or 0.0)


@dataclass(frozen=True)
class ActiveJob:
    """What the pacer needs to know of one job holding a slot."""

    backend: str
    running: float | None
    """Seconds since we saw it running; None while it is created or queued."""
    progress: float | None = None
    """Percentage the backend reports, if any."""


class Pacer:
    """The adaptive tick (see the module docstring)."""

    def __init__(self, polling: Polling) -> None:
        self._polling = polling
        self._interval = polling.min_interval
        self._durations: dict[str, deque[float]] = {}

    def record_duration(self, backend: str, seconds: float) -> None:
        """Remember how long a job ran on ``backend``."""
        self._durations.setdefault(backend, deque(maxlen=_DURATIONS_KEPT)).append(seconds)

    def expected_duration(self, backend: str) -> float | None:
        """The median recent job duration on ``backend``, or None before any job finished."""
        found = self._durations.get(backend)
        return statistics.median(found) if found else None

    def _shortest(self, backend: str) -> float | None:
        found = self._durations.get(backend)
        return min(found) if found else None

    def remaining(self, job: ActiveJob) -> float | None:
        """Seconds until ``job`` is expected to end, or None without a basis for a guess."""
        if job.running is None:
            # Not started: it cannot end sooner than the shortest job seen on its backend.
            return self._shortest(job.backend)
        if job.progress is not None and 0 < job.progress < 100 and job.running > 0:
            # Linear extrapolation; our running clock starts late (at the tick that saw it run),
            # which makes the guess early rather than late.
            return job.running * (100.0 - job.progress) / job.progress
        expected = self.expected_duration(job.backend)
        if expected is None:
            return None
        left = expected - job.running
        if left > 0:
            return left
        if -left < 0.5 * expected:
            # Slightly overdue: most jobs end within a spread around the median; look often.
            return 0.05 * expected
        return None  # far overdue (stuck in a queue, say): no basis for a guess

    def next_interval(self, *, changed: bool, jobs: Iterable[ActiveJob] = (),
                      due: float | None = None) -> float:
        """Seconds until the next tick.

        ``changed``: the last tick moved a task; ``jobs``: the jobs holding slots; ``due``: seconds
        until something deferred (a retry, a paused backend) is due, if anything is.
        """
        polling = self._polling
        if changed:
            self._interval = polling.min_interval
        else:
            self._interval = min(polling.max_interval, self._interval * polling.growth)
        guesses: list[float] = []
        unknown = False
        for job in jobs:
            left = self.remaining(job)
            if left is None:
                unknown = True
            else:
                guesses.append(left + END_MARGIN)
        interval = self._interval if unknown or not guesses else polling.max_interval
        if guesses:
            interval = min(interval, min(guesses))
        if due is not None:
            interval = min(interval, due)
        return min(polling.max_interval, max(polling.min_interval, interval))
