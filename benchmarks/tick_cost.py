"""Cost of one scheduling tick against the size of the campaign, next to the anchor's per-loop persist.

For each size in `--sizes` (1k, 10k, 100k tasks by default) a fresh SQLite store gets a campaign
of that many `max_ndvi` tasks (UTM bbox, temporal extent and a lon/lat polygon each, as
`Campaign.create` writes them) and a `Scheduler` with one backend of ``parallel_jobs=5``. The
backend is a stub `BackendClient` answering from memory: this benchmark measures the store side
of a tick (the queries and transactions it makes), not HTTP, which `campaign_vs_anchor.py`
covers. After warm-up ticks that fill the 5 slots, two kinds of tick are timed, `--ticks` each:

- **steady**: 5 jobs running, nothing changes (one listing, the queries, no write);
- **turnover**: before each tick one running job is marked finished in the stub, so the tick
  records the finish and launches a pending task in its place (create and start: four
  transitions, each with its event).

The anchor, `openeo.extra.job_management`, keeps its job database in a pandas frame and writes
the whole file on every `persist()`; each loop of `MultiBackendJobManager.run_jobs` persists at
least once (the active rows after tracking their status). Timed at the same sizes, on a frame
normalized by the manager (`_normalize_df`) with 5 rows running:

- **persist**: `CsvJobDatabase.persist(active rows)` (and `ParquetJobDatabase` when pyarrow is
  installed);
- **loop**: the job database work of one loop besides the HTTP: `count_by_status` (the loop's
  exit test), `get_by_status` for active and not-started rows, and that `persist`.

Medians over the ticks are reported in milliseconds. A table goes to stdout and JSON to
`benchmarks/results/tick_cost.json`.

    .venv/bin/python benchmarks/tick_cost.py --sizes 1000 10000 100000 --ticks 20
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
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import openeo
import pandas as pd

from openeo_upscale.campaign.scheduler import BackendSlot, Scheduler
from openeo_upscale.campaign.settings import BackendSettings
from openeo_upscale.campaign.store import Store

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "tick_cost.json"
MAX_NDVI_URL = ("https://raw.githubusercontent.com/ESA-APEx/apex_algorithms/refs/heads/main/"
                "openeo_udp/examples/max_ndvi/max_ndvi.json")
TEMPORAL_EXTENT = ["2023-05-01", "2023-07-01"]
ACTIVE_JOBS = 5


class StubBackend:
    """The calls `Scheduler` makes to a `BackendClient`, answered from a dict of jobs.

    Lists newest first with everything the local backend lists (costs and usage once
    finished), on one page; no network, so a tick's time is the scheduler's and the store's.
    """

    def __init__(self, name: str = "stub") -> None:
        self.name = name
        self.requests = 0
        self.jobs: dict[str, dict[str, Any]] = {}
        self._seq = 0

    def list_jobs(self, enough: Callable[[list[dict[str, Any]]], bool] | None = None
                  ) -> Iterator[dict[str, Any]]:
        self.requests += 1
        yield from reversed([dict(j) for j in self.jobs.values()])

    def create_job(self, process: Any, *, title: str, description: str,
                   job_options: Any = None, task_id: int | None = None) -> str:
        self.requests += 1
        self._seq += 1
        job_id = f"j-{self._seq:08d}"
        self.jobs[job_id] = {"id": job_id, "title": title, "description": description,
                             "status": "created", "created": "2026-01-01T00:00:00Z"}
        return job_id

    def start_job(self, job_id: str, *, task_id: int | None = None) -> None:
        self.requests += 1
        self.jobs[job_id]["status"] = "running"

    def job(self, job_id: str, *, task_id: int | None = None) -> dict[str, Any]:
        self.requests += 1
        return dict(self.jobs[job_id])

    def error_logs(self, job_id: str, *, task_id: int | None = None, limit: int = 20) -> list[str]:
        return []

    def cancel_job(self, job_id: str, *, task_id: int | None = None) -> None:
        self.jobs[job_id]["status"] = "canceled"

    def me(self) -> dict[str, Any]:
        return {}

    def connect(self) -> None:
        return None

    def validate(self, process: Any) -> list[str] | None:
        self.requests += 1
        return []

    def finish_oldest(self) -> None:
        """Mark the oldest running job finished, as the next listing will show it."""
        for job in self.jobs.values():
            if job["status"] == "running":
                job.update(status="finished", costs=0.51,
                           usage={"duration": {"value": 9.0, "unit": "seconds"}})
                return


def task_rows(n: int) -> Iterator[dict[str, Any]]:
    """Task rows like `Campaign.create` writes for 5 km UTM tiles (zone 31N)."""
    for i in range(n):
        col, row = i % 400, i // 400
        west, south = 400000 + col * 5000, 5000000 + row * 5000
        bbox = {"west": west, "south": south, "east": west + 5000, "north": south + 5000,
                "crs": 32631}
        lon, lat = 0.5 + col * 0.07, 45.0 + row * 0.045
        wkt = (f"POLYGON (({lon} {lat}, {lon + 0.07} {lat}, {lon + 0.07} {lat + 0.045}, "
               f"{lon} {lat + 0.045}, {lon} {lat}))")
        yield {"tile_id": f"32631_{west}_{south}_5000", "epsg": 32631, "west": west, "south": south,
               "east": west + 5000, "north": south + 5000, "geometry": wkt,
               "parameters": {"bbox": bbox, "temporal_extent": TEMPORAL_EXTENT}}


def job_spec(task: Any, token: str) -> tuple[dict[str, Any], str, str]:
    node = {"process_id": "max_ndvi", "namespace": MAX_NDVI_URL, "arguments": task.parameters,
            "result": True}
    return {"process_graph": {"run": node}}, f"bench {task.tile_id} [{token}]", f"bench [{token}]"


def timed(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return 1000 * (time.perf_counter() - t0)


def ours(n: int, ticks: int, tmp: Path) -> dict[str, Any]:
    t0 = time.perf_counter()
    store = Store.open(tmp / f"campaign-{n}.sqlite")
    campaign_id = store.create_campaign("bench", config={"uid": "bench"})
    store.add_tasks(campaign_id, task_rows(n))
    setup = time.perf_counter() - t0
    stub = StubBackend()
    scheduler = Scheduler(store, campaign_id, "0123456789ab",
                          [BackendSlot(BackendSettings("stub", parallel_jobs=ACTIVE_JOBS), stub)],  # type: ignore[arg-type]
                          job_spec)
    for _ in range(3):  # fill the slots: create, start, then queued -> running
        scheduler.tick()
    active = len([j for j in stub.jobs.values() if j["status"] == "running"])
    steady = [timed(scheduler.tick) for _ in range(ticks)]
    turnover = []
    for _ in range(ticks):
        stub.finish_oldest()
        turnover.append(timed(scheduler.tick))
    counts = store.counts(campaign_id)
    size = sum(p.stat().st_size for p in tmp.glob(f"campaign-{n}.sqlite*"))
    store.close()
    return {"setup_s": round(setup, 2), "active_jobs": active,
            "steady_tick_ms": round(statistics.median(steady), 3),
            "steady_tick_p90_ms": round(sorted(steady)[int(0.9 * (len(steady) - 1))], 3),
            "turnover_tick_ms": round(statistics.median(turnover), 3),
            "turnover_tick_p90_ms": round(sorted(turnover)[int(0.9 * (len(turnover) - 1))], 3),
            "finished_in_turnover": counts.get("finished", 0),  # type: ignore[call-overload]
            "store_mb": round(size / 1e6, 1)}


def anchor_frame(n: int) -> pd.DataFrame:
    from openeo.extra.job_management import MultiBackendJobManager

    df = pd.DataFrame({"title": [f"max_ndvi {r['tile_id']}" for r in task_rows(n)],
                       "bbox": [r["parameters"]["bbox"] for r in task_rows(n)]})
    df = MultiBackendJobManager._normalize_df(df)
    active = df.index[:ACTIVE_JOBS]
    df.loc[active, "status"] = "running"
    df.loc[active, "id"] = [f"j-{i:08d}" for i in range(ACTIVE_JOBS)]
    df.loc[active, "backend_name"] = "local"
    return df


def anchor(kind: str, n: int, ticks: int, tmp: Path) -> dict[str, Any] | None:
    from openeo.extra.job_management import CsvJobDatabase, ParquetJobDatabase

    if kind == "parquet":
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            return None
    path = tmp / f"jobs-{n}.{kind}"
    db = (CsvJobDatabase if kind == "csv" else ParquetJobDatabase)(path)
    db.initialize_from_df(anchor_frame(n))
    active_statuses = ["created", "queued", "queued_for_start", "running"]

    def persist() -> None:
        db.persist(db.get_by_status(statuses=active_statuses).copy())

    def loop() -> None:
        db.count_by_status(statuses=["not_started", *active_statuses])
        active = db.get_by_status(statuses=active_statuses).copy()
        db.get_by_status(statuses=["not_started"], max=200)
        db.persist(active)

    persist()  # warm-up
    persists = [timed(persist) for _ in range(ticks)]
    loops = [timed(loop) for _ in range(ticks)]
    return {"persist_ms": round(statistics.median(persists), 3),
            "loop_ms": round(statistics.median(loops), 3),
            "file_mb": round(path.stat().st_size / 1e6, 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 100000],
                        help="tasks in the store (1000 10000 100000)")
    parser.add_argument("--ticks", type=int, default=20, help="timed ticks per kind and size (20)")
    parser.add_argument("--output", type=Path, default=RESULTS, help=f"JSON file ({RESULTS})")
    args = parser.parse_args(argv)

    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-tick-") as tmp:
        for n in args.sizes:
            row: dict[str, Any] = {"tasks": n, "ours": ours(n, args.ticks, Path(tmp)),
                                   "anchor_csv": anchor("csv", n, args.ticks, Path(tmp)),
                                   "anchor_parquet": anchor("parquet", n, args.ticks, Path(tmp))}
            rows.append(row)
            o, c, p = row["ours"], row["anchor_csv"], row["anchor_parquet"]
            print(f"{n:>7} tasks: tick steady {o['steady_tick_ms']:.2f} ms, turnover "
                  f"{o['turnover_tick_ms']:.2f} ms; csv persist {c['persist_ms']:.1f} ms"
                  + (f", parquet persist {p['persist_ms']:.1f} ms" if p else ""), flush=True)

    print()
    header = f"{'tasks':>7} | {'steady ms':>9} | {'turnover ms':>11} | {'csv persist':>11} | " \
             f"{'csv loop':>8} | {'pq persist':>10} | {'pq loop':>7}"
    print(header)
    print("-" * len(header))
    for row in rows:
        o, c, p = row["ours"], row["anchor_csv"], row["anchor_parquet"] or {}
        print(f"{row['tasks']:>7} | {o['steady_tick_ms']:>9.2f} | {o['turnover_tick_ms']:>11.2f} | "
              f"{c['persist_ms']:>11.1f} | {c['loop_ms']:>8.1f} | "
              f"{p.get('persist_ms', float('nan')):>10.1f} | {p.get('loop_ms', float('nan')):>7.1f}")
    first, last = rows[0]["ours"], rows[-1]["ours"]
    growth = {"tasks_ratio": rows[-1]["tasks"] / rows[0]["tasks"],
              "steady_tick_ratio": round(last["steady_tick_ms"] / first["steady_tick_ms"], 3),
              "turnover_tick_ratio": round(last["turnover_tick_ms"] / first["turnover_tick_ms"], 3),
              "anchor_csv_persist_ratio": round(rows[-1]["anchor_csv"]["persist_ms"]
                                                / rows[0]["anchor_csv"]["persist_ms"], 3)}
    print(f"\nlargest / smallest size: {growth}")

    report = {
        "benchmark": "tick_cost",
        "settings": {"sizes": args.sizes, "ticks": args.ticks, "active_jobs": ACTIVE_JOBS,
                     "store": "SQLite file (WAL)", "backend": "stub BackendClient (in memory)"},
        "results": rows,
        "growth_largest_over_smallest": growth,
        "environment": {"python": platform.python_version(), "platform": platform.platform(),
                        "cpus": os.cpu_count(), "openeo": openeo.client_version(),
                        "pandas": pd.__version__, "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")},
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwritten to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
