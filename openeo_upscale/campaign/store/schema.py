"""The store's tables at the newest schema version (the migrations in `migrations/` lead here).

- ``campaign``: one row per campaign; its name is unique (``duplicate_of`` marks the duplicates an
  earlier release could make, until ``openeo-upscale store repair`` renames them);
- ``tasks``: one row per tile: its UDP arguments and job options, where it stands now (our
  ``state``, the backend's ``job_status``);
- ``events``: every transition of a task (who, when, from, to, why);
- ``jobs``: the ledger, one row per backend job (attempt) of a task, from the moment its client
  token is recorded: credits, retries and audits come from it;
- ``runners``: every process that runs the campaign, the backends it may use, its heartbeat;
- ``backend_leases``: which runner launches on and polls each backend of a campaign, until when
  (a free lease: no runner, and since when it is free);
- ``forecasts``: every forecast of a campaign's credits, time and volume (`campaign.forecast`):
  the pilot's, then the ones made as the campaign runs;
- ``schema_info``: the schema version, which older releases read to refuse a newer store.

Only the store's modules import this one.
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Dialect

from openeo_upscale.errors import StoreError

SCHEMA_VERSION = 4
"""Version of the tables this code writes (``schema_info``); a store recorded with a newer one is refused."""


class UTCDateTime(sa.types.TypeDecorator[datetime]):
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


JSON = sa.JSON(none_as_null=True)
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")  # INTEGER PRIMARY KEY is SQLite's rowid
STATE = sa.String(16)
BACKEND = sa.String(100)

metadata = sa.MetaData()

campaign_table = sa.Table(
    "campaign",
    metadata,
    sa.Column("id", ID, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("created", UTCDateTime, nullable=False),
    sa.Column("config", JSON, nullable=False),
    sa.Column("udp", JSON),
    sa.Column("duplicate_of", ID),
    # Unique among the campaigns that are not marked as an old duplicate: a constraint, so that
    # two creators racing on one store cannot both insert.
    sa.Index(
        "uq_campaign_name",
        "name",
        unique=True,
        sqlite_where=sa.text("duplicate_of IS NULL"),
        postgresql_where=sa.text("duplicate_of IS NULL"),
    ),
)

tasks_table = sa.Table(
    "tasks",
    metadata,
    sa.Column("id", ID, primary_key=True, autoincrement=True),
    sa.Column("campaign_id", ID, sa.ForeignKey("campaign.id", ondelete="CASCADE"), nullable=False),
    sa.Column("tile_id", sa.String(100), nullable=False),
    sa.Column("epsg", sa.Integer),
    sa.Column("west", sa.Float),
    sa.Column("south", sa.Float),
    sa.Column("east", sa.Float),
    sa.Column("north", sa.Float),
    sa.Column("geometry", sa.Text),
    sa.Column("parameters", JSON, nullable=False),
    sa.Column("job_options", JSON),
    sa.Column("state", STATE, nullable=False),
    sa.Column("job_status", STATE),
    sa.Column("backend", BACKEND),
    sa.Column("pinned_backend", BACKEND),
    sa.Column("job_id", sa.String(200)),
    sa.Column("client_token", sa.String(200)),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("attempt_floor", sa.Integer, nullable=False, server_default="0"),
    sa.Column("created", UTCDateTime, nullable=False),
    sa.Column("updated", UTCDateTime, nullable=False),
    sa.Column("started", UTCDateTime),
    sa.Column("finished", UTCDateTime),
    sa.Column("usage", JSON),
    sa.Column("costs", sa.Float),
    sa.Column("error", sa.Text),
    sa.Column("result_paths", JSON),
    sa.Column("claimed_by", ID),
    sa.Column("claim_expires", UTCDateTime),
    sa.UniqueConstraint("campaign_id", "tile_id", name="uq_tasks_campaign_tile"),
    sa.Index("ix_tasks_campaign_state", "campaign_id", "state"),
)

events_table = sa.Table(
    "events",
    metadata,
    sa.Column("id", ID, primary_key=True, autoincrement=True),
    sa.Column("task_id", ID, sa.ForeignKey("tasks.id", ondelete="CASCADE"), nullable=False, index=True),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Column("actor", sa.String(100), nullable=False),
    sa.Column("from_state", STATE, nullable=False),
    sa.Column("to_state", STATE, nullable=False),
    sa.Column("job_status", STATE),
    sa.Column("reason", sa.Text),
)

jobs_table = sa.Table(
    "jobs",
    metadata,
    sa.Column("id", ID, primary_key=True, autoincrement=True),
    sa.Column("campaign_id", ID, sa.ForeignKey("campaign.id", ondelete="CASCADE"), nullable=False),
    sa.Column("task_id", ID, sa.ForeignKey("tasks.id", ondelete="CASCADE"), nullable=False, index=True),
    sa.Column("attempt", sa.Integer, nullable=False),
    sa.Column("backend", BACKEND, nullable=False),
    sa.Column("client_token", sa.String(200), nullable=False),
    sa.Column("job_id", sa.String(200)),
    sa.Column("runner_id", ID),
    sa.Column("requested", UTCDateTime, nullable=False),
    sa.Column("created", UTCDateTime),
    sa.Column("started", UTCDateTime),
    sa.Column("finished", UTCDateTime),
    sa.Column("status", STATE),
    sa.Column("costs", sa.Float),
    sa.Column("usage", JSON),
    sa.Column("error", sa.Text),
    sa.UniqueConstraint("client_token", name="uq_jobs_client_token"),
    sa.Index("ix_jobs_campaign_backend", "campaign_id", "backend"),
)

runners_table = sa.Table(
    "runners",
    metadata,
    sa.Column("id", ID, primary_key=True, autoincrement=True),
    sa.Column("campaign_id", ID, sa.ForeignKey("campaign.id", ondelete="CASCADE"), nullable=False),
    sa.Column("host", sa.String(255), nullable=False),
    sa.Column("pid", sa.Integer, nullable=False),
    sa.Column("version", sa.String(40), nullable=False),
    sa.Column("backends", JSON, nullable=False),
    sa.Column("started", UTCDateTime, nullable=False),
    sa.Column("heartbeat", UTCDateTime, nullable=False),
    sa.Column("stopped", UTCDateTime),
    sa.Column("stop_reason", sa.Text),
    sa.Index("ix_runners_campaign_stopped", "campaign_id", "stopped"),
)

backend_leases_table = sa.Table(
    "backend_leases",
    metadata,
    sa.Column("campaign_id", ID, sa.ForeignKey("campaign.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("backend", BACKEND, primary_key=True),
    sa.Column("runner_id", ID),
    sa.Column("expires", UTCDateTime),
)

forecasts_table = sa.Table(
    "forecasts",
    metadata,
    sa.Column("id", ID, primary_key=True, autoincrement=True),
    sa.Column("campaign_id", ID, sa.ForeignKey("campaign.id", ondelete="CASCADE"), nullable=False),
    sa.Column("made", UTCDateTime, nullable=False),
    sa.Column("basis", sa.String(16), nullable=False),
    sa.Column("forecast", JSON, nullable=False),
    sa.Index("ix_forecasts_campaign", "campaign_id", "id"),
)

schema_info_table = sa.Table(
    "schema_info",
    metadata,
    sa.Column("version", sa.Integer, nullable=False),
)
