"""The crash-proof task store: campaigns, one task row per tile, and every transition as an event.

A SQLite file by default (WAL, foreign keys, busy timeout), or PostgreSQL by URL so that several
workers can share a campaign. Each state change is one transaction: a conditional UPDATE
(``WHERE state = from_state``) and the appended event commit together or not at all, so two
workers racing for the same task cannot both win, and nothing persists half a transition.

Secrets never reach the store: there is no column for tokens or passwords (``client_token`` is
the idempotency marker put into a job's title, not a credential).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from itertools import islice
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, Dialect, Engine, make_url
from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError, SQLAlchemyError

from openeo_upscale.campaign.models import Event, Task
from openeo_upscale.campaign.states import TASK_TRANSITIONS, JobStatus, TaskState
from openeo_upscale.errors import StoreError

SCHEMA_VERSION = 1
"""Version of the tables this code writes; a store recorded with a newer one is refused."""

SCHEMA_RACE_RETRIES = 3
"""Times `Store.open` looks again when another process created the tables at the same moment."""

SQLITE_BUSY_TIMEOUT_S = 30.0
"""How long a SQLite writer waits for another one before giving up."""

_INSERT_CHUNK = 10_000
"""Rows per executemany call in `Store.add_tasks` (bounds memory, not transactions)."""

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """The default clock: timezone-aware UTC now."""
    return datetime.now(UTC)


class _UTCDateTime(sa.types.TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite keeps no offset, so store UTC)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise StoreError(f"naive datetime {value.isoformat()} given; the store needs timezone-aware ones")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


_JSON = sa.JSON(none_as_null=True)
_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")  # INTEGER PRIMARY KEY is SQLite's rowid
_STATE = sa.String(16)

metadata = sa.MetaData()

campaign_table = sa.Table(
    "campaign", metadata,
    sa.Column("id", _ID, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("created", _UTCDateTime, nullable=False),
    sa.Column("config", _JSON, nullable=False),
    sa.Column("udp", _JSON),
)

tasks_table = sa.Table(
    "tasks", metadata,
    sa.Column("id", _ID, primary_key=True, autoincrement=True),
    sa.Column("campaign_id", _ID, sa.ForeignKey("campaign.id", ondelete="CASCADE"), nullable=False),
    sa.Column("tile_id", sa.String(100), nullable=False),
    sa.Column("epsg", sa.Integer),
    sa.Column("west", sa.Float),
    sa.Column("south", sa.Float),
    sa.Column("east", sa.Float),
    sa.Column("north", sa.Float),
    sa.Column("geometry", sa.Text),
    sa.Column("parameters", _JSON, nullable=False),
    sa.Column("state", _STATE, nullable=False),
    sa.Column("job_status", _STATE),
    sa.Column("backend", sa.String(100)),
    sa.Column("pinned_backend", sa.String(100)),
    sa.Column("job_id", sa.String(200)),
    sa.Column("client_token", sa.String(200)),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("attempt_floor", sa.Integer, nullable=False, server_default="0"),
    sa.Column("created", _UTCDateTime, nullable=False),
    sa.Column("updated", _UTCDateTime, nullable=False),
    sa.Column("started", _UTCDateTime),
    sa.Column("finished", _UTCDateTime),
    sa.Column("usage", _JSON),
    sa.Column("costs", sa.Float),
    sa.Column("error", sa.Text),
    sa.Column("result_paths", _JSON),
    sa.UniqueConstraint("campaign_id", "tile_id", name="uq_tasks_campaign_tile"),
    sa.Index("ix_tasks_campaign_state", "campaign_id", "state"),
)

events_table = sa.Table(
    "events", metadata,
    sa.Column("id", _ID, primary_key=True, autoincrement=True),
    sa.Column("task_id", _ID, sa.ForeignKey("tasks.id", ondelete="CASCADE"), nullable=False, index=True),
    sa.Column("at", _UTCDateTime, nullable=False),
    sa.Column("actor", sa.String(100), nullable=False),
    sa.Column("from_state", _STATE, nullable=False),
    sa.Column("to_state", _STATE, nullable=False),
    sa.Column("job_status", _STATE),
    sa.Column("reason", sa.Text),
)

schema_info_table = sa.Table(
    "schema_info", metadata,
    sa.Column("version", sa.Integer, nullable=False),
)

TILE_FIELDS = frozenset({"tile_id", "epsg", "west", "south", "east", "north", "geometry", "parameters",
                         "pinned_backend"})
"""Keys a row given to `Store.add_tasks` may carry (``tile_id`` is required)."""

TRANSITION_FIELDS = frozenset({"job_status", "backend", "job_id", "client_token", "attempts", "attempt_floor",
                               "started",
                               "finished", "usage", "costs", "error", "result_paths"})
"""Columns `Store.transition` may set along with the state."""


def _engine_for(target: str | os.PathLike[str]) -> Engine:
    """An engine for a SQLite file path / ``sqlite:///`` URL or a ``postgresql://`` URL."""
    text = os.fspath(target)
    url: URL
    if "://" not in text:
        path = Path(text).expanduser().resolve()
        path.parent.mkdir(parents=True, exist_ok=True)
        url = URL.create("sqlite", database=str(path))
    else:
        url = make_url(text)
    backend = url.get_backend_name()
    if backend == "postgresql":
        if url.get_driver_name() in ("psycopg2", "psycopg"):
            url = url.set(drivername="postgresql+psycopg")
        return sa.create_engine(url, pool_pre_ping=True)
    if backend != "sqlite":
        raise StoreError(f"unsupported store {url.render_as_string(hide_password=True)!r}: "
                         "give a SQLite file path or a postgresql:// URL")
    if url.database in (None, "", ":memory:"):
        raise StoreError("an in-memory SQLite store would not survive a crash; give a file path")
    engine = sa.create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S})

    @sa.event.listens_for(engine, "connect")
    def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={int(SQLITE_BUSY_TIMEOUT_S * 1000)}")
        cursor.close()

    return engine


def _prepare_schema(engine: Engine) -> None:
    """Create missing tables and record the schema version; refuse a store from newer code."""
    with engine.begin() as conn:
        found: int | None = None
        if sa.inspect(conn).has_table("schema_info"):
            found = conn.execute(sa.select(sa.func.max(schema_info_table.c.version))).scalar()
        if found is not None and found > SCHEMA_VERSION:
            raise StoreError(f"the store has schema version {found}, newer than this code's version "
                             f"{SCHEMA_VERSION}; upgrade openeo-upscale to open it")
        if found is not None and found < SCHEMA_VERSION:
            raise StoreError(f"the store has schema version {found}, older than this code's version "
                             f"{SCHEMA_VERSION}, and no migration exists")
        metadata.create_all(conn)
        if found is None:
            conn.execute(sa.insert(schema_info_table).values(version=SCHEMA_VERSION))


def _chunks(rows: Iterable[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    iterator = iter(rows)
    while chunk := list(islice(iterator, size)):
        yield chunk


class Store:
    """Campaigns, their tasks and the tasks' events, in SQLite or PostgreSQL.

    Build one with `Store.open`; close it with `close` or use it as a context manager.
    Thread-safe: every method takes its own connection from the engine's pool.
    """

    def __init__(self, engine: Engine, *, clock: Clock = utc_now) -> None:
        self._engine = engine
        self._clock = clock

    @classmethod
    def open(cls, target: str | os.PathLike[str], *, clock: Clock = utc_now) -> Store:
        """Open (and create if needed) the store at a SQLite file path or a ``postgresql://`` URL.

        Raises `StoreError` when the database is unreachable or was written by a newer version.
        """
        engine = _engine_for(target)
        try:
            for attempt in range(SCHEMA_RACE_RETRIES + 1):
                try:
                    _prepare_schema(engine)
                    break
                except (OperationalError, IntegrityError, ProgrammingError) as exc:
                    # Two processes creating a new store at once (a runner and a dashboard, say):
                    # both saw no table and the second CREATE fails. Look again: it is there now.
                    raced = isinstance(exc, IntegrityError) or "exist" in str(exc).lower()
                    if attempt == SCHEMA_RACE_RETRIES or not raced:
                        raise
        except SQLAlchemyError as exc:
            engine.dispose()
            raise StoreError(f"cannot open the store: {exc.__class__.__name__}: {exc}") from exc
        except StoreError:
            engine.dispose()
            raise
        return cls(engine, clock=clock)

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine, for read-only tools (reports, dashboards) and tests."""
        return self._engine

    @property
    def dialect(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        return self._engine.dialect.name

    def close(self) -> None:
        """Release every pooled connection."""
        self._engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # campaigns and tasks ------------------------------------------------------------------------

    def create_campaign(self, name: str, *, config: Mapping[str, Any] | None = None,
                        udp: Mapping[str, Any] | None = None,
                        tasks: Iterable[Mapping[str, Any]] | None = None) -> int:
        """Record a new campaign with its configuration, a snapshot of its UDP and its ``tasks``
        (rows as for `add_tasks`), all in one transaction; return its id.

        A crash or an error leaves either the whole campaign or nothing, never a campaign without
        its tasks.
        """
        values = {"name": name, "created": self._clock(), "config": dict(config or {}),
                  "udp": dict(udp) if udp is not None else None}
        with self._write() as conn:
            result = conn.execute(sa.insert(campaign_table).values(values))
            key = result.inserted_primary_key
            assert key is not None
            campaign_id = int(key[0])
            if tasks is not None:
                self._insert_tasks(conn, campaign_id, tasks)
            return campaign_id

    def add_tasks(self, campaign_id: int, rows: Iterable[Mapping[str, Any]]) -> int:
        """Insert one pending task per row in one transaction; return how many were added.

        Each row needs ``tile_id`` and may carry ``epsg, west, south, east, north, geometry``
        (WKT or GeoJSON text, or an object with a ``wkt`` attribute), ``parameters`` and
        ``pinned_backend`` (the only backend that may run the task).
        A tile id already in the campaign raises `StoreError` and nothing is added.
        """
        with self._write() as conn:
            return self._insert_tasks(conn, campaign_id, rows)

    def _insert_tasks(self, conn: sa.Connection, campaign_id: int, rows: Iterable[Mapping[str, Any]]) -> int:
        now = self._clock()
        defaults: dict[str, Any] = {"epsg": None, "west": None, "south": None, "east": None, "north": None,
                                    "geometry": None, "parameters": {}, "pinned_backend": None}

        def normalized(row: Mapping[str, Any]) -> dict[str, Any]:
            unknown = row.keys() - TILE_FIELDS
            if unknown:
                raise StoreError(f"unknown task field(s) {sorted(unknown)}; allowed: {sorted(TILE_FIELDS)}")
            if "tile_id" not in row:
                raise StoreError(f"a task row needs a tile_id: {dict(row)!r}")
            values = {**defaults, **row, "campaign_id": campaign_id, "state": TaskState.PENDING.value,
                      "attempts": 0, "attempt_floor": 0, "created": now, "updated": now}
            values["tile_id"] = str(values["tile_id"])
            geometry = values["geometry"]
            if geometry is not None and not isinstance(geometry, str):
                values["geometry"] = geometry.wkt
            return values

        added = 0
        statement = sa.insert(tasks_table)
        for chunk in _chunks(map(normalized, rows), _INSERT_CHUNK):
            try:
                conn.execute(statement, chunk)
            except IntegrityError as exc:
                raise StoreError(f"campaign {campaign_id}: a tile id is already present or the "
                                 f"campaign does not exist ({exc.orig})") from exc
            added += len(chunk)
        return added

    # transitions --------------------------------------------------------------------------------

    def transition(self, task_id: int, from_state: TaskState, to_state: TaskState, *, actor: str,
                   reason: str | None = None, **fields: Any) -> bool:
        """Move a task from ``from_state`` to ``to_state`` and append the event, in one transaction.

        ``fields`` sets other columns at the same time (see `TRANSITION_FIELDS`); a ``job_status``
        among them is also recorded on the event. ``from_state == to_state`` records a change of
        the backend job within our state (a job created, adopted, or its status changed).
        Returns False, writing nothing, when the task is
        not (or no longer) in ``from_state``: someone else moved it. Raises `StoreError` for a
        transition not in `TASK_TRANSITIONS` or an unknown field.
        """
        from_state, to_state = TaskState(from_state), TaskState(to_state)
        if to_state is not from_state and to_state not in TASK_TRANSITIONS[from_state]:
            raise StoreError(f"task {task_id}: transition {from_state} -> {to_state} is not allowed")
        unknown = fields.keys() - TRANSITION_FIELDS
        if unknown:
            raise StoreError(f"task {task_id}: cannot set {sorted(unknown)} in a transition; "
                             f"allowed: {sorted(TRANSITION_FIELDS)}")
        job_status = fields.get("job_status")
        if job_status is not None:
            fields["job_status"] = job_status = JobStatus(job_status).value
        now = self._clock()
        # The UPDATE is the transaction's first statement: SQLite takes the write lock before
        # reading, and PostgreSQL re-checks the WHERE clause after waiting on the row lock, so of
        # two racing workers exactly one sees rowcount 1.
        with self._write() as conn:
            result = conn.execute(
                sa.update(tasks_table)
                .where(tasks_table.c.id == task_id, tasks_table.c.state == from_state.value)
                .values(state=to_state.value, updated=now, **fields)
            )
            if result.rowcount != 1:
                return False
            conn.execute(sa.insert(events_table).values(
                task_id=task_id, at=now, actor=actor, from_state=from_state.value,
                to_state=to_state.value, job_status=job_status, reason=reason,
            ))
        return True

    def update(self, task_id: int, state: TaskState, **fields: Any) -> bool:
        """Set columns of a task still in ``state`` without an event (bookkeeping, not a transition).

        Returns False, writing nothing, when the task is no longer in ``state``.
        """
        unknown = fields.keys() - TRANSITION_FIELDS
        if unknown:
            raise StoreError(f"task {task_id}: cannot set {sorted(unknown)}; "
                             f"allowed: {sorted(TRANSITION_FIELDS)}")
        if fields.get("job_status") is not None:
            fields["job_status"] = JobStatus(fields["job_status"]).value
        with self._write() as conn:
            result = conn.execute(
                sa.update(tasks_table)
                .where(tasks_table.c.id == task_id, tasks_table.c.state == TaskState(state).value)
                .values(updated=self._clock(), **fields)
            )
            return bool(result.rowcount == 1)

    def set_campaign_config(self, campaign_id: int, config: Mapping[str, Any]) -> None:
        """Replace the campaign's stored configuration."""
        with self._write() as conn:
            conn.execute(sa.update(campaign_table).where(campaign_table.c.id == campaign_id)
                         .values(config=dict(config)))

    # queries ------------------------------------------------------------------------------------

    def campaign(self, campaign_id: int | None = None, *, name: str | None = None) -> dict[str, Any]:
        """A campaign row (id, name, created, config, udp) by id, by name, or the only one there is."""
        query = sa.select(campaign_table).order_by(campaign_table.c.id)
        if campaign_id is not None:
            query = query.where(campaign_table.c.id == campaign_id)
        if name is not None:
            query = query.where(campaign_table.c.name == name)
        with self._read() as conn:
            rows = [dict(row._mapping) for row in conn.execute(query.limit(2))]
        if not rows:
            wanted = f"id {campaign_id}" if campaign_id is not None else f"name {name!r}" if name else "any"
            raise StoreError(f"no campaign with {wanted} in the store")
        if len(rows) > 1:
            raise StoreError("the store holds several campaigns; name the one to open")
        return rows[0]

    def campaigns(self) -> list[dict[str, Any]]:
        """Every campaign's id and name, oldest first."""
        query = sa.select(campaign_table.c.id, campaign_table.c.name).order_by(campaign_table.c.id)
        with self._read() as conn:
            return [dict(row._mapping) for row in conn.execute(query)]

    def credits(self, campaign_id: int) -> float:
        """Credits charged so far: the sum of the tasks' recorded costs."""
        query = sa.select(sa.func.coalesce(sa.func.sum(tasks_table.c.costs), 0.0)).where(
            tasks_table.c.campaign_id == campaign_id)
        with self._read() as conn:
            return float(conn.execute(query).scalar() or 0.0)

    def backend_counts(self, campaign_id: int) -> dict[str, dict[TaskState, int]]:
        """Per backend, how many of the campaign's tasks are in each state (tasks without one left out)."""
        query = (sa.select(tasks_table.c.backend, tasks_table.c.state, sa.func.count())
                 .where(tasks_table.c.campaign_id == campaign_id, tasks_table.c.backend.is_not(None))
                 .group_by(tasks_table.c.backend, tasks_table.c.state))
        found: dict[str, dict[TaskState, int]] = {}
        with self._read() as conn:
            for backend, state, count in conn.execute(query):
                found.setdefault(backend, {})[TaskState(state)] = int(count)
        return found

    def count_events(self, campaign_id: int) -> int:
        """How many events the campaign's tasks have (for tests and reports)."""
        query = (sa.select(sa.func.count()).select_from(events_table.join(tasks_table))
                 .where(tasks_table.c.campaign_id == campaign_id))
        with self._read() as conn:
            return int(conn.execute(query).scalar() or 0)

    def all_tasks(self, campaign_id: int, *, chunk: int = 10_000) -> Iterator[Task]:
        """Every task of the campaign, by id, read in chunks so that memory stays bounded."""
        last = 0
        while True:
            query = (sa.select(tasks_table)
                     .where(tasks_table.c.campaign_id == campaign_id, tasks_table.c.id > last)
                     .order_by(tasks_table.c.id).limit(chunk))
            with self._read() as conn:
                rows = [Task.from_row(dict(row._mapping)) for row in conn.execute(query)]
            if not rows:
                return
            yield from rows
            last = rows[-1].id

    def counts(self, campaign_id: int) -> dict[TaskState, int]:
        """How many tasks of the campaign are in each state (every state present, zeros included)."""
        query = (sa.select(tasks_table.c.state, sa.func.count())
                 .where(tasks_table.c.campaign_id == campaign_id)
                 .group_by(tasks_table.c.state))
        found = dict.fromkeys(TaskState, 0)
        with self._read() as conn:
            for state, count in conn.execute(query):
                found[TaskState(state)] = int(count)
        return found

    def tasks_in(self, campaign_id: int, states: TaskState | Iterable[TaskState],
                 limit: int | None = None, *, runnable_on: Iterable[str] | None = None) -> list[Task]:
        """The campaign's tasks in any of ``states``, oldest id first, at most ``limit``.

        ``runnable_on`` keeps only tasks that are not pinned, or pinned to one of those backends.
        """
        chosen = [states] if isinstance(states, str) else list(states)
        wanted = [TaskState(state).value for state in chosen]
        query = (sa.select(tasks_table)
                 .where(tasks_table.c.campaign_id == campaign_id, tasks_table.c.state.in_(wanted))
                 .order_by(tasks_table.c.id)
                 .limit(limit))
        if runnable_on is not None:
            query = query.where(sa.or_(tasks_table.c.pinned_backend.is_(None),
                                       tasks_table.c.pinned_backend.in_(list(runnable_on))))
        with self._read() as conn:
            return [Task.from_row(dict(row._mapping)) for row in conn.execute(query)]

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

    # connections --------------------------------------------------------------------------------

    @contextmanager
    def _write(self) -> Iterator[sa.Connection]:
        """A connection in a transaction that commits on success and rolls back on any error."""
        with _translated(), self._engine.begin() as conn:
            yield conn

    @contextmanager
    def _read(self) -> Iterator[sa.Connection]:
        with _translated(), self._engine.connect() as conn:
            yield conn


@contextmanager
def _translated() -> Iterator[None]:
    """Turn SQLAlchemy errors into `StoreError`, at the edge, keeping the cause."""
    try:
        yield
    except SQLAlchemyError as exc:
        raise StoreError(f"store operation failed: {exc.__class__.__name__}: {exc}") from exc
