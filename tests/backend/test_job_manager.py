"""The `openeo` client's own MultiBackendJobManager runs a small campaign against the backend.

Nothing of the job manager is changed or subclassed: six `max_ndvi` tiles around Antwerp go
through `ProcessBasedJobCreator` -> create -> start (worker thread) -> poll -> download, and
every row of the CSV job database must end `finished` with a readable GeoTIFF in its job dir.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import openeo
import pandas as pd
import pytest
import rasterio
from openeo.extra.job_management import (
    CsvJobDatabase,
    MultiBackendJobManager,
    ProcessBasedJobCreator,
    create_job_db,
    process_based,
)
from openeo.internal.processes.parse import Process
from pyproj import Transformer

from openeo_upscale.backend import LocalBackend
from tests.conftest import MAX_NDVI_URL

TILE = 0.02
"""Tile edge in degrees (about 1.4 x 2.2 km at Antwerp)."""
TEMPORAL_EXTENT = ["2023-05-01", "2023-07-01"]


def antwerp_tiles() -> list[dict[str, float]]:
    """Six adjacent 0.02 degree tiles, 3 columns x 2 rows, west of Antwerp."""
    return [
        {"west": round(4.36 + col * TILE, 4), "south": round(51.18 + row * TILE, 4),
         "east": round(4.36 + (col + 1) * TILE, 4), "north": round(51.18 + (row + 1) * TILE, 4)}
        for row in range(2) for col in range(3)
    ]


@pytest.fixture
def offline_max_ndvi_definition(monkeypatch: pytest.MonkeyPatch, udp_dir: Path) -> None:
    """`ProcessBasedJobCreator` downloads the remote definition of `max_ndvi` to learn its
    parameters; tests stay on loopback, so that download reads the reference copy in
    shared/udp instead. The namespace sent to the backend is still `MAX_NDVI_URL`."""
    real = process_based.parse_remote_process_definition

    def from_shared(namespace: str, process_id: str | None = None) -> Process:
        if namespace != MAX_NDVI_URL:
            return real(namespace=namespace, process_id=process_id)
        doc = json.loads((udp_dir / "max_ndvi.json").read_text())
        assert process_id in (None, doc["id"])
        return Process.from_dict(doc)

    monkeypatch.setattr(process_based, "parse_remote_process_definition", from_shared)


@pytest.mark.usefixtures("offline_max_ndvi_definition")
def test_job_manager_runs_max_ndvi_campaign_to_completion(
        backend: LocalBackend, tmp_path: Path) -> None:
    tiles = antwerp_tiles()
    df = pd.DataFrame({
        "title": [f"max_ndvi tile {i}" for i in range(len(tiles))],
        "bbox": tiles,
    })
    job_db = create_job_db(tmp_path / "jobs.csv", df=df)
    creator = ProcessBasedJobCreator(namespace=MAX_NDVI_URL, process_id="max_ndvi",
                                     parameter_defaults={"temporal_extent": TEMPORAL_EXTENT})
    connection = openeo.connect(backend.url).authenticate_basic("demo", "demo")
    manager = MultiBackendJobManager(poll_sleep=0.2, root_dir=tmp_path / "jobs")  # type: ignore[arg-type]
    manager.add_backend("local", connection=connection, parallel_jobs=3)

    stats: dict[str, Any] = manager.run_jobs(start_job=creator, job_db=job_db)

    # The persisted job database, read back from disk: every row finished on our backend.
    final = CsvJobDatabase(tmp_path / "jobs.csv").read()
    assert len(final) == len(tiles)
    assert final["status"].tolist() == ["finished"] * len(tiles), final[["title", "status"]]
    assert set(final["backend_name"]) == {"local"}
    assert final["id"].is_unique and final["id"].str.startswith("j-").all()
    assert (final["costs"] > 0).all()
    assert stats["job finished"] == len(tiles)
    assert stats["job start"] == len(tiles)
    assert stats["job download"] == len(tiles)
    for key in ("start_job error", "job failed", "job download error", "job tracking error"):
        assert stats.get(key, 0) == 0, (key, dict(stats))

    to_lonlat: Transformer | None = None
    for _, row in final.iterrows():
        job = connection.job(row["id"])
        meta = job.describe()
        assert meta["status"] == "finished"
        assert meta["title"] == row["title"]
        node = next(iter(meta["process"]["process_graph"].values()))
        assert node["process_id"] == "max_ndvi"
        assert node["namespace"] == MAX_NDVI_URL
        tile = tiles[int(row["title"].rsplit(" ", 1)[1])]
        assert node["arguments"] == {"bbox": tile, "temporal_extent": TEMPORAL_EXTENT}

        job_dir = manager.get_job_dir(row["id"])
        assert (job_dir / f"job_{row['id']}.json").is_file()  # the job metadata, downloaded
        tif = job_dir / "openEO.tif"
        assert tif.is_file(), sorted(p.name for p in job_dir.iterdir())
        with rasterio.open(tif) as src:
            assert src.count == 1 and src.crs.to_epsg() == 32631
            band = src.read(1)
            assert band.shape == (64, 64) and band.min() > -32768
            if to_lonlat is None:
                to_lonlat = Transformer.from_crs(32631, 4326, always_xy=True)
            west, south, east, north = to_lonlat.transform_bounds(*src.bounds)
        # Each file covers its own row's tile (not a default or a neighbour's extent).
        assert west == pytest.approx(tile["west"], abs=1e-3)
        assert east == pytest.approx(tile["east"], abs=1e-3)
        assert south == pytest.approx(tile["south"], abs=1e-3)
        assert north == pytest.approx(tile["north"], abs=1e-3)
