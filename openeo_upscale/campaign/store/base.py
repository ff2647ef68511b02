"""What every part of `Store` shares: the engine, the clock, read and write transactions, locks."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from itertools import islice
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from openeo_upscale.campaign.store.connect import WRITE
from openeo_upscale.campaign.store.schema import campaign_table
from openeo_upscale.errors import StoreError

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """The default clock: timezone-aware UTC now."""
    return datetime.now(UTC)


class StoreBase:
    """The engine and the clock, and the two kinds of transaction every query runs in."""

    def __init__(self, engine: Engine, *, clock: Clock = utc_now) -> None:
        self._engine = engine
        self._clock = clock

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine, for tests and the migrations; everything else calls named queries."""
        return self._engine

    @property
    def dialect(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        return self._engine.dialect.name

    def now(self) -> datetime:
        """The store's clock (the one its timestamps come from)."""
        return self._clock()

    @contextmanager
    def _write(self) -> Iterator[sa.Connection]:
        """A connection in a transaction that commits on success and rolls back on any error.

        On SQLite it holds the write lock from its first statement (``BEGIN IMMEDIATE``).
        """
        with _translated(), self._engine.execution_options(**WRITE).begin() as conn:
            yield conn

    @contextmanager
    def _read(self) -> Iterator[sa.Connection]:
        with _translated(), self._engine.connect() as conn:
            yield conn

    def _lock_campaign(self, conn: sa.Connection, campaign_id: int) -> None:
        """Serialise the decisions that count the whole campaign (capacity, budget) on PostgreSQL.

        SQLite needs nothing more: a write transaction holds the database's write lock.
        """
        if conn.dialect.name == "postgresql":
            conn.execute(
                sa.select(campaign_table.c.id).where(campaign_table.c.id == campaign_id).with_for_update()
            )


@contextmanager
def _translated() -> Iterator[None]:
    """Turn SQLAlchemy errors into `StoreError`, at the edge, keeping the cause."""
    try:
        yield
    except SQLAlchemyError as exc:
        raise StoreError(f"store operation failed: {exc.__class__.__name__}: {exc}") from exc


def chunks(rows: Iterable[Any], size: int) -> Iterator[list[Any]]:
    """``rows`` in lists of at most ``size``."""
    iterator = iter(rows)
    while chunk := list(islice(iterator, size)):
        yield chunk
