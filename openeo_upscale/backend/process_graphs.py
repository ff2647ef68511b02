"""The user-defined processes users store on the local backend (``/process_graphs``), by user and id.

They live in the ``process_graphs`` table of the state database. The routes read and write them
here, the validator and the jobs of real mode look them up here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa

from openeo_upscale.backend.state import process_graphs


class ProcessGraphStore:
    """Every user's stored processes, in one state database."""

    def __init__(self, engine: sa.Engine) -> None:
        self._db = engine

    def get(self, user: str, pid: str) -> dict[str, Any] | None:
        """The process `pid` of `user`, or None."""
        with self._db.connect() as conn:
            row = conn.execute(
                sa.select(process_graphs.c.process).where(
                    process_graphs.c.user == user, process_graphs.c.id == pid
                )
            ).first()
        return dict(row[0]) if row else None

    def stored(self, user: str) -> dict[str, dict[str, Any]]:
        """Every process the user stored, by id."""
        with self._db.connect() as conn:
            rows = conn.execute(
                sa.select(process_graphs.c.id, process_graphs.c.process).where(process_graphs.c.user == user)
            ).all()
        return {pid: dict(doc) for pid, doc in rows}

    def listing(self, user: str) -> list[dict[str, Any]]:
        """The user's processes by id, each without its ``process_graph`` (as ``GET /process_graphs``)."""
        with self._db.connect() as conn:
            rows = conn.execute(
                sa.select(process_graphs.c.process)
                .where(process_graphs.c.user == user)
                .order_by(process_graphs.c.id)
            ).all()
        return [{k: v for k, v in r[0].items() if k != "process_graph"} for r in rows]

    def put(self, user: str, pid: str, doc: Mapping[str, Any]) -> None:
        """Store `doc` as the process `pid` of `user`, replacing any earlier one."""
        with self._db.begin() as conn:
            conn.execute(
                sa.delete(process_graphs).where(process_graphs.c.user == user, process_graphs.c.id == pid)
            )
            conn.execute(sa.insert(process_graphs).values(user=user, id=pid, process=dict(doc)))

    def delete(self, user: str, pid: str) -> bool:
        """Remove the process `pid` of `user`; False when there was none."""
        with self._db.begin() as conn:
            done = conn.execute(
                sa.delete(process_graphs).where(process_graphs.c.user == user, process_graphs.c.id == pid)
            )
        return bool(done.rowcount)
