"""When to try again and when to look again: retry backoff with jitter, and the adaptive tick."""

from __future__ import annotations

import random
import statistics
from collections import deque
from collections.abc import Iterable

from openeo_upscale.campaign.settings import Polling, RetryPolicy

_DURATIONS_KEPT = 50
"""Recent job durations per backend used to predict when running jobs end."""


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


class Pacer:
    """The adaptive tick: fast after a change or when a running job is expected to end, slow when idle.

    Expected ends come from the durations of the jobs that finished recently on the same backend.
    """

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

    def next_interval(self, *, changed: bool, running: Iterable[tuple[str, float]] = ()) -> float:
        """Seconds until the next tick.

        ``changed``: the last tick moved a task; ``running``: (backend, seconds running so far) of
        the running jobs. Idle ticks grow the interval by ``growth`` up to ``max_interval``; it
        never waits much beyond the moment a running job is expected to end.
        """
        polling = self._polling
        if changed:
            self._interval = polling.min_interval
        else:
            self._interval = min(polling.max_interval, self._interval * polling.growth)
        interval = self._interval
        for backend, elapsed in running:
            expected = self.expected_duration(backend)
            if expected is None:
                continue
            remaining = expected - elapsed
            if remaining > 0:
                interval = min(interval, max(polling.min_interval, remaining))
            elif -remaining < 0.5 * expected:
                # Slightly overdue: most jobs end within a spread around the median; look often.
                interval = min(interval, max(polling.min_interval, 0.05 * expected))
            # Far overdue jobs (stuck in a queue, say) do not keep the tick fast.
        return interval
