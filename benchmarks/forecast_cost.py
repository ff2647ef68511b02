"""Cost of making a campaign's forecast (`forecast.of_campaign`) against the size of the campaign.

A running campaign makes one every minute, in the runner's thread, so this is time the scheduler
does not tick. For each size in `--sizes` (1k, 10k, 100k tasks by default) a fresh SQLite store
gets a campaign of that many `max_ndvi` tasks (the rows of `tick_cost.py`); half of them are
marked done with a ledger row each (costs, usage, timestamps written straight into the tables),
the rest stay pending. Timed, `--runs` times each:

- **first**: a forecast by a fresh `forecast.Gauge` (what a runner makes on its first minute):
  every task's size read and computed, every done task measured, the models fitted on bootstrap
  resamples, the schedule of the pending ones replayed over 12 slots;
- **next**: the same gauge again after 100 more tasks got done (what it makes every minute after):
  the states read, the 100 measured, the rest from what it kept.

Medians in milliseconds go to stdout and JSON to `benchmarks/results/forecast_cost.json`.

    .venv/bin/python benchmarks/forecast_cost.py --sizes 1000 10000 100000 --runs 3
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from tick_cost import task_rows  # noqa: E402 - the same rows as the tick benchmark

from openeo_upscale.campaign.forecast import Gauge  # noqa: E402
from openeo_upscale.campaign.store import Store  # noqa: E402
from openeo_upscale.campaign.store.schema import jobs_table, tasks_table  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "forecast_cost.json"
SLOTS = [6, 6]


def campaign(store: Store, n: int) -> int:
    """A campaign of ``n`` tasks, the first half done with a ledger row each."""
    campaign_id = store.create_campaign("forecast", config={"uid": "0123456789ab"}, tasks=task_rows(n))
    start = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    done = n // 2
    engine = store._engine  # a benchmark writes its fixture straight into the tables
    with engine.begin() as conn:
        ids = conn.execute(sa.select(tasks_table.c.id).where(tasks_table.c.campaign_id == campaign_id)
                           .order_by(tasks_table.c.id).limit(done)).scalars().all()
        rows = []
        for i, task_id in enumerate(ids):
            began = start + timedelta(seconds=i)
            rows.append({"campaign_id": campaign_id, "task_id": task_id, "attempt": 1, "backend": "one",
                         "client_token": f"ou-0123456789ab-{task_id}-1", "job_id": f"j{task_id}",
                         "requested": began, "created": began, "started": began + timedelta(seconds=2),
                         "finished": began + timedelta(seconds=60 + i % 7), "status": "finished",
                         "costs": 1.0 + (i % 5) / 10})
        for chunk in range(0, len(rows), 10_000):
            conn.execute(sa.insert(jobs_table), rows[chunk:chunk + 10_000])
        conn.execute(sa.update(tasks_table).where(tasks_table.c.id.in_(ids)).values(
            state="done", job_status="finished", backend="one", costs=1.2, attempts=1,
            started=start, finished=start + timedelta(seconds=60),
            usage={"cpu": {"value": 120, "unit": "cpu-seconds"},
                   "memory": {"value": 2000, "unit": "mb-seconds"}}))
    return campaign_id


def finish(store: Store, campaign_id: int, count: int) -> None:
    """Mark ``count`` more pending tasks done (with their ledger rows), as a minute of a run would."""
    engine = store._engine
    now = datetime(2026, 12, 1, 13, 0, tzinfo=UTC)
    with engine.begin() as conn:
        ids = conn.execute(sa.select(tasks_table.c.id).where(tasks_table.c.campaign_id == campaign_id,
                                                             tasks_table.c.state == "pending")
                           .order_by(tasks_table.c.id).limit(count)).scalars().all()
        conn.execute(sa.insert(jobs_table), [
            {"campaign_id": campaign_id, "task_id": i, "attempt": 1, "backend": "one",
             "client_token": f"ou-0123456789ab-{i}-1", "requested": now, "created": now,
             "started": now, "finished": now + timedelta(seconds=61), "status": "finished", "costs": 1.1}
            for i in ids])
        conn.execute(sa.update(tasks_table).where(tasks_table.c.id.in_(ids)).values(
            state="done", job_status="finished", backend="one", costs=1.1, attempts=1))


def measure(n: int, runs: int, tmp: Path) -> dict[str, Any]:
    first, following = [], []
    for run in range(runs):
        with Store.open(tmp / f"forecast-{n}-{run}.sqlite") as store:
            campaign_id = campaign(store, n)
            gauge = Gauge(store, campaign_id)
            began = time.perf_counter()
            found, measured = gauge.forecast(slots=SLOTS, basis="running")
            first.append((time.perf_counter() - began) * 1000)
            assert found is not None and len(measured) == n // 2 and found.remaining == n - n // 2
            finish(store, campaign_id, 100)
            began = time.perf_counter()
            found, measured = gauge.forecast(slots=SLOTS, basis="running")
            following.append((time.perf_counter() - began) * 1000)
            assert found is not None and len(measured) == n // 2 + 100
    return {"tasks": n, "first_ms": [round(t, 1) for t in first], "next_ms": [round(t, 1) for t in following],
            "first_median_ms": round(statistics.median(first), 1),
            "next_median_ms": round(statistics.median(following), 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 100000])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.sizes:
            results.append(measure(n, args.runs, Path(tmp)))
            found = results[-1]
            print(f"{n:>8,} tasks: first forecast {found['first_median_ms']:>9,.1f} ms, next "
                  f"{found['next_median_ms']:>8,.1f} ms (medians of {args.runs})", flush=True)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"results": results, "slots": SLOTS, "python": sys.version.split()[0],
                                   "platform": platform.platform(), "cpus": os.cpu_count()}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
