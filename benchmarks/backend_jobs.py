"""Throughput of the local backend's job endpoints over real HTTP: create, then list.

Each run starts a fresh `LocalBackend` (simulated mode, its own state folder) on a free
loopback port, logs in with HTTP basic and then, over one keep-alive `requests.Session` with the
bearer token:

1. creates `--jobs` batch jobs one after the other (`POST /jobs`, one `max_ndvi` tile each);
2. lists them all `--list-passes` times through `GET /jobs?limit=<page-size>`, following the
   `rel=next` links, and checks that every created job is listed exactly once.

Reported per run and as the median over `--runs` runs: create requests/s (and latency p50/p95),
list pages/s and listed jobs/s. A table goes to stdout and JSON to
`benchmarks/results/backend_jobs.json`.

    .venv/bin/python benchmarks/backend_jobs.py --jobs 1000 --runs 3
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
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import openeo
import requests

from openeo_upscale.backend import BackendConfig, LocalBackend, Simulation

ROOT = Path(__file__).resolve().parents[1]
SHARED_UDP = ROOT.parent / "shared" / "udp"
RESULTS = ROOT / "benchmarks" / "results" / "backend_jobs.json"
MAX_NDVI_URL = ("https://raw.githubusercontent.com/ESA-APEx/apex_algorithms/refs/heads/main/"
                "openeo_udp/examples/max_ndvi/max_ndvi.json")


@dataclass
class RunResult:
    jobs: int
    create_seconds: float
    create_per_s: float
    create_p50_ms: float
    create_p95_ms: float
    list_passes: int
    list_pages: int
    list_seconds: float
    list_pages_per_s: float
    list_jobs_per_s: float


def process_for(i: int, use_shared: bool) -> dict[str, Any]:
    """A one-node process graph for tile `i` of a 0.02 degree grid around Antwerp."""
    col, row = i % 50, i // 50
    bbox = {"west": round(4.0 + col * 0.02, 4), "south": round(51.0 + row * 0.02, 4),
            "east": round(4.02 + col * 0.02, 4), "north": round(51.02 + row * 0.02, 4)}
    period = ["2023-05-01", "2023-07-01"]
    if use_shared:  # the reference UDP, resolved offline from ../shared/udp/max_ndvi.json
        node = {"process_id": "max_ndvi", "namespace": MAX_NDVI_URL,
                "arguments": {"bbox": bbox, "temporal_extent": period}}
    else:  # the UDP shipped in the package
        node = {"process_id": "ndvi_max", "namespace": "ndvi_max",
                "arguments": {"spatial_extent": bbox, "temporal_extent": period}}
    return {"process_graph": {"ndvi1": {**node, "result": True}}}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def one_run(n_jobs: int, page_size: int, passes: int, client: str) -> RunResult:
    use_shared = (SHARED_UDP / "max_ndvi.json").is_file()
    with tempfile.TemporaryDirectory(prefix="bench-backend-") as tmp:
        config = BackendConfig(state_dir=Path(tmp), udp_dirs=(SHARED_UDP,) if use_shared else (),
                               simulation=Simulation())
        with LocalBackend(config) as backend, requests.Session() as session:
            login = session.get(backend.api_url + "/credentials/basic", auth=("demo", "demo"))
            login.raise_for_status()
            session.headers["Authorization"] = f"Bearer basic//{login.json()['access_token']}"

            create: Callable[[int], str]
            if client == "openeo":
                con = openeo.connect(backend.url, retry=False).authenticate_basic("demo", "demo")

                def create(i: int) -> str:
                    return con.create_job(process_for(i, use_shared), title=f"tile-{i}",
                                          validate=False).job_id
            else:
                def create(i: int) -> str:
                    resp = session.post(backend.api_url + "/jobs", json={
                        "title": f"tile-{i}", "process": process_for(i, use_shared)})
                    if resp.status_code != 201:
                        raise RuntimeError(f"POST /jobs: {resp.status_code} {resp.text[:200]}")
                    return resp.headers["OpenEO-Identifier"]

            latencies = []
            created = set()
            started = time.perf_counter()
            for i in range(n_jobs):
                t0 = time.perf_counter()
                created.add(create(i))
                latencies.append(time.perf_counter() - t0)
            create_seconds = time.perf_counter() - started

            pages = 0
            started = time.perf_counter()
            for _ in range(passes):
                listed: list[str] = []
                url: str | None = f"{backend.api_url}/jobs?limit={page_size}"
                while url:
                    resp = session.get(url)
                    resp.raise_for_status()
                    body = resp.json()
                    listed.extend(job["id"] for job in body["jobs"])
                    pages += 1
                    url = next((link["href"] for link in body.get("links", [])
                                if link.get("rel") == "next"), None)
                if len(listed) != len(created) or set(listed) != created:
                    raise RuntimeError(f"listed {len(listed)} jobs ({len(set(listed))} distinct), "
                                       f"created {len(created)}")
            list_seconds = time.perf_counter() - started

    return RunResult(
        jobs=n_jobs, create_seconds=round(create_seconds, 3),
        create_per_s=round(n_jobs / create_seconds, 1),
        create_p50_ms=round(1000 * percentile(latencies, 0.5), 2),
        create_p95_ms=round(1000 * percentile(latencies, 0.95), 2),
        list_passes=passes, list_pages=pages, list_seconds=round(list_seconds, 3),
        list_pages_per_s=round(pages / list_seconds, 1),
        list_jobs_per_s=round(passes * n_jobs / list_seconds, 1),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--jobs", type=int, default=1000, help="jobs to create per run (1000)")
    parser.add_argument("--runs", type=int, default=3, help="runs, each on a fresh backend (3)")
    parser.add_argument("--page-size", type=int, default=100, help="GET /jobs limit (100)")
    parser.add_argument("--list-passes", type=int, default=10,
                        help="times all jobs are listed per run (10)")
    parser.add_argument("--client", choices=("requests", "openeo"), default="requests",
                        help="create jobs with raw requests (default) or the openeo client")
    parser.add_argument("--output", type=Path, default=RESULTS, help=f"JSON file ({RESULTS})")
    args = parser.parse_args(argv)

    runs: list[RunResult] = []
    for n in range(args.runs):
        result = one_run(args.jobs, args.page_size, args.list_passes, args.client)
        runs.append(result)
        print(f"run {n + 1}/{args.runs}: create {result.create_per_s} req/s, "
              f"list {result.list_pages_per_s} pages/s", flush=True)

    fields = ("create_per_s", "create_p50_ms", "create_p95_ms", "list_pages_per_s",
              "list_jobs_per_s")
    median = {f: round(statistics.median(getattr(r, f) for r in runs), 2) for f in fields}
    print()
    print(f"local backend, {args.jobs} jobs, page size {args.page_size}, {args.runs} runs "
          f"(client: {args.client})")
    header = f"{'run':>6} | {'create/s':>9} | {'p50 ms':>7} | {'p95 ms':>7} | " \
             f"{'pages/s':>8} | {'jobs/s':>9}"
    print(header)
    print("-" * len(header))
    for label, row in [*((str(i + 1), asdict(r)) for i, r in enumerate(runs)), ("median", median)]:
        print(f"{label:>6} | {row['create_per_s']:>9.1f} | {row['create_p50_ms']:>7.2f} | "
              f"{row['create_p95_ms']:>7.2f} | {row['list_pages_per_s']:>8.1f} | "
              f"{row['list_jobs_per_s']:>9.1f}")

    report = {
        "benchmark": "backend_jobs",
        "settings": {"jobs": args.jobs, "runs": args.runs, "page_size": args.page_size,
                     "list_passes": args.list_passes, "client": args.client,
                     "udp": "max_ndvi (shared/udp)" if (SHARED_UDP / "max_ndvi.json").is_file()
                     else "ndvi_max (package)"},
        "median": median,
        "runs": [asdict(r) for r in runs],
        "environment": {"python": platform.python_version(), "platform": platform.platform(),
                        "cpus": os.cpu_count(), "openeo": openeo.client_version(),
                        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")},
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwritten to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
