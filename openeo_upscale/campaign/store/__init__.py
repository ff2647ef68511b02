"""The crash-proof store: campaigns, one task row per tile, every transition as an event, a ledger of
every backend job, the runners that share a campaign with their leases, and its forecasts.

A SQLite file by default (WAL, foreign keys, busy timeout), or PostgreSQL by URL so that several
runners can share a campaign. Only this package touches the tables; everything else calls the
named queries of `Store`. Schema changes ship as Alembic migrations (`migrate`): an older store is
upgraded in place when it is opened, a newer one is refused.

Secrets never reach the store: there is no column for tokens or passwords (``client_token`` is
the idempotency marker put into a job's title, not a credential).
"""

from __future__ import annotations

import logging
import os

from sqlalchemy.exc import SQLAlchemyError

from openeo_upscale.campaign.store.adoptions import ADOPTED_PREFIX, Adoption, adopted_token, is_adopted_token
from openeo_upscale.campaign.store.base import Clock, utc_now
from openeo_upscale.campaign.store.connect import engine_for, shown_url
from openeo_upscale.campaign.store.forecasts import ForecastQueries, StoredForecast
from openeo_upscale.campaign.store.ledger import Claimed, Launch, LedgerQueries, Spending
from openeo_upscale.campaign.store.migrate import Prepared, prepare
from openeo_upscale.campaign.store.runners import Beat, LeaseView, Registration, RunnerQueries
from openeo_upscale.campaign.store.schema import SCHEMA_VERSION
from openeo_upscale.campaign.store.tasks import TILE_FIELDS, TRANSITION_FIELDS
from openeo_upscale.campaign.store.views import ViewQueries
from openeo_upscale.errors import StoreError

__all__ = [
    "ADOPTED_PREFIX",
    "SCHEMA_VERSION",
    "TILE_FIELDS",
    "TRANSITION_FIELDS",
    "Adoption",
    "Beat",
    "Claimed",
    "Clock",
    "Launch",
    "LeaseView",
    "Prepared",
    "Registration",
    "Spending",
    "Store",
    "StoredForecast",
    "adopted_token",
    "is_adopted_token",
    "shown_url",
    "utc_now",
]

log = logging.getLogger(__name__)


class Store(LedgerQueries, RunnerQueries, ViewQueries, ForecastQueries):
    """Campaigns, tasks, events, the job ledger and the runners, in SQLite or PostgreSQL.

    Build one with `Store.open`; close it with `close` or use it as a context manager.
    Thread-safe: every method takes its own connection from the engine's pool.
    """

    prepared: Prepared | None = None
    """What opening the store found and did (created, upgraded); None when built on an engine."""

    @classmethod
    def open(cls, target: str | os.PathLike[str], *, clock: Clock = utc_now) -> Store:
        """Open (and create if needed) the store at a SQLite file path or a ``postgresql://`` URL.

        A store of an older schema is upgraded in place first. Raises `StoreError` when the
        database is unreachable or was written by a newer version.
        """
        engine = engine_for(target)
        try:
            prepared = prepare(engine)
        except SQLAlchemyError as exc:
            engine.dispose()
            raise StoreError(f"cannot open the store: {exc.__class__.__name__}: {exc}") from exc
        except BaseException:
            engine.dispose()
            raise
        store = cls(engine, clock=clock)
        store.prepared = prepared
        return store

    def close(self) -> None:
        """Release every pooled connection."""
        self._engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
