"""Campaigns, their tasks and every transition as an event (part of `Store`).

Each state change is one transaction: a conditional UPDATE (``WHERE state = from_state``), the
appended event and the matching change of the task's job in the ledger commit together or not at
all, so two workers racing for the same task cannot both win, and nothing persists half a
transition.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from openeo_upscale.campaign.models import Event, Task
from openeo_upscale.campaign.states import TASK_HOLDING, TASK_TRANSITIONS, JobStatus, TaskState
from openeo_upscale.campaign.store.adoptions import Adoption, insert_adoptions
from openeo_upscale.campaign.store.base import StoreBase, chunks
from openeo_upscale.campaign.store.schema import campaign_table, events_table, jobs_table, tasks_table
from openeo_upscale.errors import CampaignExistsError, StoreError

INSERT_CHUNK = 10_000
"""Rows per executemany call in `Store.add_tasks` (bounds memory, not transactions)."""

TILE_FIELDS = frozenset(
    {"tile_id", "epsg", "west", "south", "east", "north", "geometry", "parameters", "pinned_backend",
     "job_options"}
)
"""Keys a row given to `Store.add_tasks` may carry (``tile_id`` is required)."""

TRANSITION_FIELDS = frozenset(
    {
        "job_status",
        "job_options",
        "backend",
        "job_id",
        "client_token",
        "attempts",
        "attempt_floor",
        "started",
        "finished",
        "usage",
        "costs",
        "error",
        "result_paths",
        "claimed_by",
        "claim_expires",
    }
)
"""Columns `Store.transition` may set along with the state."""

_LEDGER_FIELDS = {
    "job_id": "job_id",
    "job_status": "status",
    "started": "started",
    "costs": "costs",
    "usage": "usage",
    "error": "error",
}
"""Task columns that, set by a transition of a task holding a job, are that job's in the ledger too."""


class TaskQueries(StoreBase):
    """Campaigns, tasks, transitions and events."""

    # campaigns --------------------------------------------------------------------------------

    def create_campaign(
        self,
        name: str,
        *,
        config: Mapping[str, Any] | None = None,
        udp: Mapping[str, Any] | None = None,
        tasks: Iterable[Mapping[str, Any]] | None = None,
        adoptions: Sequence[Adoption] = (),
        actor: str = "import",
    ) -> int:
        """Record a new campaign with its configuration, a snapshot of its UDP and its ``tasks``
        (rows as for `add_tasks`), all in one transaction; return its id.

        ``adoptions`` start some of those tasks where another job manager left their jobs (see
        `adoptions`), each with its first event by ``actor``, in the same transaction.

        A crash or an error leaves either the whole campaign or nothing, never a campaign without
        its tasks. Raises `CampaignExistsError` when the store already holds a campaign of that
        name, also when another process created it a moment before (the name is a unique key).
        """
        now = self._clock()
        values = {
            "name": name,
            "created": now,
            "config": dict(config or {}),
            "udp": dict(udp) if udp is not None else None,
        }
        with self._write() as conn:
            try:
                result = conn.execute(sa.insert(campaign_table).values(values))
            except IntegrityError as exc:
                raise CampaignExistsError(f"the store already holds a campaign named {name!r}") from exc
            key = result.inserted_primary_key
            assert key is not None
            campaign_id = int(key[0])
            if tasks is not None:
                self._insert_tasks(conn, campaign_id, tasks)
            if adoptions:
                insert_adoptions(conn, campaign_id, adoptions, now=now, actor=actor)
            return campaign_id

    def set_campaign_config(self, campaign_id: int, config: Mapping[str, Any]) -> None:
        """Replace the campaign's stored configuration."""
        with self._write() as conn:
            conn.execute(
                sa.update(campaign_table)
                .where(campaign_table.c.id == campaign_id)
                .values(config=dict(config))
            )

    def update_campaign_config(self, campaign_id: int, changes: Mapping[str, Any]) -> dict[str, Any]:
        """Set some keys of the campaign's stored configuration, keeping the others as they are in
        the store (another runner may have written them since this one read it); returns the whole
        configuration as stored now."""
        with self._write() as conn:
            self._lock_campaign(conn, campaign_id)
            found = conn.execute(
                sa.select(campaign_table.c.config).where(campaign_table.c.id == campaign_id)
            ).scalar_one_or_none()
            if found is None:
                raise StoreError(f"no campaign with id {campaign_id}")
            config = {**dict(found), **dict(changes)}
            conn.execute(
                sa.update(campaign_table).where(campaign_table.c.id == campaign_id).values(config=config)
            )
            return config

    def campaign(self, campaign_id: int | None = None, *, name: str | None = None) -> dict[str, Any]:
        """A campaign row (id, name, created, config, udp) by id, by name, or the only one there is."""
        query = sa.select(campaign_table).order_by(campaign_table.c.id)
        if campaign_id is not None:
            query = query.where(campaign_table.c.id == campaign_id)
        if name is not None:
            query = query.where(campaign_table.c.name == name)
        with self._read() as conn:
            rows = [dict(row._mapping) for row in conn.execute(query.limit(10))]
        if not rows:
            wanted = f"id {campaign_id}" if campaign_id is not None else f"name {name!r}" if name else "any"
            raise StoreError(f"no campaign with {wanted} in the store")
        if len(rows) > 1 and name is not None:
            ids = ", ".join(str(row["id"]) for row in rows)
            raise StoreError(
                f"{len(rows)} campaigns are named {name!r} in this store (ids {ids}): two runs of an "
                "earlier release created it at the same moment, and each ran the tiles on its own. "
                "`openeo-upscale store repair STORE` keeps the one with the most done tasks under the "
                "name and renames the others, so that each can be opened, checked and removed"
            )
        if len(rows) > 1:
            names = sorted({row["name"] for row in rows})
            raise StoreError(
                f"the store holds several campaigns ({', '.join(map(repr, names))}); name the one to open"
            )
        return rows[0]

    def campaigns(self) -> list[dict[str, Any]]:
        """Every campaign's id, name and ``duplicate_of`` (an old duplicate's original), oldest first."""
        query = sa.select(campaign_table.c.id, campaign_table.c.name, campaign_table.c.duplicate_of).order_by(
            campaign_table.c.id
        )
        with self._read() as conn:
            return [dict(row._mapping) for row in conn.execute(query)]

    def rename_campaign(self, campaign_id: int, name: str) -> None:
        """Give a campaign a new name (which must be free); clears its mark as an old duplicate."""
        with self._write() as conn:
            try:
                done = conn.execute(
                    sa.update(campaign_table)
                    .where(campaign_table.c.id == campaign_id)
                    .values(name=name, duplicate_of=None)
                )
            except IntegrityError as exc:
                raise CampaignExistsError(f"the store already holds a campaign named {name!r}") from exc
            if done.rowcount != 1:
                raise StoreError(f"no campaign with id {campaign_id} in the store")

    def repair_duplicates(self) -> list[str]:
        """Give every campaign a name of its own, in one transaction; returns what was done.

        Of the campaigns sharing a name (an earlier release could create two at once), the one with
        the most done tasks (the oldest on a tie) keeps it; the others become ``<name>-duplicate-<id>``.
        Nothing else changes: each can then be opened, checked and, if unwanted, removed.
        """
        c, t = campaign_table, tasks_table
        done: list[str] = []
        with self._write() as conn:
            rows = conn.execute(sa.select(c.c.id, c.c.name).order_by(c.c.id)).all()
            by_name: dict[str, list[int]] = {}
            for campaign_id, name in rows:
                by_name.setdefault(name, []).append(int(campaign_id))
            for name, ids in by_name.items():
                if len(ids) < 2:
                    continue
                finished: dict[int, int] = {
                    int(campaign_id): int(n)
                    for campaign_id, n in conn.execute(
                        sa.select(t.c.campaign_id, sa.func.count())
                        .where(t.c.campaign_id.in_(ids), t.c.state == TaskState.DONE.value)
                        .group_by(t.c.campaign_id)
                    )
                }
                keeper = max(ids, key=lambda i: (finished.get(i, 0), -i))
                for other in (i for i in ids if i != keeper):
                    new_name = f"{name}-duplicate-{other}"
                    conn.execute(sa.update(c).where(c.c.id == other).values(name=new_name, duplicate_of=None))
                    done.append(f"campaign {other} ({finished.get(other, 0)} done) renamed {new_name!r}")
                conn.execute(sa.update(c).where(c.c.id == keeper).values(duplicate_of=None))
                done.append(f"campaign {keeper} ({finished.get(keeper, 0)} done) keeps the name {name!r}")
        return done

    # tasks ------------------------------------------------------------------------------------

    def add_tasks(self, campaign_id: int, rows: Iterable[Mapping[str, Any]]) -> int:
        """Insert one pending task per row in one transaction; return how many were added.

        Each row needs ``tile_id`` and may carry ``epsg, west, south, east, north, geometry``
        (WKT or GeoJSON text, or an object with a ``wkt`` attribute), ``parameters`` and
        ``pinned_backend`` (the only backend that may run the task) and ``job_options`` (a JSON
        object sent with the task's ``POST /jobs``).
        A tile id already in the campaign raises `StoreError` and nothing is added.
        """
        with self._write() as conn:
            return self._insert_tasks(conn, campaign_id, rows)

    def _insert_tasks(self, conn: sa.Connection, campaign_id: int, rows: Iterable[Mapping[str, Any]]) -> int:
        now = self._clock()
        defaults: dict[str, Any] = {
            "epsg": None,
            "west": None,
            "south": None,
            "east": None,
            "north": None,
            "geometry": None,
            "parameters": {},
            "pinned_backend": None,
            "job_options": None,
        }

        def normalized(row: Mapping[str, Any]) -> dict[str, Any]:
            unknown = row.keys() - TILE_FIELDS
            if unknown:
                raise StoreError(f"unknown task field(s) {sorted(unknown)}; allowed: {sorted(TILE_FIELDS)}")
            if "tile_id" not in row:
                raise StoreError(f"a task row needs a tile_id: {dict(row)!r}")
            values = {
                **defaults,
                **row,
                "campaign_id": campaign_id,
                "state": TaskState.PENDING.value,
                "attempts": 0,
                "attempt_floor": 0,
                "created": now,
                "updated": now,
            }
            values["tile_id"] = str(values["tile_id"])
            geometry = values["geometry"]
            if geometry is not None and not isinstance(geometry, str):
                values["geometry"] = geometry.wkt
            return values

        added = 0
        statement = sa.insert(tasks_table)
        for chunk in chunks(map(normalized, rows), INSERT_CHUNK):
            try:
                conn.execute(statement, chunk)
            except IntegrityError as exc:
                raise StoreError(
                    f"campaign {campaign_id}: a tile id is already present or the "
                    f"campaign does not exist ({exc.orig})"
                ) from exc
            added += len(chunk)
        return added

    # transitions --------------------------------------------------------------------------------

    def transition(
        self,
        task_id: int,
        from_state: TaskState,
        to_state: TaskState,
        *,
        actor: str,
        reason: str | None = None,
        claimed: int | None = None,
        **fields: Any,
    ) -> bool:
        """Move a task from ``from_state`` to ``to_state`` and append the event, in one transaction.

        ``fields`` sets other columns at the same time (see `TRANSITION_FIELDS`); a ``job_status``
        among them is also recorded on the event. ``from_state == to_state`` records a change of
        the backend job within our state (a job created, adopted, or its status changed). With
        ``claimed``, the task must also still be claimed by that runner (a download it holds).

        The ledger follows in the same transaction: ``pending -> creating`` with a client token and
        a backend opens the attempt's row; while the task holds a job, its job id, status, start,
        usage, costs and error go to that row too, and leaving the states that hold a job closes it
        (the slot is free). Costs add up on the task: ``tasks.costs`` is what all its jobs cost.

        Returns False, writing nothing, when the task is not (or no longer) in ``from_state``:
        someone else moved it. Raises `StoreError` for a transition not in `TASK_TRANSITIONS` or
        an unknown field.
        """
        from_state, to_state = TaskState(from_state), TaskState(to_state)
        _check_transition(task_id, from_state, to_state, fields)
        with self._write() as conn:
            return self._transition(
                conn,
                task_id,
                from_state,
                to_state,
                actor=actor,
                reason=reason,
                claimed=claimed,
                fields=fields,
            )

    def split_task(
        self,
        task_id: int,
        from_state: TaskState,
        children: Sequence[Mapping[str, Any]],
        *,
        actor: str,
        reason: str,
        origin: str,
        **fields: Any,
    ) -> list[int] | None:
        """Move a task from ``from_state`` to `split` and add ``children`` (rows as for `add_tasks`)
        as pending tasks of its campaign, all in one transaction; return the children's task ids.

        The parent's event carries ``reason``, each child's first event (pending -> pending)
        ``origin``; ``fields`` are set on the parent as by `transition` (its job's end: status,
        costs, error), and its ledger row is closed. Returns None, writing nothing, when the task is
        no longer in ``from_state``: another runner handled its job first and added the children,
        or moved it on. So two runners splitting the same task add its children once. Raises
        `StoreError`, writing nothing, when a child's tile id is already in the campaign.
        """
        from_state = TaskState(from_state)
        _check_transition(task_id, from_state, TaskState.SPLIT, fields)
        t = tasks_table
        tile_ids = [str(child["tile_id"]) for child in children]
        with self._write() as conn:
            # The conditional UPDATE first: of two racing runners only one gets past it (see
            # `_transition`), so the other adds nothing.
            if not self._transition(conn, task_id, from_state, TaskState.SPLIT, actor=actor, reason=reason,
                                    fields=fields):
                return None
            campaign_id = int(conn.execute(sa.select(t.c.campaign_id).where(t.c.id == task_id)).scalar_one())
            taken = sorted(conn.execute(sa.select(t.c.tile_id).where(
                t.c.campaign_id == campaign_id, t.c.tile_id.in_(tile_ids))).scalars())
            if taken:
                raise StoreError(f"task {task_id}: cannot add its quadrants, the campaign already has "
                                 f"tile id(s) {', '.join(taken)}")
            self._insert_tasks(conn, campaign_id, children)
            added = conn.execute(sa.select(t.c.tile_id, t.c.id).where(t.c.campaign_id == campaign_id,
                                                                      t.c.tile_id.in_(tile_ids)))
            ids = {str(row.tile_id): int(row.id) for row in added}
            now, pending = self._clock(), TaskState.PENDING.value
            if tile_ids:
                conn.execute(sa.insert(events_table), [
                    {"task_id": ids[tile_id], "at": now, "actor": actor, "from_state": pending,
                     "to_state": pending, "job_status": None, "reason": origin}
                    for tile_id in tile_ids])
            return [ids[tile_id] for tile_id in tile_ids]

    def _transition(
        self,
        conn: sa.Connection,
        task_id: int,
        from_state: TaskState,
        to_state: TaskState,
        *,
        actor: str,
        reason: str | None,
        fields: Mapping[str, Any],
        claimed: int | None = None,
    ) -> bool:
        """`transition` inside the caller's transaction (which must have started with a write)."""
        now = self._clock()
        t = tasks_table
        values: dict[str, Any] = {"state": to_state.value, "updated": now, **fields}
        holding = from_state in TASK_HOLDING
        costs = fields.get("costs")
        if holding and costs is not None:
            values["costs"] = sa.func.coalesce(t.c.costs, 0.0) + float(costs)
        conditions = [t.c.id == task_id, t.c.state == from_state.value]
        if claimed is not None:
            conditions.append(t.c.claimed_by == claimed)
        # The UPDATE is the transaction's first statement: SQLite holds the write lock already
        # (BEGIN IMMEDIATE), and PostgreSQL re-checks the WHERE clause after waiting on the row
        # lock, so of two racing workers exactly one sees rowcount 1.
        result = conn.execute(sa.update(t).where(*conditions).values(values))
        if result.rowcount != 1:
            return False
        conn.execute(
            sa.insert(events_table).values(
                task_id=task_id,
                at=now,
                actor=actor,
                from_state=from_state.value,
                to_state=to_state.value,
                job_status=fields.get("job_status"),
                reason=reason,
            )
        )
        if from_state is TaskState.PENDING and to_state is TaskState.CREATING:
            self._open_job(conn, task_id, now, fields)
        elif holding:
            self._follow_job(conn, task_id, now, fields, closes=to_state not in TASK_HOLDING)
        return True

    def _open_job(self, conn: sa.Connection, task_id: int, now: datetime, fields: Mapping[str, Any]) -> None:
        """The ledger row of the attempt whose client token was just recorded."""
        token, backend = fields.get("client_token"), fields.get("backend")
        if token is None or backend is None:
            return
        row = conn.execute(
            sa.select(tasks_table.c.campaign_id, tasks_table.c.attempts).where(tasks_table.c.id == task_id)
        ).one()
        conn.execute(
            sa.insert(jobs_table).values(
                campaign_id=row.campaign_id,
                task_id=task_id,
                attempt=row.attempts,
                backend=backend,
                client_token=token,
                runner_id=fields.get("claimed_by"),
                requested=now,
            )
        )

    def _follow_job(
        self, conn: sa.Connection, task_id: int, now: datetime, fields: Mapping[str, Any], *, closes: bool
    ) -> None:
        """Copy what a transition says about the task's current job into its ledger row."""
        j = jobs_table
        values: dict[str, Any] = {
            column: fields[name]
            for name, column in _LEDGER_FIELDS.items()
            if name in fields and fields[name] is not None
        }
        if fields.get("job_id") is not None:
            values["created"] = sa.func.coalesce(j.c.created, now)
        if closes:
            values["finished"] = sa.func.coalesce(j.c.finished, fields.get("finished") or now)
        if not values:
            return
        token = sa.select(tasks_table.c.client_token).where(tasks_table.c.id == task_id).scalar_subquery()
        conn.execute(sa.update(j).where(j.c.client_token == token, j.c.task_id == task_id).values(values))

    def update(self, task_id: int, state: TaskState, **fields: Any) -> bool:
        """Set columns of a task still in ``state`` without an event (bookkeeping, not a transition).

        Returns False, writing nothing, when the task is no longer in ``state``.
        """
        unknown = fields.keys() - TRANSITION_FIELDS
        if unknown:
            raise StoreError(
                f"task {task_id}: cannot set {sorted(unknown)}; allowed: {sorted(TRANSITION_FIELDS)}"
            )
        if fields.get("job_status") is not None:
            fields["job_status"] = JobStatus(fields["job_status"]).value
        with self._write() as conn:
            result = conn.execute(
                sa.update(tasks_table)
                .where(tasks_table.c.id == task_id, tasks_table.c.state == TaskState(state).value)
                .values(updated=self._clock(), **fields)
            )
            return bool(result.rowcount == 1)

    # queries ------------------------------------------------------------------------------------

    def backend_counts(self, campaign_id: int) -> dict[str, dict[TaskState, int]]:
        """Per backend, how many of the campaign's tasks are in each state (tasks without one left out)."""
        query = (
            sa.select(tasks_table.c.backend, tasks_table.c.state, sa.func.count())
            .where(tasks_table.c.campaign_id == campaign_id, tasks_table.c.backend.is_not(None))
            .group_by(tasks_table.c.backend, tasks_table.c.state)
        )
        found: dict[str, dict[TaskState, int]] = {}
        with self._read() as conn:
            for backend, state, count in conn.execute(query):
                found.setdefault(backend, {})[TaskState(state)] = int(count)
        return found

    def count_events(self, campaign_id: int) -> int:
        """How many events the campaign's tasks have (for tests and reports)."""
        query = (
            sa.select(sa.func.count())
            .select_from(events_table.join(tasks_table))
            .where(tasks_table.c.campaign_id == campaign_id)
        )
        with self._read() as conn:
            return int(conn.execute(query).scalar() or 0)

    def all_tasks(
        self, campaign_id: int, *, chunk: int = 10_000, states: Iterable[TaskState] | None = None
    ) -> Iterator[Task]:
        """Every task of the campaign (or those in ``states``), by id, read in chunks so that memory
        stays bounded."""
        wanted = None if states is None else [TaskState(s).value for s in states]
        last = 0
        while True:
            query = (
                sa.select(tasks_table)
                .where(tasks_table.c.campaign_id == campaign_id, tasks_table.c.id > last)
                .order_by(tasks_table.c.id)
                .limit(chunk)
            )
            if wanted is not None:
                query = query.where(tasks_table.c.state.in_(wanted))
            with self._read() as conn:
                rows = [Task.from_row(dict(row._mapping)) for row in conn.execute(query)]
            if not rows:
                return
            yield from rows
            last = rows[-1].id

    def counts(self, campaign_id: int) -> dict[TaskState, int]:
        """How many tasks of the campaign are in each state (every state present, zeros included)."""
        query = (
            sa.select(tasks_table.c.state, sa.func.count())
            .where(tasks_table.c.campaign_id == campaign_id)
            .group_by(tasks_table.c.state)
        )
        found = dict.fromkeys(TaskState, 0)
        with self._read() as conn:
            for state, count in conn.execute(query):
                found[TaskState(state)] = int(count)
        return found

    def tasks_in(
        self,
        campaign_id: int,
        states: TaskState | Iterable[TaskState],
        limit: int | None = None,
        *,
        runnable_on: Iterable[str] | None = None,
        backends: Iterable[str] | None = None,
        ids: Iterable[int] | None = None,
    ) -> list[Task]:
        """The campaign's tasks in any of ``states``, oldest id first, at most ``limit``.

        ``runnable_on`` keeps only tasks that are not pinned, or pinned to one of those backends;
        ``backends`` only tasks whose current job is on one of those backends; ``ids`` only those
        tasks (a pilot's, say).
        """
        chosen = [states] if isinstance(states, str) else list(states)
        query = _selected(sa.select(tasks_table), campaign_id, chosen, runnable_on, backends, ids)
        query = query.order_by(tasks_table.c.id).limit(limit)
        with self._read() as conn:
            return [Task.from_row(dict(row._mapping)) for row in conn.execute(query)]

    def count_in(
        self,
        campaign_id: int,
        states: Iterable[TaskState],
        *,
        runnable_on: Iterable[str] | None = None,
        backends: Iterable[str] | None = None,
        at_most: int | None = None,
        ids: Iterable[int] | None = None,
    ) -> int:
        """How many of the campaign's tasks are in any of ``states`` (``runnable_on`` and ``backends``
        and ``ids`` as in `tasks_in`); counting stops at ``at_most``, so that "are there any" stays cheap on a
        campaign of 100,000 pending tasks."""
        rows = _selected(sa.select(tasks_table.c.id), campaign_id, states, runnable_on, backends, ids)
        if at_most is not None:
            rows = rows.limit(at_most)
        with self._read() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(rows.subquery())).scalar() or 0)

    def task(self, task_id: int) -> Task:
        """One task by id; `StoreError` when there is none."""
        with self._read() as conn:
            row = conn.execute(sa.select(tasks_table).where(tasks_table.c.id == task_id)).first()
        if row is None:
            raise StoreError(f"no task with id {task_id}")
        return Task.from_row(dict(row._mapping))

    def events_of(self, task_id: int) -> list[Event]:
        """The task's timeline, oldest first."""
        query = sa.select(events_table).where(events_table.c.task_id == task_id).order_by(events_table.c.id)
        with self._read() as conn:
            return [Event.from_row(dict(row._mapping)) for row in conn.execute(query)]

    def last_event_id(self) -> int:
        """The id of the newest event in the store (0 when there is none)."""
        with self._read() as conn:
            return int(
                conn.execute(sa.select(sa.func.coalesce(sa.func.max(events_table.c.id), 0))).scalar() or 0
            )

    def arrivals(
        self, campaign_id: int, after: int, states: Sequence[TaskState]
    ) -> list[tuple[int, int, TaskState]]:
        """``(event id, task id, state)`` of the campaign's events after ``after`` that moved a task
        into one of ``states``, oldest first."""
        e, t = events_table, tasks_table
        query = (
            sa.select(e.c.id, e.c.task_id, e.c.to_state)
            .join(t, t.c.id == e.c.task_id)
            .where(
                e.c.id > after,
                t.c.campaign_id == campaign_id,
                e.c.to_state.in_([TaskState(s).value for s in states]),
            )
            .order_by(e.c.id)
        )
        with self._read() as conn:
            return [(int(i), int(task), TaskState(state)) for i, task, state in conn.execute(query)]


def _check_transition(task_id: int, from_state: TaskState, to_state: TaskState,
                      fields: dict[str, Any]) -> None:
    """`StoreError` for a transition not in `TASK_TRANSITIONS` or a field it may not set; a
    ``job_status`` among ``fields`` is normalised to its value."""
    if to_state is not from_state and to_state not in TASK_TRANSITIONS[from_state]:
        raise StoreError(f"task {task_id}: transition {from_state} -> {to_state} is not allowed")
    unknown = fields.keys() - TRANSITION_FIELDS
    if unknown:
        raise StoreError(
            f"task {task_id}: cannot set {sorted(unknown)} in a transition; "
            f"allowed: {sorted(TRANSITION_FIELDS)}"
        )
    if fields.get("job_status") is not None:
        fields["job_status"] = JobStatus(fields["job_status"]).value


def _selected(
    query: sa.Select[Any],
    campaign_id: int,
    states: Iterable[TaskState],
    runnable_on: Iterable[str] | None,
    backends: Iterable[str] | None,
    ids: Iterable[int] | None = None,
) -> sa.Select[Any]:
    """``query`` kept to the campaign's tasks in ``states`` (``runnable_on``, ``backends``,
    ``ids``: see `TaskQueries.tasks_in`)."""
    t = tasks_table
    query = query.where(t.c.campaign_id == campaign_id, t.c.state.in_([TaskState(s).value for s in states]))
    if runnable_on is not None:
        query = query.where(sa.or_(t.c.pinned_backend.is_(None), t.c.pinned_backend.in_(list(runnable_on))))
    if backends is not None:
        query = query.where(t.c.backend.in_(list(backends)))
    if ids is not None:
        query = query.where(t.c.id.in_(list(ids)))
    return query
