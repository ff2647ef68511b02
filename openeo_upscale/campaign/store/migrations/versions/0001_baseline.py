"""Schema version 1: campaigns, tasks and their events, as the first release created them.

Stores of that release predate Alembic and are stamped at this revision, not built by it; it is
kept so that the migrations alone can build every version (a test upgrades it to the head and
compares the result with the tables the code creates).

Revision ID: 0001
Revises:
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
WHEN = sa.DateTime(timezone=True)
STATE = sa.String(16)


def upgrade() -> None:
    op.create_table(
        "campaign",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("created", WHEN, nullable=False),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column("udp", sa.JSON()),
    )
    op.create_table("schema_info", sa.Column("version", sa.Integer(), nullable=False))
    op.create_table(
        "tasks",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("campaign_id", ID, sa.ForeignKey("campaign.id", ondelete="CASCADE"), nullable=False),
        sa.Column("tile_id", sa.String(100), nullable=False),
        sa.Column("epsg", sa.Integer()),
        sa.Column("west", sa.Float()),
        sa.Column("south", sa.Float()),
        sa.Column("east", sa.Float()),
        sa.Column("north", sa.Float()),
        sa.Column("geometry", sa.Text()),
        sa.Column("parameters", sa.JSON(), nullable=False),
        sa.Column("state", STATE, nullable=False),
        sa.Column("job_status", STATE),
        sa.Column("backend", sa.String(100)),
        sa.Column("pinned_backend", sa.String(100)),
        sa.Column("job_id", sa.String(200)),
        sa.Column("client_token", sa.String(200)),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("attempt_floor", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("created", WHEN, nullable=False),
        sa.Column("updated", WHEN, nullable=False),
        sa.Column("started", WHEN),
        sa.Column("finished", WHEN),
        sa.Column("usage", sa.JSON()),
        sa.Column("costs", sa.Float()),
        sa.Column("error", sa.Text()),
        sa.Column("result_paths", sa.JSON()),
        sa.UniqueConstraint("campaign_id", "tile_id", name="uq_tasks_campaign_tile"),
    )
    op.create_index("ix_tasks_campaign_state", "tasks", ["campaign_id", "state"])
    op.create_table(
        "events",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("task_id", ID, sa.ForeignKey("tasks.id", ondelete="CASCADE"), nullable=False),
        sa.Column("at", WHEN, nullable=False),
        sa.Column("actor", sa.String(100), nullable=False),
        sa.Column("from_state", STATE, nullable=False),
        sa.Column("to_state", STATE, nullable=False),
        sa.Column("job_status", STATE),
        sa.Column("reason", sa.Text()),
    )
    op.create_index("ix_events_task_id", "events", ["task_id"])
    op.execute(sa.text("INSERT INTO schema_info (version) VALUES (1)"))


def downgrade() -> None:
    raise NotImplementedError("the store is not downgraded; keep a copy from before the upgrade")
