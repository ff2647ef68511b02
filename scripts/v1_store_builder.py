"""Write a version-1 store with the release's own API; run by `make_v1_store.py`, with that release first
on the path (this file only uses names the release had).

The store holds what a user of that release may have on disk when they upgrade:

- campaign ``antwerp`` (the Antwerp 5 km grid, max_ndvi, backend ``local``) stopped mid-way: a task
  whose job failed once and waits for its retry, a task failed after its three attempts, a task the
  user canceled, a task left in ``creating`` by a crash before its ``POST /jobs`` (token recorded,
  no job), and the rest pending;
- two campaigns named ``dup``, as two runs racing on a new store made them (the release checked the
  name, then inserted, with no constraint).

Times come from a fixed clock, so only the campaigns' random uids differ between regenerations.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import shapely
from sqlalchemy.dialects import postgresql
from sqlalchemy.schema import CreateIndex, CreateTable

import openeo_upscale
from openeo_upscale.campaign import Campaign, JobStatus, Store, TaskState, Udp
from openeo_upscale.campaign import store as store_module
from openeo_upscale.grid import tiles

S = TaskState
MAX_NDVI_URL = (
    "https://raw.githubusercontent.com/ESA-APEx/apex_algorithms/refs/heads/main/"
    "openeo_udp/examples/max_ndvi/max_ndvi.json"
)
BBOX = (4.35, 51.10, 4.45, 51.20)
DEFAULTS = {"temporal_extent": ["2023-05-01", "2023-07-01"]}
OUTPUT_DIR = "/fixture/store-v1/results"
"""Deliberately nowhere: a test points the campaign at its own folder."""


def fixed_clock() -> Any:
    moments: Iterator[datetime] = (
        datetime(2026, 11, 20, 8, 0, tzinfo=UTC) + timedelta(seconds=s) for s in range(10**6)
    )
    return lambda: next(moments)


def job_failed(store: Store, task_id: int, attempt: int, uid: str, *, last: bool) -> None:
    """One attempt whose job errors on the backend, as the release's scheduler records it."""
    token = f"ou-{uid}-{task_id}-{attempt}"
    job_id = f"j-v1-{task_id:04d}-{attempt}"
    moves = [
        (
            S.PENDING,
            S.CREATING,
            f"attempt {attempt} on backend local",
            {
                "backend": "local",
                "client_token": token,
                "attempts": attempt,
                "job_id": None,
                "job_status": None,
                "started": None,
                "finished": None,
                "error": None,
            },
        ),
        (S.CREATING, S.CREATING, "job created", {"job_id": job_id, "job_status": JobStatus.CREATED}),
        (S.CREATING, S.QUEUED, "job started", {"job_status": JobStatus.QUEUED}),
        (
            S.QUEUED,
            S.RUNNING,
            "job running",
            {"job_status": JobStatus.RUNNING, "started": datetime(2026, 11, 20, 9, attempt, tzinfo=UTC)},
        ),
    ]
    detail = "the job failed on the backend: Node lost"
    target = S.FAILED if last else S.PENDING
    why = f"attempt {attempt} of 3: {detail}"
    moves.append((S.RUNNING, target, why, {"job_status": JobStatus.ERROR, "error": detail}))
    for source, goal, reason, fields in moves:
        assert store.transition(task_id, source, goal, actor="scheduler", reason=reason, **fields)


def dump_rows(path: Path) -> dict[str, Any]:
    """Every row of every table, datetimes as ISO text with their UTC offset, JSON as its text."""
    found: dict[str, Any] = {"order": [], "tables": {}}
    con = sqlite3.connect(path)
    try:
        for table in store_module.metadata.sorted_tables:
            times = {c.name for c in table.columns if isinstance(c.type, store_module._UTCDateTime)}
            names = [c.name for c in table.columns]
            rows = []
            for values in con.execute(f"SELECT {', '.join(names)} FROM {table.name} ORDER BY 1"):
                rows.append(
                    [
                        f"{v.replace(' ', 'T')}+00:00" if n in times and v is not None else v
                        for n, v in zip(names, values, strict=True)
                    ]
                )
            found["order"].append(table.name)
            found["tables"][table.name] = {"columns": names, "rows": rows}
    finally:
        con.close()
    return found


def postgresql_ddl() -> str:
    """The release's tables as it creates them on PostgreSQL."""
    dialect = postgresql.dialect()
    statements = []
    for table in store_module.metadata.sorted_tables:
        statements.append(str(CreateTable(table).compile(dialect=dialect)).strip())
        statements += [str(CreateIndex(index).compile(dialect=dialect)).strip() for index in table.indexes]
    return ";\n\n".join(statements) + ";\n"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--output", type=Path, required=True)
    parser.add_argument("--udp", type=Path, required=True)
    parser.add_argument("--package-root", type=Path, required=True)
    args = parser.parse_args()
    package = Path(openeo_upscale.__file__).resolve()
    assert package.is_relative_to(args.package_root.resolve()), f"not the release's code: {package}"
    assert store_module.SCHEMA_VERSION == 1, store_module.SCHEMA_VERSION

    shutil.rmtree(args.output, ignore_errors=True)
    args.output.mkdir(parents=True)
    path = args.output / "campaign.sqlite"
    udp = Udp.from_file(args.udp, namespace=MAX_NDVI_URL)
    grid = tiles(shapely.box(*BBOX), 5000)
    with Store.open(path, clock=fixed_clock()) as store:
        campaign = Campaign.create(store, grid, udp, name="antwerp", defaults=DEFAULTS, output_dir=OUTPUT_DIR)
        ids = [task.id for task in store.tasks_in(campaign.id, S.PENDING)]
        assert len(ids) >= 6, len(ids)
        retried, failed, canceled, crashed = ids[:4]
        job_failed(store, retried, 1, campaign.uid, last=False)
        for attempt in (1, 2, 3):
            job_failed(store, failed, attempt, campaign.uid, last=attempt == 3)
        assert store.transition(canceled, S.PENDING, S.CANCELED, actor="user", reason="campaign canceled")
        assert store.transition(
            crashed,
            S.PENDING,
            S.CREATING,
            actor="scheduler",
            reason="attempt 1 on backend local",
            backend="local",
            client_token=f"ou-{campaign.uid}-{crashed}-1",
            attempts=1,
        )

        first = Campaign.create(
            store, grid.head(2), udp, name="dup", defaults=DEFAULTS, output_dir=OUTPUT_DIR
        )
        # The second of two racing runs: it checked the name before the first inserted, so it
        # inserts its own campaign of the same name (what Campaign.create then does by itself).
        config = {**first.config, "uid": "0123456789ab"}
        rows = [
            {
                "tile_id": t.tile_id,
                "epsg": t.epsg,
                "west": t.west,
                "south": t.south,
                "east": t.east,
                "north": t.north,
                "geometry": t.geometry,
                "parameters": t.parameters,
            }
            for t in store.all_tasks(first.id)
        ]
        store.create_campaign(
            "dup", config=config, udp=first.udp.definition if first.udp else None, tasks=rows
        )
        assert [c["name"] for c in store.campaigns()] == ["antwerp", "dup", "dup"]

    (args.output / "rows.json").write_text(json.dumps(dump_rows(path), indent=1) + "\n")
    (args.output / "postgresql.sql").write_text(postgresql_ddl())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
