"""Engines for a store: a SQLite file (WAL, foreign keys, busy timeout) or PostgreSQL by URL.

On SQLite every write transaction starts with ``BEGIN IMMEDIATE``, so that it holds the write lock
from its first statement: a transaction that reads, decides and writes (claiming a slot, registering
the only runner) cannot be overtaken between its read and its write by another process. The Python
driver's own transaction handling is switched off for that (SQLAlchemy's documented recipe), and
reads begin a plain deferred transaction.
"""

from __future__ import annotations

import os
import zlib
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine, make_url

from openeo_upscale.errors import StoreError

SQLITE_BUSY_TIMEOUT_S = 30.0
"""How long a SQLite writer waits for another one before giving up."""

WRITE = {"store_write": True}
"""Execution options of a write transaction (``BEGIN IMMEDIATE`` on SQLite)."""


def shown_url(target: str | os.PathLike[str]) -> str:
    """A store as messages show it: a file path as it is, a URL with its password masked (``***``).

    Every message, log line and printout that names a store goes through this one function.
    """
    text = os.fspath(target)
    if "://" not in text:
        return text
    try:
        return str(make_url(text).render_as_string(hide_password=True))
    except (ValueError, sa.exc.ArgumentError):
        # Not a URL SQLAlchemy can parse: show its scheme only, never what could be a secret.
        return text.split("://", 1)[0] + "://..."


def engine_for(target: str | os.PathLike[str]) -> Engine:
    """An engine for a SQLite file path / ``sqlite:///`` URL or a ``postgresql://`` URL."""
    text = os.fspath(target)
    url: URL
    if "://" not in text:
        path = Path(text).expanduser().resolve()
        path.parent.mkdir(parents=True, exist_ok=True)
        url = URL.create("sqlite", database=str(path))
    else:
        try:
            url = make_url(text)
        except sa.exc.ArgumentError:
            # SQLAlchemy's message quotes the whole URL, password and all.
            raise StoreError(f"cannot read the store URL {shown_url(text)!r}") from None
    backend = url.get_backend_name()
    if backend == "postgresql":
        if url.get_driver_name() in ("psycopg2", "psycopg"):
            url = url.set(drivername="postgresql+psycopg")
        return sa.create_engine(url, pool_pre_ping=True)
    if backend != "sqlite":
        raise StoreError(
            f"unsupported store {shown_url(text)!r}: "
            "give a SQLite file path or a postgresql:// URL"
        )
    if url.database in (None, "", ":memory:"):
        raise StoreError("an in-memory SQLite store would not survive a crash; give a file path")
    engine = sa.create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S})

    @sa.event.listens_for(engine, "connect")
    def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we emit BEGIN ourselves, below
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={int(SQLITE_BUSY_TIMEOUT_S * 1000)}")
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _sqlite_begin(conn: sa.Connection) -> None:
        conn.exec_driver_sql(
            "BEGIN IMMEDIATE" if conn.get_execution_options().get("store_write") else "BEGIN"
        )

    return engine


def lock_schema(conn: sa.Connection) -> None:
    """Serialise schema changes: two processes opening a new or old store at once take turns.

    SQLite: the write transaction already holds the database's write lock. PostgreSQL: an
    advisory lock for the transaction, keyed on the schema, so stores in other schemas of the same
    database do not wait for each other.
    """
    if conn.dialect.name == "postgresql":
        schema = conn.execute(sa.text("SELECT current_schema()")).scalar() or ""
        key = zlib.crc32(f"openeo-upscale schema {schema}".encode()) - 2**31
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})
