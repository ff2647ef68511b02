"""This process's membership of a campaign: registered as a runner, heart-beating, holding leases.

How the work is divided among runners:

- **Backends** (launching and polling): each backend of a campaign has one lease, held by one
  runner at a time. Only the holder lists that backend's jobs and launches on it, so the backend
  is listed once per due time for the whole campaign, whatever the number of runners. Leases are
  balanced: a runner takes a free lease when no other live runner that may use that backend holds
  fewer leases (or when the lease has been free for two heartbeats), and between two ticks gives
  one up to a runner that may use it and holds at least two fewer. A backend only one runner
  configures stays with it.
- **Downloads**: any runner claims finished tasks (`Store.claim_downloads`), a few at a time, for
  as long as it heart-beats.
- **Slots and budget** are counted in the store, in the transaction that claims them
  (`Store.claim_launches`), not in a runner's memory.

A heartbeat thread renews the runner's leases every `Leasing.heartbeat_seconds`, takes over
runners that stopped heart-beating for `Leasing.lease_seconds` (or whose process is gone from this
host), and takes the leases they held. A runner that could not heart-beat for a while itself (a
store that stalled, a machine that paused every process) judges nobody on its first heartbeat
after it: the others were most likely stalled with it, and their heartbeats are on their way.
On SQLite a campaign has one runner at a time: a second one is refused with the holder named, or
waits for it.

The runner's scheduler `report`s its view of the backends' health (unreachable since when, next
try, unusable and why), which goes to the runner's row for ``status`` to read; a backend it cannot
authenticate to is given up (`give_up`): its lease goes to a runner that may use it, if any.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any, Protocol

from openeo_upscale import __version__
from openeo_upscale.campaign.models import RunnerInfo
from openeo_upscale.campaign.settings import Leasing
from openeo_upscale.campaign.store import Store
from openeo_upscale.errors import CampaignBusyError, StoreError

log = logging.getLogger(__name__)

Wake = Callable[[], None]


class Reportable(Protocol):
    """A backend's health as the scheduler keeps it (`campaign.health.Health`)."""

    def to_dict(self) -> dict[str, Any]: ...


def process_gone(info: RunnerInfo, *, host: str | None = None) -> bool:
    """True when ``info`` is a process of this host that no longer runs (or is a zombie)."""
    if info.host != (host or socket.gethostname()) or info.pid == os.getpid():
        return False
    try:
        os.kill(info.pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # it runs, as another user
    try:
        fields = Path(f"/proc/{info.pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return False
    return fields[0] == "Z"  # killed, not yet reaped by its parent


class Leases:
    """One runner of a campaign: `join`, then `held` backends and `actor` names; `leave` at the end."""

    def __init__(
        self,
        store: Store,
        campaign_id: int,
        backends: Sequence[str],
        *,
        leasing: Leasing | None = None,
        exclusive: bool | None = None,
        on_change: Wake | None = None,
        beating: bool = True,
        name: str | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.campaign_id = campaign_id
        self.name = name or f"campaign {campaign_id}"
        """How messages name the campaign."""
        self.backends = tuple(backends)
        self.leasing = leasing or Leasing()
        self.exclusive = store.dialect == "sqlite" if exclusive is None else exclusive
        """One runner at a time (SQLite), or any number sharing the work (PostgreSQL)."""
        self.on_change = on_change
        """Called (from the heartbeat thread) when this runner gained a lease or others were reaped."""
        self.beating = beating
        """Whether `join` starts the heartbeat thread (without it, call `beat` yourself)."""
        self.monotonic = monotonic
        """Measures this runner's own gaps between heartbeats (tests pass a clock they move)."""
        self.host = socket.gethostname()
        self.pid = os.getpid()
        self.runner: RunnerInfo | None = None
        self.lost: str | None = None
        """Why this runner lost its membership (reaped by another one), or None."""
        self._held: frozenset[str] = frozenset()
        self._balanced_at = -math.inf
        self._beaten_at: float | None = None
        """When this runner's last heartbeat was recorded (`monotonic`), None before the first."""
        self._stopped_runners: set[int] = set()
        self._lock = threading.Lock()
        """Guards `_held`."""
        self._ops = threading.Lock()
        """One lease operation at a time: a heartbeat and a rebalance must not interleave."""
        self._quit = threading.Event()
        self._thread: threading.Thread | None = None
        self._reported: dict[str, dict[str, Any] | None] | None = None

    # membership -------------------------------------------------------------------------------

    @property
    def runner_id(self) -> int | None:
        return None if self.runner is None else self.runner.id

    def actor(self, role: str) -> str:
        """The name events are recorded under: ``scheduler@3`` for runner 3's scheduler."""
        return role if self.runner is None else f"{role}@{self.runner.id}"

    def join(
        self,
        *,
        wait: bool = False,
        on_wait: Callable[[RunnerInfo], None] | None = None,
        give_up: threading.Event | None = None,
    ) -> RunnerInfo:
        """Register as a runner of the campaign and start heart-beating.

        On an exclusive (SQLite) store held by another live runner: `CampaignBusyError` naming it,
        or with ``wait`` a wait until it is gone (``on_wait`` is told whom we wait for, once per
        holder; ``give_up`` ends the wait with the error).
        """
        told: set[int] = set()
        while True:
            registration = self.store.register_runner(
                self.campaign_id,
                host=self.host,
                pid=self.pid,
                version=__version__,
                backends=self.backends,
                lease_seconds=self.leasing.lease_seconds,
                exclusive=self.exclusive,
                is_gone=self._gone,
                actor="recovery",
            )
            for reaped in registration.reaped:
                log.warning("%s: took over %s", self.name, reaped.describe(self.store.now()))
            if registration.runner is not None:
                break
            holder = registration.holders[0]
            described = holder.describe(self.store.now())
            if not wait or (give_up is not None and give_up.is_set()):
                raise CampaignBusyError(
                    f"{self.name} is being run by {described}; a SQLite store allows one "
                    "runner at a time. Wait for it (run --wait), stop it, or put the campaign in a "
                    "PostgreSQL store to run several at once",
                    holder=described,
                )
            if holder.id not in told and on_wait is not None:
                on_wait(holder)
            told.add(holder.id)
            (give_up or self._quit).wait(self.leasing.heartbeat_seconds)
        self.runner = registration.runner
        self._beaten_at = self.monotonic()
        log.info("%s: registered as %s", self.name, self.runner.describe())
        self._refresh()
        if not self.beating:
            return self.runner
        self._thread = threading.Thread(
            target=self._beating, name=f"upscale-heartbeat-{self.runner.id}", daemon=True
        )
        self._thread.start()
        return self.runner

    def leave(self, reason: str = "stopped") -> None:
        """Stop heart-beating and give everything up: the leases, any download still claimed."""
        self._quit.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=10.0)
        if self.runner is None or self.lost is not None:
            return
        try:
            self.store.stop_runner(self.campaign_id, self.runner.id, reason, actor=self.actor("recovery"))
        except StoreError as exc:
            log.error(
                "%s could not record its stop (the others take over after the lease): %s",
                self.runner.describe(),
                exc,
            )
        with self._lock:
            self._held = frozenset()

    def check(self) -> None:
        """Raise `CampaignBusyError` when another runner took this one over (it must stop)."""
        if self.lost is not None:
            raise CampaignBusyError(
                f"runner {self.runner_id} lost the campaign: {self.lost}; run again to resume"
            )

    # leases -----------------------------------------------------------------------------------

    def held(self) -> frozenset[str]:
        """The backends this runner launches on and polls now."""
        with self._lock:
            return self._held

    def holds(self, backend: str) -> bool:
        return backend in self.held()

    def rebalance(self, busy: Callable[[str], bool]) -> None:
        """Hand a lease over to a runner that may use its backend and holds at least two fewer,
        keeping those ``busy`` says are in the middle of something only this runner can finish (a
        job creation not yet recorded). At most once per heartbeat interval.

        Called by the scheduler between two ticks, never while one of its requests is in flight.
        """
        now = self.monotonic()
        if self.runner is None or now - self._balanced_at < self.leasing.heartbeat_seconds:
            return
        self._balanced_at = now
        with self._ops:
            held = self.held()
            if len(held) < 2:
                return
            view = self.store.lease_view(self.campaign_id, live_within=self.leasing.lease_seconds)
            load = view.load()
            given = []
            for name in sorted(held):
                takers = [r for r in view.candidates(name) if r != self.runner.id]
                if busy(name) or not takers:
                    continue
                taker = min(takers, key=lambda r: load[r])
                if load[taker] <= load[self.runner.id] - 2:
                    given.append(name)
                    load[taker] += 1
                    load[self.runner.id] -= 1
            if not given:
                return
            self.store.release_leases(self.campaign_id, self.runner.id, given)
            with self._lock:
                self._held = self._held - set(given)
        log.info("%s: handed %s over to the other runners", self.actor("scheduler"), ", ".join(given))

    def report(self, health: Mapping[str, Reportable]) -> None:
        """Record the backends' health in this runner's row, where ``status`` reads it (only when
        it changed). A store error is logged: the run goes on without it."""
        if self.runner is None:
            return
        entries: dict[str, dict[str, Any] | None] = {name: None for name in self.runner.backends}
        entries.update({name: entry.to_dict() for name, entry in health.items()})
        if entries == self._reported:
            return
        try:
            self.store.record_backend_health(self.runner.id, entries)
        except StoreError as exc:
            log.error("%s: cannot record the backends' health: %s", self.actor("runner"), exc)
            return
        self._reported = entries

    def give_up(self, backend: str) -> None:
        """Stop using a backend for the rest of the run: drop it from the backends this runner may
        use and free its lease for the others (record its health as unusable with `report` first,
        so that they do not hand it back)."""
        with self._ops:
            self.backends = tuple(name for name in self.backends if name != backend)
            with self._lock:
                held = backend in self._held
                self._held = self._held - {backend}
            if held and self.runner is not None:
                try:
                    self.store.release_leases(self.campaign_id, self.runner.id, [backend])
                except StoreError as exc:
                    log.error("%s: cannot free the lease of %s (it expires by itself): %s",
                              self.actor("runner"), backend, exc)
        log.info("%s: gave backend %s up", self.actor("scheduler"), backend)

    def is_stopped(self, runner_id: int) -> bool:
        """Whether a runner has stopped (or was reaped): its requests can no longer be in flight."""
        if runner_id in self._stopped_runners:
            return True
        info = self.store.runner(runner_id)
        if info is not None and info.stopped is not None:
            self._stopped_runners.add(runner_id)
            return True
        return False

    # the heartbeat ----------------------------------------------------------------------------

    def _gone(self, info: RunnerInfo) -> bool:
        return process_gone(info, host=self.host)

    def _beating(self) -> None:
        while not self._quit.wait(self.leasing.heartbeat_seconds):
            try:
                self.beat()
            except StoreError as exc:
                log.error("%s: heartbeat failed (retrying): %s", self.actor("runner"), exc)
            if self.lost is not None:
                if self.on_change is not None:
                    self.on_change()
                return

    def beat(self) -> None:
        """One heartbeat: renew this runner's leases, take over dead runners, take free leases."""
        with self._ops:
            self._beat()

    def _beat(self) -> None:
        if self.runner is None:
            return
        beat = self.store.heartbeat(
            self.campaign_id, self.runner.id, lease_seconds=self.leasing.lease_seconds
        )
        if not beat.alive:
            found = self.store.runner(self.runner.id)
            self.lost = (
                found.stop_reason if found is not None and found.stop_reason else "it was marked stopped"
            )
            log.error("%s was taken over by another runner (%s); stopping", self.runner.describe(), self.lost)
            with self._lock:
                self._held = frozenset()
            return
        with self._lock:
            before, self._held = self._held, beat.held
        beaten_at, self._beaten_at = self._beaten_at, self.monotonic()
        silent = None if beaten_at is None else self._beaten_at - beaten_at
        if silent is not None and silent > self.blind_after:
            # Whatever kept this heartbeat from the store for so long most likely kept the others'
            # too: their silence is no evidence that they are dead. Judge them on the next beat.
            log.warning(
                "%s: could not heart-beat for %.0f s (the store or this machine stalled); taking "
                "over nobody until the next heartbeat",
                self.actor("runner"),
                silent,
            )
            if self.held() - before and self.on_change is not None:
                self.on_change()
            return
        reaped = self.store.reap_runners(
            self.campaign_id,
            self.runner.id,
            lease_seconds=self.leasing.lease_seconds,
            is_gone=self._gone,
            actor=self.actor("recovery"),
        )
        for info in reaped:
            log.warning("%s took over %s", self.actor("runner"), info.describe(self.store.now()))
        self._refresh()
        if (self.held() - before or reaped) and self.on_change is not None:
            self.on_change()

    @property
    def blind_after(self) -> float:
        """Seconds without a recorded heartbeat after which this runner does not trust its view of
        the others: half the lease, and never less than two heartbeat intervals."""
        return max(self.leasing.lease_seconds / 2.0, 2.0 * self.leasing.heartbeat_seconds)

    def _refresh(self) -> None:
        """Take the free leases this runner should hold (see the module docstring)."""
        assert self.runner is not None
        me = self.runner.id
        view = self.store.lease_view(self.campaign_id, live_within=self.leasing.lease_seconds)
        load = view.load()
        now = self.store.now()
        long_free = now - timedelta(seconds=2 * self.leasing.heartbeat_seconds)
        wanted = []
        for name in self.backends:
            holder, expires = view.holders.get(name, (None, None))
            if holder == me:
                continue
            if holder is not None and expires is not None and expires >= now:
                continue  # held by a runner that heart-beats
            others = [r for r in view.candidates(name) if r != me]
            abandoned = holder is None and (expires is None or expires < long_free)
            if abandoned or all(load[r] >= load[me] for r in others):
                wanted.append(name)
                load[me] += 1
        if not wanted:
            return
        lease = self.leasing.lease_seconds
        held = self.store.acquire_leases(self.campaign_id, me, wanted, lease_seconds=lease)
        with self._lock:
            gained = held - self._held
            self._held = held
        if gained:
            log.info("%s now launches on and polls %s", self.actor("scheduler"), ", ".join(sorted(gained)))
