"""``load_stac`` and ``load_url`` end to end: batch jobs of the official client against the local
backend in real mode, on a small STAC collection of two COGs (two days) the test writes."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import geopandas
import numpy as np
import openeo
import pystac
import pytest
import rasterio
import rasterio.shutil
import shapely.geometry
from affine import Affine
from pyproj import Transformer

from openeo_upscale.backend import BackendConfig, LocalBackend
from openeo_upscale.backend.config import Mode
from tests.backend.client_helpers import run_to_end

X0, Y0, RES, SIZE = 590_000.0, 5_670_000.0, 10.0, 200
"""The files' upper-left corner in EPSG:32631 (near Antwerp), pixel size and side in pixels."""
DAYS = (dt.datetime(2023, 6, 1, 10, 30, tzinfo=dt.UTC), dt.datetime(2023, 6, 11, 10, 30, tzinfo=dt.UTC))
EXTENT = {"west": X0 + 500, "south": Y0 - 1500, "east": X0 + 1500, "north": Y0 - 700, "crs": 32631}
"""100 x 80 pixels inside the files: rows 70-150, columns 50-150."""
REMOTE = "https://stac.openeo.vito.be/collections/MDVI"


@dataclass
class Collection:
    path: Path
    red: list[np.ndarray]


@pytest.fixture
def collection(tmp_path: Path) -> Collection:
    folder = tmp_path / "stac"
    folder.mkdir()
    rng = np.random.default_rng(11)
    red = [rng.integers(1, 10000, (SIZE, SIZE), dtype=np.uint16) for _ in DAYS]
    w, s, e, n = Transformer.from_crs(32631, 4326, always_xy=True).transform_bounds(
        X0, Y0 - SIZE * RES, X0 + SIZE * RES, Y0)
    box = [w, s, e, n]
    stac = pystac.Collection("red", "Red, two days", pystac.Extent(
        pystac.SpatialExtent([box]), pystac.TemporalExtent([[DAYS[0], DAYS[1]]])))
    for i, (day, data) in enumerate(zip(DAYS, red, strict=True)):
        plain, cog = folder / f"plain-{i}.tif", folder / f"red-{i}.tif"
        with rasterio.open(plain, "w", driver="GTiff", width=SIZE, height=SIZE, count=1, dtype="uint16",
                           crs="EPSG:32631", transform=Affine(RES, 0, X0, 0, -RES, Y0), nodata=0) as dst:
            dst.write(data, 1)
        rasterio.shutil.copy(plain, cog, driver="COG")
        plain.unlink()
        item = pystac.Item(f"red-{i}", shapely.geometry.mapping(shapely.geometry.box(*box)), box, day, {})
        item.add_asset("B04", pystac.Asset(str(cog), media_type=pystac.MediaType.COG, roles=["data"]))
        stac.add_item(item)
    stac.normalize_and_save(str(folder), catalog_type=pystac.CatalogType.SELF_CONTAINED)
    return Collection(folder / "collection.json", red)


@pytest.fixture
def connection(tmp_path: Path) -> Iterator[openeo.Connection]:
    config = BackendConfig(state_dir=tmp_path / "backend", mode=Mode.REAL)
    with LocalBackend(config) as backend:
        yield openeo.connect(backend.url).authenticate_basic("demo", "demo")


def download(job: openeo.BatchJob, folder: Path) -> dict[str, Path]:
    folder.mkdir(exist_ok=True)
    return {asset.key: asset.download(folder / asset.key) for asset in job.get_results().get_assets()}


def error_messages(job: openeo.BatchJob) -> list[str]:
    return [str(entry["message"]) for entry in job.logs(level="error")]


def test_a_batch_job_of_load_stac_gives_the_files_pixels(
        connection: openeo.Connection, collection: Collection, tmp_path: Path) -> None:
    cube = connection.load_stac(collection.path.as_uri(), spatial_extent=EXTENT,
                                temporal_extent=["2023-06-01", "2023-07-01"], bands=["B04"])
    job = run_to_end(cube.save_result("GTiff").create_job(title="load_stac"))
    files = download(job, tmp_path / "out")
    assert sorted(files) == ["openEO_2023-06-01Z.tif", "openEO_2023-06-11Z.tif"]
    for day, data in zip(("2023-06-01", "2023-06-11"), collection.red, strict=True):
        with rasterio.open(files[f"openEO_{day}Z.tif"]) as src:
            assert src.crs.to_epsg() == 32631 and src.res == (RES, RES) and src.descriptions == ("B04",)
            assert (src.bounds.left, src.bounds.top) == (EXTENT["west"], EXTENT["north"])
            np.testing.assert_array_equal(src.read(1), data[70:150, 50:150].astype(np.float32))


def test_load_url_geojson_gives_the_geometries_of_aggregate_spatial(
        connection: openeo.Connection, collection: Collection, tmp_path: Path) -> None:
    fields = [shapely.geometry.box(X0 + 600, Y0 - 1000, X0 + 900, Y0 - 800),
              shapely.geometry.box(X0 + 1100, Y0 - 1400, X0 + 1400, Y0 - 1200)]
    path = tmp_path / "fields.geojson"
    geopandas.GeoDataFrame(geometry=fields, crs=32631).to_crs(4326).to_file(path, driver="GeoJSON")
    cube = connection.load_stac(str(collection.path), spatial_extent=EXTENT,
                                temporal_extent=["2023-06-01", "2023-06-02"], bands=["B04"])
    geometries = connection.load_url(str(path), format="GeoJSON")
    means = cube.aggregate_spatial(geometries=geometries, reducer="mean")
    job = run_to_end(means.vector_to_raster(cube).save_result("GTiff").create_job(title="load_url"))
    (result,) = download(job, tmp_path / "out").values()
    red = collection.red[0].astype(np.float64)
    with rasterio.open(result) as src:
        burnt = src.read(1)
    # Rows and columns of the extent's grid (its corner at column 50, row 70 of the files).
    np.testing.assert_allclose(burnt[10:30, 10:40], red[80:100, 60:90].mean(), rtol=1e-6)
    np.testing.assert_allclose(burnt[50:70, 60:90], red[120:140, 110:140].mean(), rtol=1e-6)
    assert np.isnan(burnt[0, 0]) and np.isfinite(burnt).sum() == 2 * 20 * 30


def test_a_remote_url_validates_but_the_job_says_why_it_is_not_fetched(connection: openeo.Connection) -> None:
    # Through datacube_from_process: the client's load_stac would try the URL itself for metadata.
    cube = connection.datacube_from_process("load_stac", url=REMOTE, bands=["dvi_max"])
    assert connection.validate_process_graph(cube) == []
    job = run_to_end(cube.create_job(title="remote"), require_success=False)
    assert job.status() == "error"
    messages = error_messages(job)
    assert any(f"remote URL '{REMOTE}' not fetched: this backend runs offline" in m
               and "allow_remote_namespaces" in m for m in messages), messages


def test_a_job_may_not_read_the_results_of_another(connection: openeo.Connection, collection: Collection,
                                                    tmp_path: Path) -> None:
    cube = connection.load_stac(str(collection.path), spatial_extent=EXTENT,
                                temporal_extent=["2023-06-01", "2023-06-02"], bands=["B04"])
    first = run_to_end(cube.save_result("GTiff").create_job(title="first"))
    (stored,) = (tmp_path / "backend" / "results" / first.job_id).glob("openEO_*.tif")
    copy = connection.datacube_from_process("load_url", url=str(stored), format="GTiff")
    second = run_to_end(copy.save_result("GTiff").create_job(title="second"), require_success=False)
    assert second.status() == "error"
    messages = error_messages(second)
    assert any("inside the backend's own folders" in m for m in messages), messages
