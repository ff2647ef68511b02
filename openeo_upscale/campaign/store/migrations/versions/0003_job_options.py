"""Schema version 3: ``tasks.job_options``, the backend job options a tile asks for (a JSON object).

They are sent with ``POST /jobs`` over the campaign's and the backend's own options. Tasks of an
older store have none.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("tasks", sa.Column("job_options", sa.JSON(none_as_null=True)))
    op.execute(sa.text("UPDATE schema_info SET version = 3"))


def downgrade() -> None:
    raise NotImplementedError("the store is not downgraded; keep a copy from before the upgrade")
