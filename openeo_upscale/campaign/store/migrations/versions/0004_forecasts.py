"""Schema version 4: ``forecasts``, each forecast of a campaign (the pilot's, then the running ones).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "forecasts",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("campaign_id", ID, sa.ForeignKey("campaign.id", ondelete="CASCADE"), nullable=False),
        sa.Column("made", sa.DateTime(timezone=True), nullable=False),
        sa.Column("basis", sa.String(16), nullable=False),
        sa.Column("forecast", sa.JSON(none_as_null=True), nullable=False),
    )
    op.create_index("ix_forecasts_campaign", "forecasts", ["campaign_id", "id"])
    op.execute(sa.text("UPDATE schema_info SET version = 4"))


def downgrade() -> None:
    raise NotImplementedError("the store is not downgraded; keep a copy from before the upgrade")
