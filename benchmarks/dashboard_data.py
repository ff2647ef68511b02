"""The dashboard's data endpoints over real HTTP at 100,000 tasks.

A fresh SQLite store gets one campaign of `--tasks` tiles (0.045° squares on a lon/lat grid, as
WKT) in a mid-run mix of states: 55 % done, 5 % failed (with an error text), 10 active on each
of two backends, a few finished/downloading, the rest pending. Each task that left pending has its
full chain of events (creating, queued, running, finished, downloading, done: 6 events for a done
task, 3 or 4 for a failed one; 3.6 per task on average at the defaults), spread over 48 hours and
written with plain inserts, as the store would have written them one transition at a time.

The dashboard app then runs under uvicorn on a free port of 127.0.0.1 in this process, and each
endpoint is requested `--requests` times over one keep-alive connection, accepting gzip as a
browser does (sizes are the bytes on the wire): ``/api/tiles?centres=true`` (what the page fetches
once above 3000 tiles; the first request builds it, later ones come from the app's cache, so both
are reported), ``/api/tiles`` (polygons, first request), ``/api/states`` (full snapshot and
the incremental ``?since=`` poll), ``/api/overview``. Median and max latency in milliseconds
and payload sizes go to stdout and to `benchmarks/results/dashboard_data.json`.
The page polls ``/api/states?since=`` and
``/api/overview`` every 2 s: those are the endpoints with the < 1 s goal.

    .venv/bin/python benchmarks/dashboard_data.py --tasks 100000 --requests 7
"""

from __future__ import annotations

import argparse
import http.client
import json
import platform
import socket
import statistics
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import uvicorn

from openeo_upscale.campaign.states import JobStatus, TaskState
from openeo_upscale.campaign.store import Store
from openeo_upscale.campaign.store.schema import events_table, tasks_table
from openeo_upscale.monitor.dashboard import create_app

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "dashboard_data.json"
S = TaskState
CHAIN = [S.PENDING, S.CREATING, S.QUEUED, S.RUNNING, S.FINISHED, S.DOWNLOADING, S.DONE]
BACKENDS = ("vito", "cdse")
HOURS = 48.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def build_store(path: Path, n: int) -> Store:
    """A store with one campaign of ``n`` tasks mid-run, with their events."""
    side = int(n ** 0.5) + 1
    rows = []
    for i in range(n):
        x, y = 3.0 + (i % side) * 0.045, 45.0 + (i // side) * 0.045
        rows.append({"tile_id": f"31U_{i:06d}", "epsg": 32631,
                     "geometry": f"POLYGON (({x:.6f} {y:.6f}, {x + 0.045:.6f} {y:.6f}, {x + 0.045:.6f} "
                                 f"{y + 0.045:.6f}, {x:.6f} {y + 0.045:.6f}, {x:.6f} {y:.6f}))",
                     "parameters": {"spatial_extent": {"west": x, "south": y}}})
    store = Store.open(path)
    cid = store.create_campaign("bench", config={"backends": [{"name": b, "parallel_jobs": 10}
                                                             for b in BACKENDS]}, tasks=rows)
    now = datetime.now(UTC)
    start = now - timedelta(hours=HOURS)
    done_n, failed_n = int(n * 0.55), int(n * 0.05)
    plan: list[tuple[TaskState, int]] = []  # (final state, chain position reached)
    plan += [(S.DONE, 6)] * done_n
    plan += [(S.FAILED, 2 + (i % 2)) for i in range(failed_n)]
    plan += [(S.RUNNING, 3)] * 10 + [(S.QUEUED, 2)] * 10 + [(S.FINISHED, 4)] * 3 + [(S.DOWNLOADING, 5)] * 2
    with store.engine.begin() as conn:
        ids = [row.id for row in conn.execute(sa.select(tasks_table.c.id).order_by(tasks_table.c.id))]
        updates, events = [], []
        step = HOURS * 3600 / max(len(plan), 1)
        for k, (final, reached) in enumerate(plan):
            task_id = ids[k]
            t0 = start + timedelta(seconds=k * step)
            at = t0
            backend = BACKENDS[k % 2]
            for j in range(reached):
                at = t0 + timedelta(seconds=60 * (j + 1))
                events.append({"task_id": task_id, "at": at, "actor": "scheduler", "from_state": CHAIN[j],
                               "to_state": CHAIN[j + 1], "job_status": None, "reason": None})
            if final is S.FAILED:
                at = at + timedelta(seconds=60)
                events.append({"task_id": task_id, "at": at, "actor": "scheduler",
                               "from_state": CHAIN[reached],
                               "to_state": S.FAILED, "job_status": JobStatus.ERROR,
                               "reason": "job error on the backend"})
            updates.append({"tid": task_id, "state": final, "backend": backend,
                            "job_id": f"j-{k:08d}-{backend}",
                            "attempts": 1, "started": t0 + timedelta(seconds=120),
                            "finished": None if final in (S.RUNNING, S.QUEUED) else at,
                            "costs": 1.5 if final is not S.QUEUED else None, "updated": at,
                            "error": "OOM in the UDF: Traceback ...\n" * 3 if final is S.FAILED else None})
        conn.execute(sa.update(tasks_table).where(tasks_table.c.id == sa.bindparam("tid")), updates)
        conn.execute(sa.insert(events_table), events)
    store.id_ = cid  # type: ignore[attr-defined]
    return store


def timed(conn: http.client.HTTPConnection, path: str, runs: int) -> dict[str, Any]:
    times, size = [], 0
    for _ in range(runs):
        t0 = time.perf_counter()
        conn.request("GET", path, headers={"Accept-Encoding": "gzip"})  # as a browser asks
        response = conn.getresponse()
        body = response.read()
        times.append((time.perf_counter() - t0) * 1000)
        assert response.status == 200, (path, response.status, body[:200])
        size = len(body)
    return {"median_ms": round(statistics.median(times), 1), "max_ms": round(max(times), 1),
            "bytes": size, "runs": runs}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        store = build_store(Path(tmp) / "store.sqlite", args.tasks)
        build_s = time.perf_counter() - t0
        n_events = store.count_events(store.id_)  # type: ignore[attr-defined]
        port = _free_port()
        config = uvicorn.Config(create_app(store), host="127.0.0.1", port=port, log_level="warning")
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        while not server.started:
            time.sleep(0.05)
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            first = timed(conn, "/api/tiles?centres=true", 1)
            conn.request("GET", "/api/states")
            cursor = json.loads(conn.getresponse().read())["cursor"]
            results = {
                "/api/tiles?centres=true (first)": first,
                "/api/tiles?centres=true (cached)": timed(conn, "/api/tiles?centres=true", args.requests),
                "/api/tiles (polygons, first)": timed(conn, "/api/tiles", 1),
                "/api/states (full)": timed(conn, "/api/states", args.requests),
                "/api/states?since= (poll)": timed(conn, f"/api/states?since={cursor}", args.requests),
                "/api/overview (poll)": timed(conn, "/api/overview", args.requests),
            }
            conn.close()
        finally:
            server.should_exit = True
            thread.join(timeout=10)
            store.close()
    print(f"{args.tasks} tasks, {n_events} events (store built in {build_s:.1f} s)")
    print(f"{'endpoint':42} {'median ms':>10} {'max ms':>8} {'KiB gz':>8}")
    for name, r in results.items():
        print(f"{name:42} {r['median_ms']:>10} {r['max_ms']:>8} {r['bytes'] / 1024:>8.0f}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({
        "tasks": args.tasks, "events": n_events, "requests": args.requests, "endpoints": results,
        "environment": {"python": sys.version.split()[0], "platform": platform.platform(),
                        "sqlalchemy": sa.__version__,
                        "processor": platform.processor() or platform.machine()},
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
    }, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
