"""What a runner knows of each backend's health: reachable, unreachable for a while, or unusable.

The scheduler keeps one `Health` per backend: a backend it cannot reach (no answer, a 5xx, an
identity provider that does not answer) is *unreachable since* the first failure of a streak, with
the moment of its *next try* (the backoff); a backend that cannot authenticate at the start of a
run, or that refuses the campaign's process graph (``POST /validation``), is *unusable* for the
rest of the run, with the reason. The runner records its view in the store (the runners'
``backends`` column), so that ``status`` shows it from another process.

`HealthKeeper` makes those calls for the scheduler: the login at the start, the check before the
first launch (``POST /validation``), and what a backend-wide failure means.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from openeo_upscale.campaign.client import BackendClient
from openeo_upscale.campaign.pacing import Backoff
from openeo_upscale.errors import AuthError, BackendError, TransientError

__all__ = ["BackendState", "Health", "HealthKeeper", "describe"]

log = logging.getLogger(__name__)


class BackendState(enum.StrEnum):
    """How usable a backend is for this runner now."""

    UNKNOWN = "unknown"
    """Not contacted yet in this run."""
    READY = "ready"
    """Logged in and answering (and the campaign's process graph accepted, once launched on)."""
    UNREACHABLE = "unreachable"
    """Requests (or the login) fail for now: tried again after a backoff."""
    UNUSABLE = "unusable"
    """It cannot authenticate, or refused the process graph: no job is launched on it in this run."""


VALIDATION_SKIPPED = "no /validation endpoint"
"""`Health.validation` of a backend that cannot validate a process graph."""


@dataclass
class Health:
    """One backend's health as a runner sees it (see the module docstring)."""

    state: BackendState = BackendState.UNKNOWN
    reason: str | None = None
    """Why it is unreachable or unusable (the last error), or None."""
    since: datetime | None = None
    """When it became unreachable (the first failure of the streak) or unusable."""
    next_try: datetime | None = None
    """When an unreachable backend is tried again."""
    validation: str | None = None
    """``valid``, `VALIDATION_SKIPPED`, or None before the check (and for a refusal: see `reason`)."""
    polls: bool = True
    """Whether an unusable backend's jobs are still followed (it refused the graph, but its login works)."""

    @property
    def usable(self) -> bool:
        return self.state is not BackendState.UNUSABLE

    def to_dict(self) -> dict[str, Any]:
        """JSON: the state, reason and validation, and the moments as ISO 8601 text."""
        return {
            "state": self.state.value,
            "reason": self.reason,
            "since": self.since.isoformat() if self.since else None,
            "next_try": self.next_try.isoformat() if self.next_try else None,
            "validation": self.validation,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Health:
        """The inverse of `to_dict` (unknown states read as `UNKNOWN`)."""
        try:
            state = BackendState(str(data.get("state")))
        except ValueError:
            state = BackendState.UNKNOWN
        return cls(state, data.get("reason"), _time(data.get("since")), _time(data.get("next_try")),
                   data.get("validation"))

    def summary(self, now: datetime) -> dict[str, Any]:
        """The entry `Campaign.summary` shows: state, reason, since (ISO) and ``next_try`` in
        seconds from ``now`` (None when nothing is planned)."""
        entry = self.to_dict()
        entry["next_try"] = (
            round(max(0.0, (self.next_try - now).total_seconds()), 1)
            if self.next_try is not None and self.state is BackendState.UNREACHABLE
            else None
        )
        return entry


def describe(entry: Mapping[str, Any]) -> str | None:
    """One line for a summary entry of a backend that is not well: ``unreachable since 10:02:03
    UTC, next try in 12 s: <reason>`` or ``unusable: <reason>``; None when it is."""
    state = entry.get("state")
    reason = entry.get("reason")
    if state == BackendState.UNUSABLE.value:
        return f"unusable: {reason or 'no reason recorded'}"
    if state != BackendState.UNREACHABLE.value:
        return None
    since = _time(entry.get("since"))
    text = "unreachable"
    if since is not None:
        text += f" since {since.strftime('%H:%M:%S UTC')}"
    next_try = entry.get("next_try")
    if isinstance(next_try, int | float):
        text += f", next try in {next_try:.1f} s" if next_try < 10 else f", next try in {next_try:.0f} s"
    return text + (f": {reason}" if reason else "")


class Slot(Protocol):
    """What `HealthKeeper` reads and sets on a backend's slot (`slots.BackendSlot`)."""

    client: BackendClient
    health: Health
    failures: int
    """Consecutive backend-wide failures (the backoff's count)."""
    paused_until: float
    """Monotonic seconds until which the backend is left alone."""
    connected: bool
    checked: bool

    @property
    def name(self) -> str: ...


class HealthKeeper:
    """Logs in to backends, checks them before their first launch, and decides what a failure of a
    whole backend means (see the module docstring); ``report`` is told every change."""

    def __init__(
        self,
        slots: Mapping[str, Slot],
        *,
        backoff: Backoff,
        monotonic: Callable[[], float],
        wall: Callable[[], datetime],
        report: Callable[[Mapping[str, Health]], None] | None = None,
        give_up: Callable[[str], None] | None = None,
    ) -> None:
        self._slots = slots
        self._backoff = backoff
        self._now = monotonic
        self._wall = wall
        self._report = report
        self._give_up = give_up
        """Called with a backend that cannot authenticate: another runner may have the credentials."""

    def view(self) -> dict[str, Health]:
        """Each backend's health by name."""
        return {name: slot.health for name, slot in self._slots.items()}

    def connect(self, slot: Slot) -> bool:
        """Log in to the backend once per run (a factory's connection is built now); False while it
        cannot be used: unusable, or unreachable until its next try."""
        if slot.connected:
            return True
        if not slot.health.usable or self._now() < slot.paused_until:
            return False
        try:
            slot.client.connect()
        except BackendError as exc:
            self.failed(slot, exc)
            return False
        slot.connected = True
        self.reached(slot)
        return True

    def check(self, slot: Slot, process: Callable[[], Mapping[str, Any]],
              prepare: Callable[[BackendClient], None] | None, what: str) -> bool:
        """Before the first launch on a backend: ``prepare`` it (store the UDP where it has no
        namespace), then have it validate ``process()`` (what ``POST /jobs`` would get for the task
        ``what`` names). True once it may be launched on; False while it is unreachable (tried again
        later), or when it refused (unusable, with its messages)."""
        if slot.checked:
            return True
        if not self.connect(slot) or self._now() < slot.paused_until:
            return False
        try:
            if prepare is not None:
                prepare(slot.client)
            problems = slot.client.validate(process())
        except (AuthError, TransientError) as exc:
            self.failed(slot, exc)
            return False
        except BackendError as exc:
            self.unusable(slot, f"refused the campaign's UDP: {exc.reason}", polls=True)
            return False
        if problems:
            self.unusable(slot, f"refused the process graph of {what} in POST /validation: "
                          + "; ".join(problems), polls=True)
            return False
        slot.checked = True
        slot.health.validation = VALIDATION_SKIPPED if problems is None else "valid"
        if problems is None:
            log.warning("backend %s has no POST /validation endpoint: launching without asking it first",
                        slot.name)
        else:
            log.info("backend %s validated the process graph of %s", slot.name, what)
        self.reached(slot)
        return True

    def failed(self, slot: Slot, exc: BackendError) -> None:
        """A failure of the backend as a whole. Credentials refused, or a login that fails at the
        start of the run (an identity provider that does not answer included), make it unusable; a
        transient failure later in the run pauses it."""
        if isinstance(exc, AuthError) and (not slot.connected or not isinstance(exc, TransientError)):
            self.unusable(slot, f"cannot authenticate: {exc.reason}", polls=False)
        else:
            self.pause(slot, exc)

    def pause(self, slot: Slot, exc: BackendError) -> None:
        """Leave the backend alone for a backoff; it is unreachable meanwhile, unless it asked for
        the pause itself (a 429). Logged as a warning when a streak starts or its reason changes."""
        slot.failures += 1
        retry_after = exc.retry_after if isinstance(exc, TransientError) else None
        wait = self._backoff.delay(slot.failures, retry_after)
        slot.paused_until = self._now() + wait
        if exc.status == 429:
            log.warning("backend %s: %s; pausing it for %.1f s", slot.name, exc, wait)
            return
        health, wall = slot.health, self._wall()
        news = health.state is not BackendState.UNREACHABLE or health.reason != exc.reason
        if health.state is not BackendState.UNREACHABLE:
            health.since = wall
        health.state, health.reason = BackendState.UNREACHABLE, exc.reason
        health.next_try = wall + timedelta(seconds=wait)
        log.log(logging.WARNING if news else logging.INFO, "backend %s %s", slot.name,
                describe(health.summary(wall)))
        self._changed()

    def unusable(self, slot: Slot, reason: str, *, polls: bool) -> None:
        """No more launches on the backend in this run; with ``polls`` its jobs are still followed.
        A warning while other backends carry on; when it was the last one, its reason ends the run
        (`TickResult.no_backend`), so it is not logged twice."""
        health = slot.health
        health.state, health.reason = BackendState.UNUSABLE, " ".join(reason.split())
        health.since, health.next_try, health.polls = self._wall(), None, polls
        others = any(s.health.usable for s in self._slots.values())
        log.log(logging.WARNING if others else logging.INFO, "backend %s is unusable: %s%s", slot.name,
                health.reason, "; its tasks stay pending" if others else "")
        self._changed()
        if not polls and self._give_up is not None:
            self._give_up(slot.name)

    def reached(self, slot: Slot) -> None:
        """The backend answered: no longer unreachable."""
        slot.failures = 0
        health = slot.health
        if health.state not in (BackendState.UNKNOWN, BackendState.UNREACHABLE):
            return
        if health.state is BackendState.UNREACHABLE and health.since is not None:
            log.warning("backend %s reachable again after %.0f s", slot.name,
                        (self._wall() - health.since).total_seconds())
        health.state, health.reason, health.since, health.next_try = BackendState.READY, None, None, None
        self._changed()

    def _changed(self) -> None:
        if self._report is not None:
            self._report(self.view())


def _time(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None
