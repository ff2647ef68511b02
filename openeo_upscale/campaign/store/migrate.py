"""Bringing a store to this code's schema: create a new one, upgrade an older one with Alembic.

`prepare` runs in one transaction under a schema lock (see `connect.lock_schema`), so two processes
opening the same new or old store at once take turns and the second finds the work done. A store
of a schema version this code does not know (written by a newer release) is refused, never touched.

Stores of schema version 1 predate Alembic: they carry ``schema_info`` only and are stamped at the
baseline revision before the upgrade. A new store is created from the tables of `schema` and
stamped at the head revision (Alembic's recipe for building a database from scratch); a test
checks that upgrading the baseline gives the same tables.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from openeo_upscale.campaign.store.connect import WRITE, lock_schema
from openeo_upscale.campaign.store.schema import SCHEMA_VERSION, metadata, schema_info_table
from openeo_upscale.errors import StoreError

log = logging.getLogger(__name__)

REVISIONS = ("0001", "0002", "0003", "0004")
"""Alembic revisions of `migrations/versions`, oldest first; the last is the head."""
HEAD = REVISIONS[-1]
BASELINE = REVISIONS[0]
"""The revision of a version-1 store (the tables as the first release created them)."""
VERSION_OF = {"0001": 1, "0002": 2, "0003": 3, "0004": 4}
"""``schema_info`` version of each revision."""
SCRIPT_LOCATION = "openeo_upscale.campaign.store:migrations"


@dataclass(frozen=True)
class Prepared:
    """What `prepare` found and did."""

    found: int | None
    """Schema version the store had (None: a new store)."""
    version: int
    """Schema version it has now."""

    @property
    def upgraded(self) -> bool:
        return self.found is not None and self.found != self.version


def alembic_config(connection: sa.Connection | None = None) -> Any:
    """The Alembic configuration of the store's migrations, bound to ``connection``."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", SCRIPT_LOCATION)
    config.attributes["connection"] = connection
    return config


def prepare(engine: Engine) -> Prepared:
    """Create the tables of a new store, or upgrade an older one; refuse one from newer code."""
    with engine.execution_options(**WRITE).begin() as conn:
        lock_schema(conn)
        tables = set(sa.inspect(conn).get_table_names())
        revision = _revision(conn) if "alembic_version" in tables else None
        version = None
        if "schema_info" in tables:
            version = conn.execute(sa.select(sa.func.max(schema_info_table.c.version))).scalar()
        if version is not None and version > SCHEMA_VERSION:
            raise StoreError(
                f"the store has schema version {version}, newer than this code's version "
                f"{SCHEMA_VERSION}; upgrade openeo-upscale to open it"
            )
        if revision is not None and revision not in REVISIONS:
            raise StoreError(
                f"the store has schema revision {revision!r}, unknown to this code (newest "
                f"{HEAD!r}): it was written by a newer openeo-upscale; upgrade to open it"
            )
        if revision is None and version is None:
            ours = tables & set(metadata.tables)
            if ours:
                raise StoreError(
                    f"the database holds tables named like the store's ({', '.join(sorted(ours))}) "
                    "but no schema version: not an openeo-upscale store, or a damaged one"
                )
            metadata.create_all(conn)
            conn.execute(sa.insert(schema_info_table).values(version=SCHEMA_VERSION))
            _alembic("stamp", conn, HEAD)
            return Prepared(None, SCHEMA_VERSION)
        if revision is None:
            if version != VERSION_OF[BASELINE]:
                raise StoreError(f"the store has schema version {version} and no revision: cannot upgrade it")
            _alembic("stamp", conn, BASELINE)
            revision = BASELINE
        found = VERSION_OF[revision]
        if revision != HEAD:
            log.warning("upgrading the store from schema version %d to %d", found, VERSION_OF[HEAD])
            _alembic("upgrade", conn, HEAD)
        return Prepared(found, VERSION_OF[HEAD])


def _revision(conn: sa.Connection) -> str | None:
    value = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
    return None if value is None else str(value)


def _alembic(command_name: str, conn: sa.Connection, revision: str) -> None:
    """Run an Alembic command on ``conn``, inside the caller's transaction."""
    from alembic import command

    getattr(command, command_name)(alembic_config(conn), revision)
