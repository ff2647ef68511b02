"""Our campaign engine against the `openeo` client's `MultiBackendJobManager` on one workload.

Each run gives both engines the same simulated workload, one after the other (the order
alternates between runs), each on two fresh local backends:

- `--jobs` `max_ndvi` tiles of 5 km (`openeo_upscale.grid.tiles` over Belgium), with
  ``temporal_extent`` 2023-05-01..2023-07-01 as a default;
- backend ``a`` with ``parallel_jobs=3`` and backend ``b`` with ``parallel_jobs=2`` (the backends
  themselves have more run slots than that, so the engines' own limits are what binds);
- simulated jobs whose run time is spread uniformly over about 3-15 s of wall time (a seeded
  jitter of +-2/3 around 9 s; the seed is the job id, so each job draws its own).

The backends run in threads of this process. Each engine runs in its own subprocess, so its
CPU time and peak memory are the orchestrator's alone. HTTP requests are counted at the
servers, by route, for both engines alike: the backend's ASGI app is wrapped with a counter
when it is built (`count_requests`). Job times come from the backends' own records.

Per engine, as the median over `--runs` runs: makespan; the lower bound
``max(sum of job run times / slots, longest job)``; makespan / lower bound; requests per job
(with and without asset downloads); CPU seconds and peak RSS of the orchestrating process.

    .venv/bin/python benchmarks/campaign_vs_anchor.py --runs 3
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SHARED_UDP = ROOT.parent / "shared" / "udp"
RESULTS = ROOT / "benchmarks" / "results" / "campaign_vs_anchor.json"
MAX_NDVI_URL = ("https://raw.githubusercontent.com/ESA-APEx/apex_algorithms/refs/heads/main/"
                "openeo_udp/examples/max_ndvi/max_ndvi.json")
TEMPORAL_EXTENT = ["2023-05-01", "2023-07-01"]
AOI = (3.0, 50.5, 6.0, 51.8)
"""lon/lat box cut into 5 km tiles; the first `--jobs` of them are the workload."""
BACKENDS = {"a": 3, "b": 2}
"""parallel_jobs per backend, the same for both engines."""
RUN_SLOTS = 6
"""Run slots of each local backend: more than parallel_jobs, so the engines' limits bind."""
ENGINES = ("ours", "anchor")


# ----- the workload -------------------------------------------------------------------------

def workload_tiles(n: int) -> Any:
    import shapely

    from openeo_upscale.grid import tiles

    found = tiles(shapely.box(*AOI), 5000)
    if len(found) < n:
        raise SystemExit(f"the AOI has only {len(found)} tiles, fewer than --jobs {n}")
    return found.head(n).reset_index(drop=True)


def simulation(args: argparse.Namespace) -> Any:
    """Run time = base * (1 +- jitter) * time_scale wall seconds; area and months do not count."""
    from openeo_upscale.backend import Simulation

    return Simulation(time_scale=args.time_scale, base_seconds=60.0, seconds_per_km2=0.0,
                      seconds_per_month=0.0, jitter=args.jitter, queue_seconds=1.0)


# ----- counting requests at the server ------------------------------------------------------

class RequestCounter:
    """An ASGI wrapper counting HTTP requests by route template (``GET /jobs/{job_id}``)."""

    def __init__(self, app: Any) -> None:
        from openeo_upscale.backend.faults import route_key

        self.app = app
        self.counts: Counter[str] = Counter()
        self._key = route_key
        self._lock = threading.Lock()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            from openeo_upscale.backend import API_PREFIX

            key = self._key(scope["method"], scope["path"], API_PREFIX)
            with self._lock:
                self.counts[key] += 1
        await self.app(scope, receive, send)


def count_requests() -> list[RequestCounter]:
    """Wrap every backend app built from now on with a `RequestCounter`; returns them in order.

    `LocalBackend.start` builds its app through `server.create_app`, and the app it gets back
    (`BackendApp`) passes each request to its inner `.app`: the counter goes in between, so
    every request is counted whatever client sent it (and nothing in the package changes).
    """
    from openeo_upscale.backend import server

    counters: list[RequestCounter] = []
    real = server.create_app

    def counted(config: Any) -> Any:
        app = real(config)
        counter = RequestCounter(app.app)
        app.app = counter
        counters.append(counter)
        return app

    server.create_app = counted  # type: ignore[assignment]
    return counters


def job_records(state_dir: Path) -> list[dict[str, Any]]:
    """Every job a backend holds, from its state database (times are its own clock)."""
    con = sqlite3.connect(state_dir / "backend.sqlite")
    try:
        con.row_factory = sqlite3.Row
        return [dict(r) for r in con.execute(
            "SELECT id, title, status, created, queued_at, started_at, finished_at, duration FROM jobs")]
    finally:
        con.close()


# ----- the engines, each in its own subprocess ---------------------------------------------

def offline_max_ndvi_definition() -> None:
    """`ProcessBasedJobCreator` downloads the remote definition of `max_ndvi` to learn its
    parameters; the benchmark stays on loopback, so that download reads the reference copy in
    shared/udp instead (the same trick as tests/backend/test_job_manager.py). The namespace
    sent to the backends is still `MAX_NDVI_URL`."""
    from openeo.extra.job_management import process_based
    from openeo.internal.processes.parse import Process

    real = process_based.parse_remote_process_definition

    def from_shared(namespace: str, process_id: str | None = None) -> Process:
        if namespace != MAX_NDVI_URL:
            return real(namespace=namespace, process_id=process_id)
        doc = json.loads((SHARED_UDP / "max_ndvi.json").read_text())
        return Process.from_dict(doc)

    process_based.parse_remote_process_definition = from_shared  # type: ignore[assignment]


def run_ours(spec: dict[str, Any], tiles: Any, work: Path) -> dict[str, Any]:
    import openeo

    from openeo_upscale.campaign import Campaign, Polling

    campaign = Campaign.create(
        work / "campaign.sqlite", tiles, SHARED_UDP / "max_ndvi.json", namespace=MAX_NDVI_URL,
        defaults={"temporal_extent": TEMPORAL_EXTENT}, output_dir=work / "results",
        polling=Polling(min_interval=spec["min_interval"], max_interval=spec["max_interval"]))
    for name, url in spec["urls"].items():
        con = openeo.connect(url).authenticate_basic("demo", "demo")
        campaign.add_backend(name, con, parallel_jobs=spec["parallel"][name])
    cpu0, t0 = time.process_time(), time.perf_counter()
    summary = campaign.run()
    makespan, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    campaign.close()
    done = summary["counts"].get("done", 0)
    return {"makespan_s": makespan, "cpu_run_s": cpu, "done": done,
            "client_requests": {n: b.get("requests", 0) for n, b in summary["backends"].items()},
            "counts": summary["counts"]}


def run_anchor(spec: dict[str, Any], tiles: Any, work: Path) -> dict[str, Any]:
    import logging

    import openeo
    import pandas as pd
    from openeo.extra.job_management import (
        CsvJobDatabase,
        MultiBackendJobManager,
        ProcessBasedJobCreator,
        create_job_db,
    )

    logging.getLogger("openeo").setLevel(logging.WARNING)
    offline_max_ndvi_definition()
    # The same parameters our engine sends: the tile's UTM bbox with its EPSG code.
    df = pd.DataFrame({
        "title": [f"max_ndvi {t}" for t in tiles["tile_id"]],
        "bbox": [{"west": int(r.west), "south": int(r.south), "east": int(r.east),
                  "north": int(r.north), "crs": int(r.epsg)} for r in tiles.itertuples()],
    })
    job_db = create_job_db(work / "jobs.csv", df=df)
    creator = ProcessBasedJobCreator(namespace=MAX_NDVI_URL, process_id="max_ndvi",
                                     parameter_defaults={"temporal_extent": TEMPORAL_EXTENT})
    manager = MultiBackendJobManager(poll_sleep=spec["poll_sleep"], root_dir=work / "jobs")
    requests_seen: Counter[str] = Counter()
    for name, url in spec["urls"].items():
        con = openeo.connect(url).authenticate_basic("demo", "demo")
        con.session.hooks["response"].append(
            lambda resp, *a, _n=name, **k: requests_seen.update([_n]))
        manager.add_backend(name, connection=con, parallel_jobs=spec["parallel"][name])
    cpu0, t0 = time.process_time(), time.perf_counter()
    stats = manager.run_jobs(start_job=creator, job_db=job_db)
    makespan, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    final = CsvJobDatabase(work / "jobs.csv").read()
    return {"makespan_s": makespan, "cpu_run_s": cpu,
            "done": int((final["status"] == "finished").sum()),
            "client_requests": dict(requests_seen), "counts": final["status"].value_counts().to_dict(),
            "stats": {k: int(v) for k, v in stats.items()}}


def worker(spec_path: Path) -> int:
    """Entry point of the subprocess: run one engine, print one JSON line."""
    spec = json.loads(spec_path.read_text())
    import geopandas as gpd

    tiles = gpd.read_parquet(spec["tiles"])
    work = Path(spec["work"])
    result = (run_ours if spec["engine"] == "ours" else run_anchor)(spec, tiles, work)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    result["cpu_total_s"] = usage.ru_utime + usage.ru_stime
    result["peak_rss_mb"] = usage.ru_maxrss / 1024
    print("RESULT " + json.dumps(result, default=str), flush=True)
    return 0


# ----- one measurement ----------------------------------------------------------------------

def measure(engine: str, args: argparse.Namespace, tiles_path: Path, counters: list[RequestCounter],
            tmp: Path) -> dict[str, Any]:
    from openeo_upscale.backend import BackendConfig, LocalBackend

    work = tmp / engine
    work.mkdir()
    backends: dict[str, LocalBackend] = {}
    first = len(counters)
    try:
        for name in BACKENDS:
            config = BackendConfig(state_dir=tmp / f"{engine}-backend-{name}", udp_dirs=(SHARED_UDP,),
                                   simulation=simulation(args), run_slots=RUN_SLOTS)
            backends[name] = LocalBackend(config).start()
        mine = dict(zip(BACKENDS, counters[first:], strict=True))
        spec = {"engine": engine, "tiles": str(tiles_path), "work": str(work),
                "urls": {n: b.url for n, b in backends.items()}, "parallel": BACKENDS,
                "poll_sleep": args.poll_sleep, "min_interval": args.min_interval,
                "max_interval": args.max_interval}
        spec_path = work / "spec.json"
        spec_path.write_text(json.dumps(spec))
        proc = subprocess.run([sys.executable, __file__, "--worker", str(spec_path)],
                              capture_output=True, text=True, cwd=ROOT, timeout=args.timeout)
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
        if proc.returncode != 0 or not lines:
            raise RuntimeError(f"{engine} worker failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
        result: dict[str, Any] = json.loads(lines[-1][len("RESULT "):])
        records = {n: job_records(b.config.state_dir) for n, b in backends.items()}
    finally:
        for b in backends.values():
            b.stop()

    jobs = [j for rows in records.values() for j in rows]
    finished = [j for j in jobs if j["status"] == "finished"]
    run_times = [j["duration"] for j in finished]
    slots = sum(BACKENDS.values())
    lower = max(sum(run_times) / slots, max(run_times, default=0.0))
    # Queue time is the backend's, not the engine's; reported, not part of the bound.
    queue = [j["started_at"] - j["queued_at"] for j in finished]
    per_route: Counter[str] = Counter()
    for counter in mine.values():
        per_route.update(counter.counts)
    total = sum(per_route.values())
    assets = sum(n for route, n in per_route.items() if route.endswith("/results/assets/{name}"))
    n_jobs = max(1, len(finished))
    result.update({
        "engine": engine,
        "backend_jobs": len(jobs),
        "finished_jobs": len(finished),
        "jobs_per_backend": {n: len(rows) for n, rows in records.items()},
        "job_seconds_total": round(sum(run_times), 3),
        "job_seconds_min": round(min(run_times, default=0.0), 3),
        "job_seconds_max": round(max(run_times, default=0.0), 3),
        "queue_seconds_median": round(statistics.median(queue), 3) if queue else None,
        "lower_bound_s": round(lower, 3),
        "makespan_s": round(result["makespan_s"], 3),
        "makespan_over_bound": round(result["makespan_s"] / lower, 4) if lower else None,
        "requests": total,
        "requests_per_job": round(total / n_jobs, 3),
        "asset_requests": assets,
        "requests_per_job_without_assets": round((total - assets) / n_jobs, 3),
        "requests_by_route": dict(per_route.most_common()),
        "cpu_run_s": round(result["cpu_run_s"], 3),
        "cpu_total_s": round(result["cpu_total_s"], 3),
        "peak_rss_mb": round(result["peak_rss_mb"], 1),
    })
    if len(finished) != args.jobs or result["done"] != args.jobs:
        print(f"  warning: {engine}: {len(finished)} jobs finished on the backends, "
              f"{result['done']} tasks done, {len(jobs)} jobs created", flush=True)
    return result


FIELDS = ("makespan_s", "lower_bound_s", "makespan_over_bound", "requests_per_job",
          "requests_per_job_without_assets", "cpu_run_s", "cpu_total_s", "peak_rss_mb")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--jobs", type=int, default=100, help="tiles, one job each (100)")
    parser.add_argument("--runs", type=int, default=3, help="runs of both engines (3)")
    parser.add_argument("--time-scale", type=float, default=0.15,
                        help="wall seconds per simulated second; jobs take 60 simulated s "
                             "+- jitter (0.15: 9 s)")
    parser.add_argument("--jitter", type=float, default=2 / 3,
                        help="relative spread of job run times (2/3: 3-15 s at the default scale)")
    parser.add_argument("--poll-sleep", type=float, default=5, help="anchor's poll_sleep (5)")
    parser.add_argument("--min-interval", type=float, default=0.5, help="our Polling.min_interval")
    parser.add_argument("--max-interval", type=float, default=30.0, help="our Polling.max_interval")
    parser.add_argument("--engines", nargs="+", choices=ENGINES, default=list(ENGINES))
    parser.add_argument("--timeout", type=float, default=900, help="seconds per engine run (900)")
    parser.add_argument("--output", type=Path, default=RESULTS, help=f"JSON file ({RESULTS})")
    parser.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return worker(args.worker)

    import openeo

    counters = count_requests()
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-campaign-") as tmp_root:
        tiles_path = Path(tmp_root) / "tiles.parquet"
        workload_tiles(args.jobs).to_parquet(tiles_path)
        for n in range(args.runs):
            order = list(args.engines) if n % 2 == 0 else list(reversed(args.engines))
            for engine in order:
                tmp = Path(tmp_root) / f"run{n + 1}"
                tmp.mkdir(exist_ok=True)
                result = measure(engine, args, tiles_path, counters, tmp)
                result["run"] = n + 1
                runs.append(result)
                print(f"run {n + 1}/{args.runs} {engine:>6}: makespan {result['makespan_s']:.1f} s, "
                      f"bound {result['lower_bound_s']:.1f} s "
                      f"(x{result['makespan_over_bound']:.3f}), "
                      f"{result['requests_per_job']:.2f} req/job, cpu {result['cpu_run_s']:.2f} s, "
                      f"rss {result['peak_rss_mb']:.0f} MB", flush=True)

    median = {engine: {f: round(statistics.median(r[f] for r in runs if r["engine"] == engine), 4)
                       for f in FIELDS}
              for engine in args.engines}
    print()
    print(f"{args.jobs} jobs, backends {BACKENDS} (parallel_jobs), {args.runs} runs, medians")
    header = f"{'engine':>7} | {'makespan':>8} | {'bound':>6} | {'ratio':>6} | {'req/job':>7} | " \
             f"{'w/o assets':>10} | {'cpu s':>6} | {'rss MB':>6}"
    print(header)
    print("-" * len(header))
    for engine, m in median.items():
        print(f"{engine:>7} | {m['makespan_s']:>8.1f} | {m['lower_bound_s']:>6.1f} | "
              f"{m['makespan_over_bound']:>6.3f} | {m['requests_per_job']:>7.2f} | "
              f"{m['requests_per_job_without_assets']:>10.2f} | {m['cpu_run_s']:>6.2f} | "
              f"{m['peak_rss_mb']:>6.0f}")
    goals: dict[str, Any] = {}
    if "ours" in median:
        ours = median["ours"]
        goals = {
            "makespan_within_1.10_bound": ours["makespan_over_bound"] <= 1.10,
            "requests_per_job_at_most_5_plus_assets": ours["requests_per_job_without_assets"] <= 5,
        }
        if "anchor" in median:
            goals["makespan_below_anchor"] = ours["makespan_s"] < median["anchor"]["makespan_s"]
            goals["makespan_anchor_over_ours"] = round(
                median["anchor"]["makespan_s"] / ours["makespan_s"], 3)
        print(f"\ngoals: {goals}")

    report = {
        "benchmark": "campaign_vs_anchor",
        "settings": {"jobs": args.jobs, "runs": args.runs, "backends_parallel_jobs": BACKENDS,
                     "run_slots_per_backend": RUN_SLOTS, "time_scale": args.time_scale,
                     "jitter": round(args.jitter, 4), "base_seconds": 60.0,
                     "job_wall_seconds_range": [round(60 * args.time_scale * (1 - args.jitter), 2),
                                                round(60 * args.time_scale * (1 + args.jitter), 2)],
                     "anchor_poll_sleep": args.poll_sleep,
                     "ours_polling": {"min_interval": args.min_interval,
                                      "max_interval": args.max_interval},
                     "udp": "max_ndvi (shared/udp, namespace " + MAX_NDVI_URL + ")",
                     "aoi": AOI, "tile_size_m": 5000},
        "median": median,
        "goals": goals,
        "runs": runs,
        "environment": {"python": platform.python_version(), "platform": platform.platform(),
                        "cpus": os.cpu_count(), "openeo": openeo.client_version(),
                        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")},
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(f"\nwritten to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
