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
    progress: tuple[tuple[float, float], ...] = ()
    """The last (seconds ago, percentage) readings of the progress the backend reports, oldest first."""


class Pacer:
    """The adaptive tick, per backend (see the module docstring)."""

    def __init__(self, polling: Polling) -> None:
        self._polling = polling
        self._interval: dict[str, float] = {}
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
        expected = self.expected_duration(job.backend)
        readings = [(ago, pct) for ago, pct in job.progress if 0 < pct < 100]
        if len(readings) >= 2 and readings[-1][1] > readings[0][1]:
            # The rate between two readings (our clock for the start of a job is only as good as
            # the tick that saw it run, so elapsed time alone would mislead).
            (ago0, pct0), (ago1, pct1) = readings[0], readings[-1]
            rate = (pct1 - pct0) / max(ago0 - ago1, 1e-6)
            return max(0.0, (100.0 - pct1) / rate - ago1)
        if readings and expected is not None:
            ago, pct = readings[-1]
            return max(0.0, expected * (100.0 - pct) / 100.0 - ago)
        if expected is None:
            return None
        left = expected - job.running
        if left > 0:
            return left
        if -left < 0.5 * expected:
            # Overdue without progress to go by: most jobs end within a spread around the median.
            return 0.1 * expected
        return None  # far overdue (stuck in a queue, say): no basis for a guess

    def next_interval(self, backend: str, *, changed: bool, jobs: Iterable[ActiveJob] = ()) -> float:
        """Seconds until ``backend`` should be listed again.

        ``changed``: a job of it ended or was launched since the last plan; ``jobs``: its jobs.
        Jobs without a prediction are looked at on an interval that restarts at `min_interval`
        after a change and grows while nothing happens.
        """
        polling = self._polling
        fallback = self._interval.get(backend, polling.min_interval)
        fallback = polling.min_interval if changed else min(polling.max_interval, fallback * polling.growth)
        self._interval[backend] = fallback
        guesses: list[float] = []
        unknown = False
        for job in jobs:
            left = self.remaining(job)
            if left is None:
                unknown = True
            else:
                guesses.append(left + END_MARGIN)
        interval = fallback if unknown or not guesses else polling.max_interval
        if guesses:
            interval = min(interval, min(guesses))
        return min(polling.max_interval, max(polling.min_interval, interval))
