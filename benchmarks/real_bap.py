"""Wall time and peak memory of one real `bap_composite` job: a 5 km tile, two months, three bands.

Each run starts a fresh `LocalBackend` in real mode (its own state folder, the reference UDPs
from `../shared/udp`) with the whole process pinned to one CPU core (the job's worker process
inherits the affinity, and BLAS/OpenMP thread pools are set to one thread), submits
`bap_composite` through the official `openeo` client by its namespace URL (resolved offline),
waits for it and downloads the results. Reported per run and as the median over `--runs`:

- **job seconds**: the job's `usage.duration` (worker start to end, as the backend records it);
- **CPU seconds**: `usage.cpu` of the worker process;
- **peak MB**: `usage.max_memory`, the worker's maximum resident set size;
- **end to end**: from `POST /jobs` to the last asset downloaded, through HTTP.

The goal in issue 5: 30 s or less and under 2 GB on one core.

    .venv/bin/python benchmarks/real_bap.py --runs 3
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
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SHARED_UDP = ROOT.parent / "shared" / "udp"
RESULTS = ROOT / "benchmarks" / "results" / "real_bap.json"
BAP_URL = "https://raw.githubusercontent.com/ESA-APEx/apex_algorithms/refs/heads/main/openeo_udp/bap_composite.json"

TILE = {"west": 4.40, "south": 51.15, "east": 4.4715, "north": 51.195}
"""About 5 x 5 km near Antwerp (EPSG:32631)."""
PERIOD = ["2023-05-01", "2023-07-01"]
BANDS = ["B04", "B03", "B02"]


def one_core() -> None:
    """Pin this process (and the job processes it starts) to one core, one thread per pool."""
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
        os.environ[name] = "1"
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})


def run_once(folder: Path) -> dict[str, Any]:
    import openeo

    from openeo_upscale.backend import BackendConfig, LocalBackend
    from openeo_upscale.backend.config import Mode

    config = BackendConfig(state_dir=folder / "backend", udp_dirs=(SHARED_UDP,), mode=Mode.REAL,
                           job_time_limit=600.0)
    with LocalBackend(config) as backend:
        connection = openeo.connect(backend.url).authenticate_basic("demo", "demo")
        geometry = {"type": "Polygon", "coordinates": [[
            [TILE["west"], TILE["south"]], [TILE["east"], TILE["south"]], [TILE["east"], TILE["north"]],
            [TILE["west"], TILE["north"]], [TILE["west"], TILE["south"]]]]}
        cube = connection.datacube_from_process("bap_composite", namespace=BAP_URL, geometry=geometry,
                                                temporal_extent=PERIOD, bands=BANDS)
        began = time.monotonic()
        job = cube.create_job(title="bap benchmark")
        job.start_and_wait(max_poll_interval=0.5, print=lambda *_: None)
        assets = job.get_results().get_assets()
        for asset in assets:
            asset.download(folder / "out" / asset.key)
        end_to_end = time.monotonic() - began
        usage = job.describe()["usage"]
    return {
        "job_seconds": usage["duration"]["value"],
        "cpu_seconds": usage["cpu"]["value"],
        "peak_mb": usage["max_memory"]["value"],
        "input_megapixels": usage["input_pixel"]["value"],
        "end_to_end_seconds": round(end_to_end, 3),
        "assets": sorted(asset.key for asset in assets),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="runs (3)")
    parser.add_argument("--output", type=Path, default=RESULTS, help=f"JSON file ({RESULTS})")
    args = parser.parse_args(argv)
    if not SHARED_UDP.is_dir():
        print(f"{SHARED_UDP} is absent: the reference UDPs live in ../shared beside the clone",
              file=sys.stderr)
        return 2
    one_core()
    runs = []
    for number in range(1, args.runs + 1):
        with tempfile.TemporaryDirectory(prefix="real-bap-") as folder:
            result = run_once(Path(folder))
        runs.append(result)
        print(f"run {number}/{args.runs}: job {result['job_seconds']:.1f} s, "
              f"cpu {result['cpu_seconds']:.1f} s, peak {result['peak_mb']:.0f} MB, "
              f"end to end {result['end_to_end_seconds']:.1f} s, "
              f"{len(result['assets'])} assets")
    keys = ("job_seconds", "cpu_seconds", "peak_mb", "end_to_end_seconds")
    medians = {key: round(statistics.median(run[key] for run in runs), 3) for key in keys}
    goals = {"job_within_30_s": medians["job_seconds"] <= 30.0, "peak_under_2_gb": medians["peak_mb"] < 2048}
    print(f"\nmedians over {args.runs} runs: " + ", ".join(f"{k} {v}" for k, v in medians.items()))
    print(f"goals: {goals}")
    document = {
        "benchmark": "real_bap",
        "workload": {"udp": "bap_composite", "tile": TILE, "temporal_extent": PERIOD, "bands": BANDS,
                     "cores": 1},
        "runs": runs,
        "medians": medians,
        "goals": goals,
        "environment": {"python": platform.python_version(), "platform": platform.platform(),
                        "cpus": os.cpu_count()},
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    print(f"written to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
