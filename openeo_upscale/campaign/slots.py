"""One backend as the scheduler holds it: its client and settings, and what it has learnt of it.

A `BackendSlot` keeps the backend's pause (after a backend-wide failure), the capacity it may use
now (`parallel_jobs`, lowered to what its ``/me`` advertises, and for a while after a
``ConcurrentJobLimit``), when to list its jobs next, and its health (see `health`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from openeo_upscale.campaign.client import BackendClient
from openeo_upscale.campaign.health import Health
from openeo_upscale.campaign.settings import BackendSettings

__all__ = ["BackendSlot", "advertised_capacity"]


@dataclass
class BackendSlot:
    """One backend's client, settings and what the scheduler has learnt about it."""

    settings: BackendSettings
    client: BackendClient
    paused_until: float = 0.0
    failures: int = 0
    lowered_cap: int | None = None
    lowered_until: float = 0.0
    advertised_cap: int | None = None
    me_read_at: float = -math.inf
    next_poll: float = 0.0
    """When (monotonic seconds) to list this backend's jobs next."""
    health: Health = field(default_factory=Health)
    connected: bool = False
    """Logged in at least once in this run (a later failed login is transient)."""
    checked: bool = False
    """Ready to launch on: the UDP stored where needed, the process graph validated."""

    @property
    def name(self) -> str:
        return self.settings.name

    def capacity(self, now: float) -> int:
        """Jobs this backend may hold now: `parallel_jobs`, lowered by /me and ConcurrentJobLimit."""
        cap = self.settings.parallel_jobs
        if self.advertised_cap is not None:
            cap = min(cap, self.advertised_cap)
        if self.lowered_cap is not None and now < self.lowered_until:
            cap = min(cap, self.lowered_cap)
        return max(cap, 0)


def advertised_capacity(me: Mapping[str, Any]) -> int | None:
    """Jobs an account may hold at once, from a ``/me`` document, or None where it says nothing.

    openEO 1.2 has no standard field for this; the local backend (and this reading) uses
    ``limits.queued_jobs.max`` (started jobs at once) and, where the backend refuses rather than
    queues jobs beyond its run slots (``concurrent_job_policy: reject``), ``limits.running_jobs.max``.
    """
    limits = me.get("limits")
    if not isinstance(limits, Mapping):
        return None
    found: list[int] = []
    queued = limits.get("queued_jobs")
    if isinstance(queued, Mapping) and isinstance(queued.get("max"), int):
        found.append(queued["max"])
    running = limits.get("running_jobs")
    if (
        limits.get("concurrent_job_policy") == "reject"
        and isinstance(running, Mapping)
        and isinstance(running.get("max"), int)
    ):
        found.append(running["max"])
    return min(found) if found else None
