"""Runners of a campaign, their heartbeats, and the leases they hold (part of `Store`).

A runner is one process running a campaign. It registers, then heart-beats; each heartbeat also
extends its leases: the backends it launches on and polls (``backend_leases``), and the downloads
it holds (``tasks.claimed_by`` / ``claim_expires``). A runner that stops heart-beating for the
lease time, or whose process is gone, is *reaped*: marked stopped, its backends freed for the
others, its downloads put back to ``finished`` (their ``.part`` files resume). Which processes are
gone is the caller's to say (`is_gone`): the store does not look at processes.

A runner's ``backends`` column names the backends it may use. It starts as a list of names; once
the runner reports its view of the backends' health (`record_backend_health`), it is an object
mapping each name to that health (state, reason, since, next try): a backend the runner found
unusable is then no longer one it may use, and ``status`` reads the health from there.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from openeo_upscale.campaign.models import RunnerInfo, Task
from openeo_upscale.campaign.states import TaskState
from openeo_upscale.campaign.store.schema import backend_leases_table, runners_table, tasks_table
from openeo_upscale.campaign.store.tasks import TaskQueries

S = TaskState
GoneCheck = Callable[[RunnerInfo], bool]
"""True when a runner's process is known to be gone (a dead pid on this host, say)."""

UNUSABLE = "unusable"
"""The health state of a backend a runner cannot use (`campaign.health.BackendState.UNUSABLE`)."""


def usable_backends(stored: Any) -> list[str]:
    """The backends a runner may use, from its ``backends`` column (a list of names, or names
    mapped to their health)."""
    if isinstance(stored, Mapping):
        return [str(name) for name, health in stored.items()
                if not (isinstance(health, Mapping) and health.get("state") == UNUSABLE)]
    return [str(name) for name in stored or ()]


def _runner_info(row: Any) -> RunnerInfo:
    values = dict(row._mapping)
    values["backends"] = usable_backends(values.get("backends"))
    return RunnerInfo.from_row(values)


@dataclass(frozen=True)
class Registration:
    """The outcome of `Store.register_runner`: this runner, or the runners that hold the campaign."""

    runner: RunnerInfo | None
    holders: tuple[RunnerInfo, ...] = ()
    reaped: tuple[RunnerInfo, ...] = ()
    """Runners found dead and taken over on the way."""


@dataclass(frozen=True)
class LeaseView:
    """The live runners of a campaign with the backends each may use, and who holds each lease."""

    runners: dict[int, tuple[str, ...]]
    """Live runner id -> the backends it may use."""
    holders: dict[str, tuple[int | None, datetime | None]]
    """Backend -> (runner holding its lease or None, until when; or since when it is free)."""

    def load(self) -> Counter[int]:
        """How many leases each live runner holds."""
        found: Counter[int] = Counter(dict.fromkeys(self.runners, 0))
        for holder, _ in self.holders.values():
            if holder in self.runners:
                found[holder] += 1
        return found

    def candidates(self, backend: str) -> list[int]:
        """The live runners that may use ``backend``."""
        return [runner for runner, backends in self.runners.items() if backend in backends]


@dataclass(frozen=True)
class Beat:
    """The outcome of a heartbeat: still registered, and the backends whose lease this runner holds."""

    alive: bool
    held: frozenset[str]


class RunnerQueries(TaskQueries):
    """Registration, heartbeats, reaping, backend leases and download claims."""

    # runners ----------------------------------------------------------------------------------

    def register_runner(
        self,
        campaign_id: int,
        *,
        host: str,
        pid: int,
        version: str,
        backends: Sequence[str],
        lease_seconds: float,
        exclusive: bool,
        is_gone: GoneCheck,
        actor: str = "recovery",
    ) -> Registration:
        """Register a runner of the campaign, reaping dead ones first, in one transaction.

        With ``exclusive`` (a SQLite store) nothing is registered while another live runner is:
        the result then names the holders.
        """
        with self._write() as conn:
            now = self._clock()
            reaped = self._reap_dead(conn, campaign_id, None, now, lease_seconds, is_gone, actor)
            live = self._live(conn, campaign_id, now, lease_seconds)
            if exclusive and live:
                return Registration(None, tuple(live), tuple(reaped))
            key = conn.execute(
                sa.insert(runners_table).values(
                    campaign_id=campaign_id,
                    host=host,
                    pid=pid,
                    version=version,
                    backends=list(backends),
                    started=now,
                    heartbeat=now,
                )
            ).inserted_primary_key
            assert key is not None
            row = conn.execute(sa.select(runners_table).where(runners_table.c.id == int(key[0]))).one()
            return Registration(_runner_info(row), (), tuple(reaped))

    def runners(self, campaign_id: int, *, live_within: float | None = None) -> list[RunnerInfo]:
        """The campaign's runners, oldest first: all of them, or (``live_within`` seconds) those not
        stopped whose last heartbeat is that recent."""
        query = sa.select(runners_table).where(runners_table.c.campaign_id == campaign_id)
        if live_within is not None:
            since = self._clock() - timedelta(seconds=live_within)
            query = query.where(runners_table.c.stopped.is_(None), runners_table.c.heartbeat >= since)
        with self._read() as conn:
            return [
                _runner_info(row)
                for row in conn.execute(query.order_by(runners_table.c.id))
            ]

    def runner(self, runner_id: int) -> RunnerInfo | None:
        """One runner by id, or None."""
        with self._read() as conn:
            row = conn.execute(sa.select(runners_table).where(runners_table.c.id == runner_id)).first()
        return None if row is None else _runner_info(row)

    def heartbeat(self, campaign_id: int, runner_id: int, *, lease_seconds: float) -> Beat:
        """Record that the runner is alive and extend every lease it holds, in one transaction."""
        r, leases, t = runners_table, backend_leases_table, tasks_table
        with self._write() as conn:
            if conn.dialect.name == "postgresql":
                # Wait for the runner's row before reading the clock: a heartbeat that queued
                # behind another transaction must not record the time it started waiting.
                conn.execute(sa.select(r.c.id).where(r.c.id == runner_id).with_for_update())
            now = self._clock()
            until = now + timedelta(seconds=lease_seconds)
            alive = (
                conn.execute(
                    sa.update(r).where(r.c.id == runner_id, r.c.stopped.is_(None)).values(heartbeat=now)
                ).rowcount
                == 1
            )
            if not alive:
                return Beat(False, frozenset())
            conn.execute(
                sa.update(leases)
                .where(leases.c.campaign_id == campaign_id, leases.c.runner_id == runner_id)
                .values(expires=until)
            )
            conn.execute(
                sa.update(t)
                .where(
                    t.c.campaign_id == campaign_id,
                    t.c.state == S.DOWNLOADING.value,
                    t.c.claimed_by == runner_id,
                )
                .values(claim_expires=until)
            )
            held = conn.execute(
                sa.select(leases.c.backend).where(
                    leases.c.campaign_id == campaign_id, leases.c.runner_id == runner_id
                )
            ).scalars()
            return Beat(True, frozenset(held))

    def reap_runners(
        self,
        campaign_id: int,
        me: int | None,
        *,
        lease_seconds: float,
        is_gone: GoneCheck,
        actor: str = "recovery",
    ) -> list[RunnerInfo]:
        """Take over the runners that stopped heart-beating or whose process is gone, and the
        downloads left without a live holder; returns the runners reaped."""
        with self._write() as conn:
            now = self._clock()
            reaped = self._reap_dead(conn, campaign_id, me, now, lease_seconds, is_gone, actor)
            self._release_orphaned_downloads(conn, campaign_id, me, now, actor)
            return reaped

    def record_backend_health(self, runner_id: int, health: Mapping[str, Mapping[str, Any] | None]) -> None:
        """Store a runner's view of its backends: name -> health (JSON: state, reason, since, next
        try, ...), or None where it has none. A backend whose state is ``unusable`` is no longer one
        the runner may use (`lease_view`)."""
        r = runners_table
        stored = {name: dict(entry) if entry is not None else None for name, entry in health.items()}
        with self._write() as conn:
            conn.execute(sa.update(r).where(r.c.id == runner_id).values(backends=stored))

    def backend_health(
        self, campaign_id: int, *, live_within: float
    ) -> dict[str, tuple[dict[str, Any], bool]]:
        """Per backend: the health reported by the runner that heart-beat last among those reporting
        it, and whether that runner is live (heart-beaten within ``live_within`` seconds, not
        stopped). Backends nobody reported on are absent."""
        r = runners_table
        since = self._clock() - timedelta(seconds=live_within)
        with self._read() as conn:
            rows = conn.execute(
                sa.select(r.c.backends, r.c.heartbeat, r.c.stopped)
                .where(r.c.campaign_id == campaign_id)
                .order_by(r.c.heartbeat, r.c.id)
            ).all()
        found: dict[str, tuple[dict[str, Any], bool]] = {}
        for backends, heartbeat, stopped in rows:  # oldest first: a later runner's report wins
            if not isinstance(backends, Mapping):
                continue
            live = stopped is None and heartbeat >= since
            for name, entry in backends.items():
                if isinstance(entry, Mapping):
                    found[str(name)] = (dict(entry), live)
        return found

    def stop_runner(self, campaign_id: int, runner_id: int, reason: str, *, actor: str = "runner") -> None:
        """A runner leaves: marked stopped, its leases freed, downloads it still claims put back."""
        with self._write() as conn:
            self._retire(conn, campaign_id, runner_id, self._clock(), reason, actor)

    def _live(
        self, conn: sa.Connection, campaign_id: int, now: datetime, lease_seconds: float
    ) -> list[RunnerInfo]:
        r = runners_table
        since = now - timedelta(seconds=lease_seconds)
        rows = conn.execute(
            sa.select(r)
            .where(r.c.campaign_id == campaign_id, r.c.stopped.is_(None), r.c.heartbeat >= since)
            .order_by(r.c.id)
        )
        return [_runner_info(row) for row in rows]

    def _reap_dead(
        self,
        conn: sa.Connection,
        campaign_id: int,
        me: int | None,
        now: datetime,
        lease_seconds: float,
        is_gone: GoneCheck,
        actor: str,
    ) -> list[RunnerInfo]:
        r = runners_table
        rows = conn.execute(sa.select(r).where(r.c.campaign_id == campaign_id, r.c.stopped.is_(None)))
        reaped = []
        for info in (_runner_info(row) for row in rows):
            if info.id == me:
                continue
            silent = (now - info.heartbeat).total_seconds()
            if silent > lease_seconds:
                reason = f"no heartbeat for {silent:.0f} s (lease {lease_seconds:g} s)"
            elif is_gone(info):
                reason = f"process {info.pid} on host {info.host} is gone"
            else:
                continue
            self._retire(conn, campaign_id, info.id, now, f"taken over: {reason}", actor)
            reaped.append(info)
        return reaped

    def _retire(
        self, conn: sa.Connection, campaign_id: int, runner_id: int, now: datetime, reason: str, actor: str
    ) -> None:
        r, leases, t = runners_table, backend_leases_table, tasks_table
        conn.execute(
            sa.update(r)
            .where(r.c.id == runner_id, r.c.stopped.is_(None))
            .values(stopped=now, stop_reason=reason)
        )
        conn.execute(
            sa.update(leases)
            .where(leases.c.campaign_id == campaign_id, leases.c.runner_id == runner_id)
            .values(runner_id=None, expires=now)
        )
        held = (
            conn.execute(
                sa.select(t.c.id).where(
                    t.c.campaign_id == campaign_id,
                    t.c.state == S.DOWNLOADING.value,
                    t.c.claimed_by == runner_id,
                )
            )
            .scalars()
            .all()
        )
        for task_id in held:
            self._resume_later(conn, task_id, f"runner {runner_id}: {reason}", actor)

    def _release_orphaned_downloads(
        self, conn: sa.Connection, campaign_id: int, me: int | None, now: datetime, actor: str
    ) -> None:
        """Downloads claimed by nobody (a store of an earlier release), by a stopped runner, or whose
        claim expired (a runner too slow to heart-beat) go back to ``finished``."""
        r, t = runners_table, tasks_table
        stopped = sa.select(r.c.id).where(r.c.campaign_id == campaign_id, r.c.stopped.is_not(None))
        query = sa.select(t.c.id, t.c.claimed_by).where(
            t.c.campaign_id == campaign_id,
            t.c.state == S.DOWNLOADING.value,
            sa.or_(t.c.claimed_by.is_(None), t.c.claim_expires < now, t.c.claimed_by.in_(stopped)),
        )
        if me is not None:
            query = query.where(sa.or_(t.c.claimed_by.is_(None), t.c.claimed_by != me))
        for task_id, holder in conn.execute(query).all():
            why = "no runner held it" if holder is None else f"runner {holder} no longer holds it"
            self._resume_later(conn, task_id, why, actor)

    def _resume_later(self, conn: sa.Connection, task_id: int, why: str, actor: str) -> None:
        """A download nobody holds any more back to ``finished``, for any runner to resume."""
        self._transition(
            conn,
            task_id,
            S.DOWNLOADING,
            S.FINISHED,
            actor=actor,
            reason=f"download interrupted ({why}); resuming",
            fields={"claimed_by": None, "claim_expires": None},
        )

    # backend leases ---------------------------------------------------------------------------

    def acquire_leases(
        self, campaign_id: int, runner_id: int, backends: Sequence[str], *, lease_seconds: float
    ) -> frozenset[str]:
        """Take the leases of ``backends`` that are free or expired; returns the backends this runner
        holds (of the campaign, also those not in ``backends``)."""
        leases = backend_leases_table
        with self._write() as conn:
            now = self._clock()
            rows = {
                row.backend: row
                for row in conn.execute(sa.select(leases).where(leases.c.campaign_id == campaign_id))
            }
            missing = [name for name in backends if name not in rows]
            if missing:
                insert = (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(leases)
                conn.execute(
                    insert.on_conflict_do_nothing(),
                    [{"campaign_id": campaign_id, "backend": name} for name in missing],
                )
            held = {name for name, row in rows.items() if row.runner_id == runner_id}
            for name in backends:
                if name in held:
                    continue
                taken = conn.execute(
                    sa.update(leases)
                    .where(
                        leases.c.campaign_id == campaign_id,
                        leases.c.backend == name,
                        sa.or_(
                            leases.c.runner_id.is_(None), leases.c.expires.is_(None), leases.c.expires < now
                        ),
                    )
                    .values(runner_id=runner_id, expires=now + timedelta(seconds=lease_seconds))
                ).rowcount
                if taken == 1:
                    held.add(name)
            return frozenset(held)

    def release_leases(self, campaign_id: int, runner_id: int, backends: Iterable[str] | None = None) -> None:
        """Give up this runner's leases (on ``backends``, or all); a free lease keeps the moment it
        was freed in ``expires``."""
        leases = backend_leases_table
        query = sa.update(leases).where(leases.c.campaign_id == campaign_id, leases.c.runner_id == runner_id)
        if backends is not None:
            query = query.where(leases.c.backend.in_(list(backends)))
        with self._write() as conn:
            conn.execute(query.values(runner_id=None, expires=self._clock()))

    def lease_view(self, campaign_id: int, *, live_within: float) -> LeaseView:
        """The live runners (heart-beaten within ``live_within`` seconds) and the lease holders."""
        r, leases = runners_table, backend_leases_table
        since = self._clock() - timedelta(seconds=live_within)
        with self._read() as conn:
            live = conn.execute(
                sa.select(r.c.id, r.c.backends).where(
                    r.c.campaign_id == campaign_id, r.c.stopped.is_(None), r.c.heartbeat >= since
                )
            ).all()
            held = conn.execute(
                sa.select(leases.c.backend, leases.c.runner_id, leases.c.expires).where(
                    leases.c.campaign_id == campaign_id
                )
            ).all()
        return LeaseView(
            {int(i): tuple(usable_backends(backends)) for i, backends in live},
            {backend: (holder, expires) for backend, holder, expires in held},
        )

    def lease_holders(self, campaign_id: int) -> dict[str, tuple[int | None, datetime | None]]:
        """Per backend of the campaign: the runner holding its lease (None: free) and until when."""
        leases = backend_leases_table
        with self._read() as conn:
            return {
                row.backend: (row.runner_id, row.expires)
                for row in conn.execute(
                    sa.select(leases).where(leases.c.campaign_id == campaign_id).order_by(leases.c.backend)
                )
            }

    # downloads --------------------------------------------------------------------------------

    def claim_downloads(
        self,
        campaign_id: int,
        runner_id: int | None,
        backends: Iterable[str],
        *,
        limit: int,
        lease_seconds: float,
        actor: str = "downloader",
    ) -> list[Task]:
        """Claim up to ``limit`` finished tasks on ``backends`` for download (``finished -> downloading``).

        A task whose download failed waits until its ``claim_expires`` (the retry backoff) has passed.

        On PostgreSQL rows another runner is claiming are skipped (``FOR UPDATE SKIP LOCKED``), so
        runners share the downloads without waiting for each other.
        """
        if limit <= 0:
            return []
        t = tasks_table
        with self._write() as conn:
            now = self._clock()
            query = (
                sa.select(t.c.id)
                .where(
                    t.c.campaign_id == campaign_id,
                    t.c.state == S.FINISHED.value,
                    t.c.backend.in_(list(backends)),
                    sa.or_(t.c.claim_expires.is_(None), t.c.claim_expires <= now),
                )
                .order_by(t.c.id)
                .limit(limit)
            )
            if conn.dialect.name == "postgresql":
                query = query.with_for_update(skip_locked=True)
            fields = {"claimed_by": runner_id, "claim_expires": now + timedelta(seconds=lease_seconds)}
            claimed = [
                task_id
                for task_id in conn.execute(query).scalars().all()
                if self._transition(
                    conn,
                    task_id,
                    S.FINISHED,
                    S.DOWNLOADING,
                    actor=actor,
                    reason="downloading results",
                    fields=fields,
                )
            ]
            if not claimed:
                return []
            rows = conn.execute(sa.select(t).where(t.c.id.in_(claimed)).order_by(t.c.id))
            return [Task.from_row(dict(row._mapping)) for row in rows]
