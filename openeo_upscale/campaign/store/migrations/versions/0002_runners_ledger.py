"""Schema version 2: unique campaign names, a ledger of backend jobs, runners and their leases.

- ``campaign.duplicate_of`` and a unique index on the names of the campaigns that are not marked:
  campaigns that share a name (two runs of the first release racing on a new store could make
  them) keep their rows, the later ones marked as duplicates of the oldest, until
  ``openeo-upscale store repair`` renames them;
- ``tasks.claimed_by``, ``tasks.claim_expires``: the runner that claimed a task, and until when
  it holds a download;
- the ``jobs`` ledger, filled from what the first release kept: every attempt a task's events
  record (the first release wrote "attempt N on backend B" when it recorded a client token), with
  the job id, status, usage and costs of the last attempt, which was all it stored;
- ``runners`` and ``backend_leases``.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
WHEN = sa.DateTime(timezone=True)
STATE = sa.String(16)
HOLDING = ("creating", "queued", "running")
"""Task states that hold a backend job."""
ATTEMPT = re.compile(r"^attempt (\d+) on backend (\S+)")
CHUNK = 5000


def upgrade() -> None:
    op.add_column("campaign", sa.Column("duplicate_of", ID))
    campaign = sa.table(
        "campaign",
        sa.column("id", ID),
        sa.column("name", sa.String()),
        sa.column("config", sa.JSON()),
        sa.column("duplicate_of", ID),
    )
    bind = op.get_bind()
    first: dict[str, int] = {}
    for campaign_id, name in bind.execute(sa.select(campaign.c.id, campaign.c.name).order_by(campaign.c.id)):
        if name in first:
            bind.execute(
                sa.update(campaign).where(campaign.c.id == campaign_id).values(duplicate_of=first[name])
            )
        else:
            first[name] = campaign_id
    op.create_index(
        "uq_campaign_name",
        "campaign",
        ["name"],
        unique=True,
        sqlite_where=sa.text("duplicate_of IS NULL"),
        postgresql_where=sa.text("duplicate_of IS NULL"),
    )

    op.add_column("tasks", sa.Column("claimed_by", ID))
    op.add_column("tasks", sa.Column("claim_expires", WHEN))

    jobs = op.create_table(
        "jobs",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("campaign_id", ID, sa.ForeignKey("campaign.id", ondelete="CASCADE"), nullable=False),
        sa.Column("task_id", ID, sa.ForeignKey("tasks.id", ondelete="CASCADE"), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("backend", sa.String(100), nullable=False),
        sa.Column("client_token", sa.String(200), nullable=False),
        sa.Column("job_id", sa.String(200)),
        sa.Column("runner_id", ID),
        sa.Column("requested", WHEN, nullable=False),
        sa.Column("created", WHEN),
        sa.Column("started", WHEN),
        sa.Column("finished", WHEN),
        sa.Column("status", STATE),
        sa.Column("costs", sa.Float()),
        sa.Column("usage", sa.JSON()),
        sa.Column("error", sa.Text()),
        sa.UniqueConstraint("client_token", name="uq_jobs_client_token"),
    )
    op.create_index("ix_jobs_task_id", "jobs", ["task_id"])
    op.create_index("ix_jobs_campaign_backend", "jobs", ["campaign_id", "backend"])
    op.create_table(
        "runners",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("campaign_id", ID, sa.ForeignKey("campaign.id", ondelete="CASCADE"), nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("version", sa.String(40), nullable=False),
        sa.Column("backends", sa.JSON(), nullable=False),
        sa.Column("started", WHEN, nullable=False),
        sa.Column("heartbeat", WHEN, nullable=False),
        sa.Column("stopped", WHEN),
        sa.Column("stop_reason", sa.Text()),
    )
    op.create_index("ix_runners_campaign_stopped", "runners", ["campaign_id", "stopped"])
    op.create_table(
        "backend_leases",
        sa.Column("campaign_id", ID, sa.ForeignKey("campaign.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("backend", sa.String(100), primary_key=True),
        sa.Column("runner_id", ID),
        sa.Column("expires", WHEN),
    )

    uids = {
        cid: (config or {}).get("uid")
        for cid, config in bind.execute(sa.select(campaign.c.id, campaign.c.config))
    }
    rows: list[dict[str, Any]] = []
    for row in _ledger_rows(bind, uids):
        rows.append(row)
        if len(rows) >= CHUNK:
            op.bulk_insert(jobs, rows)
            rows = []
    if rows:
        op.bulk_insert(jobs, rows)
    op.execute(sa.text("UPDATE schema_info SET version = 2"))


def _ledger_rows(bind: sa.Connection, uids: dict[int, Any]) -> Iterator[dict[str, Any]]:
    """One ledger row per attempt the first release's tasks and events record."""
    tasks = sa.table(
        "tasks",
        *(
            sa.column(name)
            for name in (
                "id",
                "campaign_id",
                "state",
                "job_status",
                "backend",
                "job_id",
                "client_token",
                "attempts",
                "error",
            )
        ),
        sa.column("started", WHEN),
        sa.column("usage", sa.JSON()),
        sa.column("costs", sa.Float()),
    )
    events = sa.table(
        "events",
        sa.column("id"),
        sa.column("task_id"),
        sa.column("at", WHEN),
        sa.column("from_state"),
        sa.column("to_state"),
        sa.column("job_status"),
        sa.column("reason"),
    )
    seen: set[str] = set()
    last = 0
    while True:
        chunk = (
            bind.execute(
                sa.select(tasks)
                .where(tasks.c.id > last, tasks.c.attempts > 0)
                .order_by(tasks.c.id)
                .limit(CHUNK)
            )
            .mappings()
            .all()
        )
        if not chunk:
            return
        last = chunk[-1]["id"]
        timeline: dict[int, list[Any]] = {}
        for event in bind.execute(
            sa.select(events).where(events.c.task_id.in_([t["id"] for t in chunk])).order_by(events.c.id)
        ).mappings():
            timeline.setdefault(event["task_id"], []).append(event)
        for task in chunk:
            for row in _attempts(task, timeline.get(task["id"], []), uids.get(task["campaign_id"])):
                if row["client_token"] not in seen:
                    seen.add(row["client_token"])
                    yield row


def _attempts(task: Any, events: list[Any], uid: Any) -> Iterator[dict[str, Any]]:
    starts = [i for i, e in enumerate(events) if e["from_state"] == "pending" and e["to_state"] == "creating"]
    for n, index in enumerate(starts):
        start = events[index]
        match = ATTEMPT.match(start["reason"] or "")
        attempt = int(match.group(1)) if match else n + 1
        backend = match.group(2) if match else task["backend"]
        current = attempt == task["attempts"]
        token = task["client_token"] if current else (f"ou-{uid}-{task['id']}-{attempt}" if uid else None)
        if not token or not (backend or task["backend"]):
            continue
        following = starts[n + 1] if n + 1 < len(starts) else len(events)
        end = next(
            (
                e
                for e in events[index + 1 : following]
                if e["from_state"] in HOLDING and e["to_state"] not in HOLDING
            ),
            None,
        )
        row = {
            "campaign_id": task["campaign_id"],
            "task_id": task["id"],
            "attempt": attempt,
            "backend": backend or task["backend"],
            "client_token": token,
            "job_id": None,
            "runner_id": None,
            "requested": start["at"],
            "created": None,
            "started": None,
            "finished": end["at"] if end is not None else None,
            "status": end["job_status"] if end is not None else None,
            "costs": None,
            "usage": None,
            "error": end["reason"] if end is not None and end["to_state"] != "finished" else None,
        }
        if current:
            row.update(
                job_id=task["job_id"],
                created=start["at"] if task["job_id"] else None,
                started=task["started"],
                status=task["job_status"],
                costs=task["costs"],
                usage=task["usage"],
            )
            if task["state"] in HOLDING:
                row.update(finished=None, error=None)
            elif task["error"] and task["job_status"] != "finished":
                row["error"] = task["error"]
        yield row


def downgrade() -> None:
    raise NotImplementedError("the store is not downgraded; keep a copy from before the upgrade")
