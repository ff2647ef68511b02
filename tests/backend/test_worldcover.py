"""The synthetic ESA WorldCover collection: served over HTTP, the land cover under Sentinel-2,
seamless and deterministic, described so that the official client reads it."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import openeo
import pytest
import rasterio
import xarray as xr
from pyproj import Transformer

from openeo_upscale.backend import BackendConfig, LocalBackend
from openeo_upscale.backend.collections import WORLDCOVER_CLASSES
from openeo_upscale.backend.config import Mode
from openeo_upscale.backend.data import sentinel2, worldcover
from openeo_upscale.backend.data.sentinel2 import SCL

COLLECTION = "ESA_WORLDCOVER_10M_2021_V2"
EPSG = 32631  # UTM 31N, Antwerp
BOX = {"west": 5.03, "south": 51.465, "east": 5.06, "north": 51.483}
"""About 2 x 2 km, 50 km north-east of Antwerp, with a lake, fields, a town, forest and bare soil."""
PRODUCED = {10, 30, 40, 50, 60, 80, 90}
"""The WorldCover codes the land model has (no shrubland, snow, mangroves, moss)."""
NOT_SURFACE = {SCL.CLOUD_SHADOWS, SCL.CLOUD_MEDIUM_PROBABILITY, SCL.CLOUD_HIGH_PROBABILITY,
               SCL.THIN_CIRRUS, SCL.SNOW}
"""SCL classes that hide what the ground is."""


def utm_box() -> tuple[float, float, float, float]:
    """`BOX` in UTM metres, snapped outwards to the 20 m land grid."""
    w, s, e, n = Transformer.from_crs(4326, EPSG, always_xy=True).transform_bounds(
        BOX["west"], BOX["south"], BOX["east"], BOX["north"])
    return (math.floor(w / 20) * 20.0, math.floor(s / 20) * 20.0, math.ceil(e / 20) * 20.0,
            math.ceil(n / 20) * 20.0)


def the_map(bounds: tuple[float, float, float, float], resolution: float | None = None) -> xr.DataArray:
    return worldcover.load(EPSG, bounds, [worldcover.DATE], ["MAP"], resolution)


@pytest.fixture
def real_connection(tmp_path: Path, udp_dir: Path) -> Iterator[openeo.Connection]:
    config = BackendConfig(state_dir=tmp_path / "backend", udp_dirs=(udp_dir,), mode=Mode.REAL)
    with LocalBackend(config) as backend:
        yield openeo.connect(backend.url).authenticate_basic("demo", "demo")


def test_a_real_job_writes_worldcover_codes(real_connection: openeo.Connection, tmp_path: Path) -> None:
    cube = real_connection.load_collection(COLLECTION, spatial_extent=BOX, bands=["MAP"])
    job = cube.save_result(format="GTiff").create_job(title="worldcover")
    job.start_and_wait(max_poll_interval=0.2, print=lambda *_: None)
    (asset,) = job.get_results().get_assets()
    with rasterio.open(asset.download(tmp_path / asset.key)) as src:
        assert src.crs.to_epsg() == EPSG and src.res == (10.0, 10.0) and src.count == 1
        got = src.read(1)
        west, south, east, north = src.bounds
    codes = set(np.unique(got).tolist())
    assert codes <= PRODUCED and {10, 40, 80} <= codes, codes
    # The pixels are the provider's, on the same grid.
    np.testing.assert_array_equal(got, the_map((west, south, east, north)).values[0, 0])


def test_water_is_scl_water_wherever_sentinel2_sees_the_ground() -> None:
    bounds = utm_box()
    cover = the_map(bounds).values[0, 0]
    days = [s.date for s in sentinel2.acquisitions(EPSG, bounds, "2023-06-01", "2023-08-01")]
    scl = sentinel2.load(EPSG, bounds, days, ["SCL"], resolution=10).values[:, 0]
    assert scl.shape[1:] == cover.shape
    water = np.broadcast_to(cover == 80, scl.shape)
    ground = ~np.isin(scl, list(NOT_SURFACE))
    assert 0.02 < water[0].mean() < 0.5 and 0.05 < (~ground).mean() < 0.95  # the test means something
    np.testing.assert_array_equal(water[ground], scl[ground] == SCL.WATER)
    # Forest in summer is vegetation, bare soil is not.
    forest, bare = (np.broadcast_to(cover == code, scl.shape) & ground for code in (10, 60))
    assert forest.any() and (scl[forest] == SCL.VEGETATION).all()
    assert bare.any() and (scl[bare] == SCL.NOT_VEGETATED).all()


def test_adjacent_tiles_mosaic_seamlessly_and_reruns_are_identical() -> None:
    w, s, _, _ = utm_box()
    whole = the_map((w, s, w + 2000, s + 1000)).values
    left, right = the_map((w, s, w + 1000, s + 1000)), the_map((w + 1000, s, w + 2000, s + 1000))
    np.testing.assert_array_equal(np.concatenate([left.values, right.values], axis=-1), whole)
    top, bottom = the_map((w, s + 500, w + 2000, s + 1000)), the_map((w, s, w + 2000, s + 500))
    np.testing.assert_array_equal(np.concatenate([top.values, bottom.values], axis=-2), whole)
    assert the_map((w, s, w + 2000, s + 1000)).values.tobytes() == whole.tobytes()
    # 10 m pixels inherit the 20 m land pixel they lie in; a coarser load takes the nearest one.
    blocks = whole[0, 0].reshape(50, 2, 100, 2)
    assert (blocks == blocks[:, :1, :, :1]).all()
    x0, y0 = math.floor(w / 60) * 60.0, math.floor(s / 60) * 60.0
    square = (x0, y0, x0 + 1800, y0 + 1800)
    fine, coarse = the_map(square), the_map(square, resolution=30)
    assert coarse.shape == (1, 1, 60, 60)
    np.testing.assert_array_equal(coarse.values, fine.sel(x=coarse.x.values, y=coarse.y.values).values)


def test_the_client_reads_the_collection_and_validation_accepts_it(connection: openeo.Connection) -> None:
    assert COLLECTION in connection.list_collection_ids()
    described = connection.describe_collection(COLLECTION)
    assert described["license"] == "CC-BY-4.0"
    dims = described["cube:dimensions"]
    assert set(dims) == {"x", "y", "t", "bands"} and dims["bands"]["values"] == ["MAP"]
    assert dims["t"]["extent"][0].startswith("2021-01-01") and dims["t"]["values"] == ["2021-01-01T00:00:00Z"]
    classes = {c["value"] for c in described["summaries"]["classification:classes"] if not c.get("nodata")}
    assert classes == set(worldcover.CLASSES)
    assert worldcover.PRODUCED == PRODUCED
    cube = connection.load_collection(COLLECTION, spatial_extent=BOX, bands=["MAP"])
    assert cube.metadata.band_names == ["MAP"]
    assert [d.name for d in cube.metadata.spatial_dimensions] == ["x", "y"]
    assert cube.metadata.temporal_dimension.extent[0].startswith("2021-01-01")
    assert connection.validate_process_graph(cube.save_result(format="GTiff")) == []


def test_the_collection_says_which_classes_the_map_produces() -> None:
    """The class list served at /collections marks as "not produced" exactly the classes the
    synthetic map never gives."""
    for entry in WORLDCOVER_CLASSES:
        if entry["value"] == 0:
            continue
        assert ("not produced" in entry["description"]) == (entry["value"] not in worldcover.PRODUCED), entry
