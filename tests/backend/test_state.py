"""The local backend's state database: a state folder of an earlier release still opens."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from openeo_upscale.backend.state import open_state


def test_a_state_database_without_the_newer_columns_gains_them(tmp_path: Path) -> None:
    engine = open_state(tmp_path)
    with engine.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE jobs DROP COLUMN job_options")
    engine.dispose()

    engine = open_state(tmp_path)
    with engine.connect() as conn:
        columns = {column["name"] for column in sa.inspect(conn).get_columns("jobs")}
    engine.dispose()
    assert "job_options" in columns
