"""The local backend's persistent state: jobs, their logs, access tokens and user UDPs.

One SQLite file in the state folder (WAL mode), so everything survives a restart.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event

metadata = sa.MetaData()

jobs = sa.Table(
    "jobs",
    metadata,
    sa.Column("id", sa.String, primary_key=True),
    sa.Column("seq", sa.Integer, nullable=False, unique=True),
    sa.Column("user", sa.String, nullable=False, index=True),
    sa.Column("title", sa.String),
    sa.Column("description", sa.Text),
    sa.Column("process", sa.JSON, nullable=False),
    sa.Column("plan", sa.String),
    sa.Column("budget", sa.Float),
    sa.Column("log_level", sa.String, nullable=False, default="info"),
    sa.Column("job_options", sa.JSON),
    sa.Column("status", sa.String, nullable=False, index=True),
    sa.Column("progress", sa.Float),
    sa.Column("created", sa.Float, nullable=False),
    sa.Column("updated", sa.Float, nullable=False),
    sa.Column("queued_at", sa.Float),
    sa.Column("eligible_at", sa.Float),
    sa.Column("started_at", sa.Float),
    sa.Column("finished_at", sa.Float),
    sa.Column("duration", sa.Float),
    sa.Column("fail_message", sa.Text),
    sa.Column("attempt", sa.Integer, nullable=False, default=1),
    sa.Column("extent", sa.JSON),
    sa.Column("usage", sa.JSON),
    sa.Column("costs", sa.Float),
    sa.Column("assets", sa.JSON),
)

logs = sa.Table(
    "logs",
    metadata,
    sa.Column("job_id", sa.String, sa.ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("n", sa.Integer, primary_key=True),
    sa.Column("time", sa.Float, nullable=False),
    sa.Column("level", sa.String, nullable=False),
    sa.Column("message", sa.Text, nullable=False),
)

tokens = sa.Table(
    "tokens",
    metadata,
    sa.Column("token", sa.String, primary_key=True),
    sa.Column("user", sa.String, nullable=False),
    sa.Column("method", sa.String, nullable=False),
    sa.Column("expires", sa.Float, nullable=False),
)

process_graphs = sa.Table(
    "process_graphs",
    metadata,
    sa.Column("user", sa.String, primary_key=True),
    sa.Column("id", sa.String, primary_key=True),
    sa.Column("process", sa.JSON, nullable=False),
)

attempts = sa.Table(
    "attempts",
    metadata,
    sa.Column("user", sa.String, primary_key=True),
    sa.Column("key", sa.String, primary_key=True),
    sa.Column("count", sa.Integer, nullable=False),
)

settings = sa.Table(
    "settings",
    metadata,
    sa.Column("name", sa.String, primary_key=True),
    sa.Column("value", sa.String, nullable=False),
)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.close()


def open_state(state_dir: Path) -> sa.Engine:
    """Open (creating if needed) the state database in `state_dir`."""
    state_dir.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(f"sqlite:///{state_dir / 'backend.sqlite'}")
    event.listen(engine, "connect", _sqlite_pragmas)
    metadata.create_all(engine)
    _add_missing_columns(engine)
    return engine


def _add_missing_columns(engine: sa.Engine) -> None:
    """Add the columns a state database of an earlier release lacks (all nullable).

    The backend's state is a scratch database of test and demo runs, so this one loop stands in
    for migrations: it only ever gains nullable columns.
    """
    with engine.begin() as conn:
        for table in metadata.sorted_tables:
            present = {column["name"] for column in sa.inspect(conn).get_columns(table.name)}
            for column in table.columns:
                if column.name not in present and column.nullable:
                    kind = column.type.compile(dialect=conn.dialect)
                    conn.exec_driver_sql(f'ALTER TABLE "{table.name}" ADD COLUMN "{column.name}" {kind}')


def signing_key(engine: sa.Engine) -> bytes:
    """The key that signs asset URLs, created once and kept so links survive a restart."""
    with engine.begin() as conn:
        row = conn.execute(sa.select(settings.c.value).where(settings.c.name == "signing_key")).first()
        if row:
            return bytes.fromhex(row[0])
        key = secrets.token_bytes(32)
        conn.execute(sa.insert(settings).values(name="signing_key", value=key.hex()))
        return key
