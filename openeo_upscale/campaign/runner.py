"""The loop around `Scheduler.tick`, with explicit exits: idle, a tick budget, or a stop event."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from openeo_upscale.campaign.scheduler import Scheduler, TickResult
from openeo_upscale.errors import StoreError

log = logging.getLogger(__name__)

STORE_RETRY_SECONDS = 2.0
"""Wait after a tick failed on the store (a locked SQLite file, a PostgreSQL restart)."""


class Runner:
    """Calls `tick` when the scheduler plans the next one, until the campaign is idle, or told to stop.

    `wake` makes the next tick come at once (a download ended, say); `stop` ends the loop after
    the tick in progress, if any.
    """

    def __init__(self, scheduler: Scheduler, *, idle_wait: float = 30.0,
                 on_tick: Callable[[TickResult], None] | None = None) -> None:
        self.scheduler = scheduler
        self.idle_wait = idle_wait
        """Longest sleep between ticks (when nothing is planned, downloads wake the loop early)."""
        self.on_tick = on_tick
        self.ticks = 0
        self._wake = threading.Event()
        self._stopping = threading.Event()

    def wake(self) -> None:
        """Tick now rather than at the next planned time."""
        self._wake.set()

    def stop(self) -> None:
        """End the loop; a tick in progress finishes its current request first."""
        self._stopping.set()
        self._wake.set()

    @property
    def stopping(self) -> bool:
        """Whether `stop` was called."""
        return self._stopping.is_set()

    def run(self, *, until_idle: bool = True, max_ticks: int | None = None) -> TickResult | None:
        """Tick until idle (with ``until_idle``), ``max_ticks`` ticks, or `stop`; returns the last result."""
        last: TickResult | None = None
        while not self._stopping.is_set():
            self._wake.clear()
            try:
                last = self.scheduler.tick()
            except StoreError as exc:
                log.error("tick failed on the store, retrying in %.0f s: %s", STORE_RETRY_SECONDS, exc)
                self._wake.wait(STORE_RETRY_SECONDS)
                continue
            self.ticks += 1
            if self.on_tick is not None:
                self.on_tick(last)
            if until_idle and last.idle:
                if last.blocked:
                    log.warning("stopping with %d task(s) pending: %s", last.pending, last.blocked)
                break
            if max_ticks is not None and self.ticks >= max_ticks:
                break
            planned = last.next_tick if last.next_tick is not None else self.idle_wait
            self._wake.wait(min(planned, self.idle_wait))
        return last
