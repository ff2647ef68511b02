"""The reference UDPs against independent numpy references on the same synthetic inputs.

``max_ndvi_composite`` and ``bap_composite`` run unchanged as batch jobs through the official
client on the local backend in real mode; :mod:`tests.backend.udp_references` recomputes them
from ``sentinel2.load`` on the grid of the job's GeoTIFF.

Tolerances:

- ``max_ndvi_composite``: identical, NaN where NaN. The engine and the reference both compute
  NDVI in float64 from integer DN held in float32 (exact), divide once (correctly rounded) and
  compare; the output values are copied DN, so there is no round-off to allow for.
- ``bap_composite``: at least 99.9 % of the valid pixels within 1 DN and the same nodata
  pixels to 99.9 %. The one inexact step is ``apply_kernel``: the engine convolves the 151 x 151
  kernel by FFT, the reference by two direct 1-D passes (the kernel is separable); they differ
  by round-off (~1e-16), which only matters when two observations of one month score equally
  to that precision (for example two cloud-free scenes equally far from the 15th); then the
  two may pick different observations. Measured: 100 % identical on the Antwerp tile; on the
  edge tile the outermost pixels, where the 20 m masks do not reach, are masked (nodata) by the
  engine. The tolerance still has teeth: a reference with a Gaussian of 10 instead
  of 22.65 pixels, or with no blur at all, agrees on only 95-99.2 % of the pixels here.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import openeo
import pytest
import rasterio

from openeo_upscale.backend import BackendConfig, LocalBackend
from openeo_upscale.backend.config import Mode
from tests.backend import udp_references as ref
from tests.conftest import BAP_URL

COMPOSITE_URL = ("https://raw.githubusercontent.com/ESA-APEx/apex_algorithms/refs/heads/main/"
                 "openeo_udp/examples/max_ndvi_composite/max_ndvi_composite.json")
EPSG = 32631
PERIOD = ["2023-07-01", "2023-09-01"]
"""Two months, 13 scenes of which two exceed the default ``max_cloud_cover`` of 75 % (26 July, 10 August)."""
BANDS = ["B04", "B03", "B02"]
"""The default bands of both UDPs (and of the bap benchmark scenario)."""
MAX_CLOUD_COVER = 75.0
"""The default ``max_cloud_cover`` of both UDPs."""
ANTWERP = {"west": 4.40, "south": 51.15, "east": 4.47, "north": 51.195}
"""About 5 x 5 km near Antwerp."""
EDGE = {"west": 4.1, "south": 51.35, "east": 4.1213, "north": 51.3637}
"""About 1.5 km: the east edge of its UTM box cuts a 20 m SCL pixel whose centre lies outside the
box but whose west half holds the centres of 10 m pixels inside it."""
BAP_MIN_WITHIN_1DN = 0.999
"""Share of valid bap pixels that must be within 1 DN of the reference."""

BOXES = pytest.mark.parametrize(
    "box", [ANTWERP, EDGE],
    ids=["antwerp", "edge"],
)


def _polygon(box: dict[str, float]) -> dict[str, Any]:
    w, s, e, n = box["west"], box["south"], box["east"], box["north"]
    return {"type": "Polygon", "coordinates": [[[w, s], [e, s], [e, n], [w, n], [w, s]]]}


@pytest.fixture
def connection(tmp_path: Path, udp_dir: Path) -> Iterator[openeo.Connection]:
    config = BackendConfig(state_dir=tmp_path / "backend", udp_dirs=(udp_dir,), mode=Mode.REAL)
    with LocalBackend(config) as backend:
        yield openeo.connect(backend.url).authenticate_basic("demo", "demo")


def _run(cube: Any, folder: Path) -> dict[str, Path]:
    job = cube.create_job(title="reference")
    job.start_and_wait(max_poll_interval=0.5, print=lambda *_: None)
    return {asset.key: asset.download(folder / asset.key) for asset in job.get_results().get_assets()}


def _read(path: Path) -> tuple[np.ndarray, tuple[float, float, float, float]]:
    with rasterio.open(path) as src:
        assert src.crs.to_epsg() == EPSG and src.res == (10.0, 10.0)
        assert src.descriptions == tuple(BANDS)
        return src.read().astype(np.float64), tuple(src.bounds)


def _outer_ring(shape: tuple[int, ...]) -> np.ndarray:
    ring = np.zeros(shape[-2:], dtype=bool)
    ring[[0, -1], :] = ring[:, [0, -1]] = True
    return ring


@BOXES
def test_max_ndvi_composite_equals_the_reference(connection: openeo.Connection, tmp_path: Path,
                                                 box: dict[str, float]) -> None:
    cube = connection.datacube_from_process("max_ndvi_composite", namespace=COMPOSITE_URL,
                                            spatial_extent=box, temporal_extent=PERIOD)
    (path,) = _run(cube, tmp_path).values()
    got, bounds = _read(path)
    days = ref.scenes(EPSG, bounds, PERIOD, MAX_CLOUD_COVER)
    assert len(days) == 11 and {date(2023, 7, 26), date(2023, 8, 10)}.isdisjoint(days)  # 82 %, 76 %
    expected = ref.max_ndvi_composite(EPSG, bounds, days, BANDS)
    assert got.shape == expected.shape
    same = (got == expected) | (np.isnan(got) & np.isnan(expected))
    # An engine that masks the outermost pixels for want of SCL there is correct too.
    same |= np.isnan(got) & _outer_ring(got.shape)[None]
    differ = ~same.all(axis=0)
    assert not differ.any(), f"{differ.sum()} pixels differ, first {np.argwhere(differ)[:5].tolist()}"


@BOXES
def test_bap_composite_agrees_with_the_reference(connection: openeo.Connection, tmp_path: Path, udp_dir: Path,
                                                 box: dict[str, float]) -> None:
    geometry = _polygon(box)
    cube = connection.datacube_from_process("bap_composite", namespace=BAP_URL, geometry=geometry,
                                            temporal_extent=PERIOD)
    paths = _run(cube, tmp_path)
    assert sorted(paths) == ["openEO_2023-07-01Z.tif", "openEO_2023-08-01Z.tif"]

    polygon = ref.utm_polygon(geometry, EPSG)
    grid, _ = ref.centre_grid(polygon, 10.0)
    days = ref.scenes(EPSG, grid, PERIOD, MAX_CLOUD_COVER)
    kernel = ref.bap_kernel(udp_dir / "bap_composite.json")
    expected = ref.bap_composite(EPSG, polygon, grid, days, BANDS, kernel)
    assert sorted(expected) == [date(2023, 7, 1), date(2023, 8, 1)]
    for month, composite in expected.items():
        got, bounds = _read(paths[f"openEO_{month.isoformat()}Z.tif"])
        assert bounds == pytest.approx(grid, abs=1e-6)  # filter_spatial crops to the polygon's pixels
        nodata_got, nodata_expected = np.isnan(got).all(axis=0), np.isnan(composite).all(axis=0)
        assert (nodata_got == nodata_expected).mean() >= BAP_MIN_WITHIN_1DN, month
        both = ~nodata_got & ~nodata_expected
        if box is ANTWERP:  # most pixels of a two-month window have a clear observation (not so on
            assert both.mean() > 0.5, month  # the small, cloudier edge tile)
        close = np.abs(got - composite) <= 1.0
        within = np.asarray(close.all(axis=0))[both]
        assert within.mean() >= BAP_MIN_WITHIN_1DN, f"{month}: {within.mean():.5f} within 1 DN"
        if box is EDGE:  # the pixels that differ here are few enough for the tolerance: be exact
            assert (nodata_got == nodata_expected).all() and within.all(), month
