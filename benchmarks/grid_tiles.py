"""Benchmark: `openeo_upscale.grid.tiles` on about a million tiles, beside openEO's `split_area`.

Cases (each about 1,000,000 tiles):

- `tiles-europe-2km`: `tiles()` on a Europe bbox (5°W-20°E, 40°N-60°N) at 2 km, five UTM zones,
  lon/lat polygons with 4 points per edge, aoi_fraction for every tile;
- `tiles-zone32-1km`: `tiles()` on one zone's band (6°E-12°E, 40°N-61°N) at 1 km;
- `split_area-zone32-1km`: `openeo.extra.job_management.split_area` on the same bbox, projection
  EPSG:32632, tile_size 1000. It tiles the bbox of the reprojected AOI in that one projection and
  returns projected squares (no lon/lat polygons, no coverage shares), so it does less per tile.

Every measurement runs in a fresh subprocess, so peak memory (`ru_maxrss`, which counts what
GEOS and PROJ allocate in C, unlike tracemalloc) is that run's alone; the time is the call only,
not the imports. Medians over `--runs` runs (default 3) are printed as a table and written with
the raw runs to `benchmarks/results/grid_tiles.json`.

    .venv/bin/python benchmarks/grid_tiles.py [--runs 3] [--cases tiles-europe-2km,...]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results" / "grid_tiles.json"
EUROPE = (-5.0, 40.0, 20.0, 60.0)
ZONE32 = (6.0, 40.0, 12.0, 61.0)


def _tiles_europe() -> int:
    from openeo_upscale.grid import tiles

    return len(tiles(EUROPE, 2000))


def _tiles_zone32() -> int:
    from openeo_upscale.grid import tiles

    return len(tiles(ZONE32, 1000))


def _split_area_zone32() -> int:
    from openeo.extra.job_management import split_area

    west, south, east, north = ZONE32
    bbox = {"west": west, "south": south, "east": east, "north": north, "crs": "EPSG:4326"}
    return len(split_area(bbox, projection="EPSG:32632", tile_size=1000))


CASES: dict[str, tuple[str, Callable[[], int]]] = {
    "tiles-europe-2km": ("grid.tiles, Europe bbox, 2 km, 5 zones", _tiles_europe),
    "tiles-zone32-1km": ("grid.tiles, zone 32 band, 1 km", _tiles_zone32),
    "split_area-zone32-1km": ("openeo split_area, zone 32 band, 1 km", _split_area_zone32),
}


def _imports_for(case: str) -> None:
    """Import what a case needs before the clock starts, so the time is the call's alone."""
    if case.startswith("split_area"):
        import openeo.extra.job_management  # noqa: F401
    else:
        import openeo_upscale.grid  # noqa: F401
    import geopandas  # noqa: F401
    import pyproj

    pyproj.Transformer.from_crs(4326, 32632, always_xy=True)  # PROJ's database, opened once


def _child(case: str) -> None:
    logging.disable(logging.WARNING)  # split_area warns about "a lot of memory"; not a result
    _imports_for(case)
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    started = time.perf_counter()
    count = CASES[case][1]()
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print(json.dumps({"tiles": count, "seconds": seconds, "peak_rss_mb": peak, "baseline_rss_mb": baseline}))


def _measure(case: str) -> dict[str, Any]:
    done = subprocess.run([sys.executable, __file__, "--child", case], capture_output=True, text=True,
                          check=False, env={**os.environ, "PYTHONHASHSEED": "0"})
    if done.returncode != 0:
        raise SystemExit(f"{case} failed:\n{done.stderr}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    result["tiles_per_second"] = result["tiles"] / result["seconds"]
    return result


def _versions() -> dict[str, str]:
    names = ("openeo", "shapely", "pyproj", "geopandas", "numpy")
    return {name: metadata.version(name) for name in names}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="runs per case (default 3)")
    parser.add_argument("--cases", default=",".join(CASES), help="comma-separated case names")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--output", type=Path, default=RESULTS, help=f"JSON results (default {RESULTS})")
    args = parser.parse_args(argv)
    if args.child:
        _child(args.child)
        return 0

    cases = [c for c in args.cases.split(",") if c]
    unknown = [c for c in cases if c not in CASES]
    if unknown:
        parser.error(f"unknown case(s) {', '.join(unknown)}; known: {', '.join(CASES)}")
    summary: dict[str, Any] = {}
    for case in cases:
        runs = []
        for run in range(args.runs):
            runs.append(_measure(case))
            print(f"  {case} run {run + 1}/{args.runs}: {runs[-1]['seconds']:.2f} s", file=sys.stderr)
        summary[case] = {
            "description": CASES[case][0],
            "tiles": runs[0]["tiles"],
            "median_seconds": statistics.median(r["seconds"] for r in runs),
            "median_tiles_per_second": statistics.median(r["tiles_per_second"] for r in runs),
            "median_peak_rss_mb": statistics.median(r["peak_rss_mb"] for r in runs),
            "median_baseline_rss_mb": statistics.median(r["baseline_rss_mb"] for r in runs),
            "runs": runs,
        }

    header = f"{'case':<24} {'tiles':>10} {'seconds':>8} {'tiles/s':>10} {'peak MB':>8} {'imports MB':>10}"
    print(header)
    print("-" * len(header))
    for case, s in summary.items():
        print(f"{case:<24} {s['tiles']:>10,} {s['median_seconds']:>8.2f} "
              f"{s['median_tiles_per_second']:>10,.0f} {s['median_peak_rss_mb']:>8.0f} "
              f"{s['median_baseline_rss_mb']:>10.0f}")
    print(f"(medians of {args.runs} runs, each in its own process; peak = max RSS including imports)")

    args.output.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "benchmark": "grid_tiles",
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "runs_per_case": args.runs,
        "machine": {"python": platform.python_version(), "platform": platform.platform(),
                    "cpus": os.cpu_count(), "packages": _versions()},
        "cases": summary,
    }
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
