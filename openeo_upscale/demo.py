"""`make demo` for now: start the local backend, run one job through the official `openeo`
client, and show where the result landed."""

from __future__ import annotations

import time
from pathlib import Path

import openeo

from openeo_upscale.backend import BackendConfig, LocalBackend, Simulation

DEMO_BBOX = {"west": 4.35, "south": 51.10, "east": 4.40, "north": 51.15}
DEMO_PERIOD = ["2023-05-01", "2023-07-01"]


def run_demo(output: Path) -> int:
    output.mkdir(parents=True, exist_ok=True)
    config = BackendConfig(state_dir=output / "backend-state", simulation=Simulation(time_scale=0.02))
    with LocalBackend(config) as backend:
        print(f"local openEO backend at {backend.url}")
        con = openeo.connect(backend.url).authenticate_basic("demo", "demo")
        cube = con.datacube_from_process(
            "ndvi_max", namespace=f"{backend.api_url}/udp/ndvi_max.json",
            spatial_extent=DEMO_BBOX, temporal_extent=DEMO_PERIOD)
        job = cube.create_job(title="openeo-upscale demo", out_format="GTiff")
        print(f"created job {job.job_id}; starting it")
        job.start()
        t0 = time.monotonic()
        status = job.status()
        while status not in ("finished", "error", "canceled"):
            print(f"  {time.monotonic() - t0:5.1f} s  {status}", flush=True)
            time.sleep(1.0)
            status = job.status()
        if status != "finished":
            for entry in job.logs(level="error"):
                print(f"  error: {entry.message}")
            return 1
        files = job.get_results().download_files(output / "results")
        print(f"job {job.job_id} finished in {time.monotonic() - t0:.1f} s")
        for f in files:
            print(f"result: {Path(f).resolve()}")
    return 0
