"""Real mode end to end: the reference UDPs run unchanged as batch jobs through the official client,
each in its own worker process, on the synthetic Sentinel-2 collection."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import openeo
import pytest
import rasterio

from openeo_upscale.backend import BackendConfig, LocalBackend
from openeo_upscale.backend.config import Mode
from openeo_upscale.backend.data import sentinel2
from openeo_upscale.backend.engine import implemented
from tests.conftest import BAP_URL, MAX_NDVI_URL
from tests.helpers import wait_until

TILE = {"west": 4.40, "south": 51.15, "east": 4.47, "north": 51.195}
"""About 5 x 5 km near Antwerp."""
PERIOD = ["2023-05-01", "2023-07-01"]
COMPOSITE_URL = ("https://raw.githubusercontent.com/ESA-APEx/apex_algorithms/refs/heads/main/"
                 "openeo_udp/examples/max_ndvi_composite/max_ndvi_composite.json")


def real_backend(tmp_path: Path, udp_dir: Path, **settings: Any) -> LocalBackend:
    return LocalBackend(BackendConfig(state_dir=tmp_path / "backend", udp_dirs=(udp_dir,), mode=Mode.REAL,
                                      **settings))


@pytest.fixture
def connection(tmp_path: Path, udp_dir: Path) -> Iterator[openeo.Connection]:
    with real_backend(tmp_path, udp_dir) as backend:
        yield openeo.connect(backend.url).authenticate_basic("demo", "demo")


def run(connection: openeo.Connection, cube: Any, folder: Path) -> tuple[openeo.BatchJob, list[Path]]:
    job = cube.create_job(title="real")
    job.start_and_wait(max_poll_interval=0.5, print=lambda *_: None)
    paths = [asset.download(folder / asset.key) for asset in job.get_results().get_assets()]
    return job, paths


def test_max_ndvi_equals_a_numpy_reference(connection: openeo.Connection, tmp_path: Path) -> None:
    cube = connection.datacube_from_process("max_ndvi", namespace=MAX_NDVI_URL, bbox=TILE,
                                            temporal_extent=PERIOD)
    job, (path,) = run(connection, cube, tmp_path)
    with rasterio.open(path) as src:
        assert src.crs.to_epsg() == 32631 and src.res == (10.0, 10.0)
        got = src.read(1)
        west, south, east, north = src.bounds
    scenes = sentinel2.acquisitions(32631, (west, south, east, north), *PERIOD)
    data = sentinel2.load(32631, (west, south, east, north), [s.date for s in scenes], ["B04", "B08"])
    red, nir = data.sel(bands="B04").values.astype("float64"), data.sel(bands="B08").values.astype("float64")
    expected = np.nanmax((nir - red) / (nir + red), axis=0)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    usage = job.describe()["usage"]
    assert usage["cpu"]["value"] > 0 and usage["input_pixel"]["value"] > 0


def test_max_ndvi_composite_runs_unchanged(connection: openeo.Connection, tmp_path: Path) -> None:
    cube = connection.datacube_from_process("max_ndvi_composite", namespace=COMPOSITE_URL,
                                            spatial_extent={**TILE}, temporal_extent=PERIOD)
    _, paths = run(connection, cube, tmp_path)
    assert paths
    with rasterio.open(paths[0]) as src:
        assert src.crs.to_epsg() == 32631 and src.count >= 1
        assert np.isfinite(src.read()).any()


def test_bap_composite_runs_unchanged(connection: openeo.Connection, tmp_path: Path) -> None:
    geometry = {"type": "Polygon", "coordinates": [[[4.567, 50.921], [4.608, 50.921], [4.608, 50.944],
                                                    [4.567, 50.944], [4.567, 50.921]]]}
    cube = connection.datacube_from_process("bap_composite", namespace=BAP_URL, geometry=geometry,
                                            temporal_extent=["2022-05-01", "2022-07-01"])
    _, paths = run(connection, cube, tmp_path)
    assert sorted(p.name for p in paths) == ["openEO_2022-05-01Z.tif", "openEO_2022-06-01Z.tif"]
    for path in paths:
        with rasterio.open(path) as src:
            assert src.crs.to_epsg() == 32631 and src.descriptions == ("B04", "B03", "B02")
            data = src.read()
            assert np.isfinite(data).mean() > 0.9
            assert np.nanmin(data) > 0 and np.nanmax(data) <= 10000


def test_processes_lists_exactly_what_is_implemented(connection: openeo.Connection) -> None:
    listed = {process["id"] for process in connection.list_processes()}
    assert listed == implemented()


def test_a_runtime_error_names_the_node(connection: openeo.Connection, tmp_path: Path) -> None:
    cube = connection.load_collection("SENTINEL2_L2A", spatial_extent=TILE, temporal_extent=PERIOD,
                                      bands=["B04"])
    cube = cube.reduce_dimension(dimension="bands", reducer=lambda data: data.array_element(index=5))
    job = cube.create_job()
    job.start()
    wait_until(lambda: job.status() == "error", "the job to fail", timeout=60)
    messages = [entry["message"] for entry in job.logs(level="error")]
    assert any("reduce_dimension" in m and "callback node" in m and "array_element" in m
               for m in messages), messages


def _worker_pids(job_id: str) -> list[int]:
    """Processes whose command line runs the worker for this job (Linux /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if "openeo_upscale.backend.engine.worker" in command and job_id in command:
                found.append(int(entry.name))
    return found


def big_job(connection: openeo.Connection) -> Any:
    """max_ndvi over about 30 x 30 km and half a year: seconds of work, gigabytes if loaded at once."""
    area = {"west": 4.2, "south": 51.0, "east": 4.65, "north": 51.27}
    return connection.datacube_from_process("max_ndvi", namespace=MAX_NDVI_URL, bbox=area,
                                            temporal_extent=["2023-03-01", "2023-09-01"])


def test_cancel_kills_the_worker_within_two_seconds(connection: openeo.Connection) -> None:
    job = big_job(connection).create_job()
    job.start()
    wait_until(lambda: _worker_pids(job.job_id), "the worker process", timeout=30)
    began = time.monotonic()
    job.stop()
    wait_until(lambda: not _worker_pids(job.job_id), "the worker to end", timeout=2.0)
    assert time.monotonic() - began < 2.0
    assert job.status() == "canceled"


@pytest.mark.parametrize("limit, expected", [({"job_time_limit": 0.5}, "time limit of 0.5 s"),
                                             ({"job_memory_limit_mb": 1500}, "memory limit of 1500 MB")])
def test_a_job_over_its_limits_ends_in_error_saying_so(tmp_path: Path, udp_dir: Path, limit: dict[str, Any],
                                                      expected: str) -> None:
    with real_backend(tmp_path, udp_dir, **limit) as backend:
        connection = openeo.connect(backend.url).authenticate_basic("demo", "demo")
        job = big_job(connection).create_job()
        job.start()
        wait_until(lambda: job.status() == "error", "the job to fail", timeout=120)
        messages = [entry["message"] for entry in job.logs(level="error")]
        assert any(expected in m for m in messages), messages
