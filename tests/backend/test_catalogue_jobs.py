"""The ESA APEx catalogue's UDPs (``../shared/udp/apex-catalogue/``) as real batch jobs.

Each UDP is called by namespace through the official client, as a user would: the area
parameters get a 2 km box near Antwerp (a bounding box or the same box as a polygon), the period
parameters June and July 2023, the rest their defaults. The job runs in real mode on the
synthetic collections, and its GeoTIFF must hold plausible values: the UTM grid of the box, the
bands the UDP documents, finite values in the range its output has by construction (a colour
ramp in 0-1, an 8-bit visualisation in 0-255, reflectance in 0-1), and, where the UDP maps a
thing the land cover knows (water), agreement with the land cover.

Run before the engine learnt per-pixel colour ramps (``if`` choosing between arrays) and the
outer ``save_result`` over a UDP that saves its own result (and PNG): ndsi, apa_aquatic_plants_algae,
cloudless_mosaic, cohen_braaten_yang_cloud_detection, fire_boundary, hollstein_cloud_detection,
mago_water_quality, monthly_composite, plant-senescence-reflectance-index, snow_classifier,
swbm and wildfire_visualization were untested; enhanced_vegetation_index, kernel_ndvi,
barren_soil and atmospheric_resistant_vegetation_index failed, and bais2 and
ndci_cyanobacteria (which save PNG) too, worldcover_statistics (child processes as array
items, CSV) and timeseries_statistics (an ``if`` whose untaken branch cannot be evaluated).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import openeo
import pandas as pd
import pytest
import rasterio

from openeo_upscale.backend import BackendConfig, LocalBackend
from openeo_upscale.backend.config import Mode
from openeo_upscale.backend.data import worldcover
from tests.backend.client_helpers import run_to_end
from tests.backend.test_catalogue_validation import CATALOGUE, udp_call
from tests.conftest import require_shared

pytestmark = pytest.mark.timeout(180)

BOX = {"west": 4.40, "south": 51.15, "east": 4.43, "north": 51.168}
"""About 2.1 x 2 km near Antwerp."""
POLYGON = {"type": "Polygon", "coordinates": [[[4.40, 51.15], [4.43, 51.15], [4.43, 51.168], [4.40, 51.168],
                                               [4.40, 51.15]]]}
PERIOD = ["2023-06-10", "2023-08-10"]
"""Two summer months whose first scene under 30 % cloud cover (2023-06-11, 2 %) is clear: the UDPs
that take the first such scene without masking clouds see the land."""


@dataclass(frozen=True)
class Expect:
    """What a UDP's GeoTIFF holds: band count, pixel size, value range, and an extra check."""

    bands: int
    res: float
    low: float
    high: float
    check: Callable[[np.ndarray, rasterio.DatasetReader], None] | None = None


def _water_is_blue(values: np.ndarray, src: rasterio.DatasetReader) -> None:
    """swbm renders water (0, 0, 255) and leaves land in its (scaled) true colours."""
    blue = (values[0] == 0) & (values[1] == 0) & (values[2] == 255)
    water = _land_cover(src) == 80
    assert blue[~water].mean() < 0.05, "land rendered as water"
    if water.sum() >= 20:
        assert blue[water].mean() > 0.8, "water not rendered blue"


def _no_snow_in_summer(colour: tuple[int, int, int]) -> Callable[[np.ndarray, rasterio.DatasetReader], None]:
    """ndsi and snow_classifier in June over Belgium: (almost) no pixel in the UDP's snow colour."""
    def check(values: np.ndarray, src: rasterio.DatasetReader) -> None:
        snow = np.all(np.abs(values - np.asarray(colour, dtype=float)[:, None, None]) < 0.5, axis=0)
        assert snow.mean() < 0.01
    return check


def _vegetation_above_water(values: np.ndarray, src: rasterio.DatasetReader) -> None:
    """fapar and leaf_area_index (neural networks on reflectances and sun and view angles): higher
    over grassland and forest than over water."""
    codes = _land_cover(src)
    green, water = np.isin(codes, (10, 30)), codes == 80
    assert green.sum() > 100
    if water.sum() >= 20:
        assert np.nanmedian(values[0][green]) > np.nanmedian(values[0][water]) + 0.1


def _land_cover(src: rasterio.DatasetReader) -> np.ndarray:
    """The synthetic WorldCover class of each pixel of the file, at its resolution."""
    epsg = src.crs.to_epsg()
    cube = worldcover.load(epsg, tuple(src.bounds), [worldcover.DATE], ["MAP"], resolution=src.res[0])
    codes = cube.isel(t=0, bands=0).values
    assert codes.shape == (src.height, src.width)
    return codes


RAMP = (0.0, 1.0)
EXPECTED: dict[str, Expect] = {
    "enhanced_vegetation_index": Expect(3, 10, *RAMP),
    "kernel_ndvi": Expect(3, 10, *RAMP),
    # One index per pixel (apply_dimension over bands returning one value: one band).
    "atmospheric_resistant_vegetation_index": Expect(1, 10, -1.0, 1.0),  # negative over water
    "plant-senescence-reflectance-index": Expect(1, 10, *RAMP),
    "wildfire_visualization": Expect(3, 10, *RAMP),
    "cohen_braaten_yang_cloud_detection": Expect(3, 10, *RAMP),
    "hollstein_cloud_detection": Expect(3, 10, 0.0, 1.5),
    "barren_soil": Expect(3, 10, -1.0, 1.0),
    "cloudless_mosaic": Expect(3, 10, 0.0, 1.0),
    "monthly_composite": Expect(3, 10, 0.0, 1.0),
    "fire_boundary": Expect(1, 20, 0.0, 255.0),
    "mago_water_quality": Expect(3, 10, 0.0, 255.0),
    "swbm": Expect(3, 20, 0.0, 255.0, _water_is_blue),
    "snow_classifier": Expect(3, 20, 0.0, 255.0, _no_snow_in_summer((255, 204, 102))),
    "ndsi": Expect(3, 60, 0.0, 255.0, _no_snow_in_summer((0, 204, 255))),
    "apa_aquatic_plants_algae": Expect(3, 100, 0.0, 255.0),
    "ndci_cyanobacteria": Expect(3, 10, 0.0, 255.0),
    "bais2": Expect(3, 10, 0.0, 255.0),
    "fapar": Expect(1, 10, -1.0, 1.0, _vegetation_above_water),
    "leaf_area_index": Expect(1, 10, 0.0, 8.0, _vegetation_above_water),
}
"""The catalogue UDPs that run as real batch jobs, and what their results must look like."""


def call_arguments(path: Path) -> tuple[str, str, dict[str, Any]]:
    """(process id, namespace, arguments): the box and period for the area and time parameters."""
    process_id, namespace, arguments = udp_call(path)
    for parameter in json.loads(path.read_text()).get("parameters", []):
        schemas = parameter.get("schema")
        subtypes = {s.get("subtype") for s in (schemas if isinstance(schemas, list) else [schemas])
                    if isinstance(s, dict)}
        if "bounding-box" in subtypes:
            arguments[parameter["name"]] = BOX
        elif "geojson" in subtypes:
            arguments[parameter["name"]] = POLYGON
        elif "temporal-interval" in subtypes:
            arguments[parameter["name"]] = PERIOD
    return process_id, namespace, arguments


def _class_shares(table: pd.DataFrame) -> None:
    """worldcover_statistics: the share of each of the 11 WorldCover classes, summing to one."""
    shares = table.drop(columns=["feature_index", "date"])
    assert shares.shape[1] == 11
    assert ((shares >= 0) & (shares <= 1)).all(axis=None)
    assert shares.sum(axis=1).iloc[0] == pytest.approx(1.0)


def _ordered_statistics(table: pd.DataFrame) -> None:
    """timeseries_statistics without a period: per band min <= q10 <= q50 <= q90 <= max, the mean
    between min and max, reflectances in DN."""
    row = table.iloc[0]
    for band in ("B04", "B08"):
        stats = [row[f"{band}_{name}"] for name in ("min", "q10", "q50", "q90", "max")]
        assert stats == sorted(stats) and stats[0] > 0 and stats[-1] <= 10000
        assert stats[0] <= row[f"{band}_mean"] <= stats[-1] and row[f"{band}_sd"] > 0


TABLES: dict[str, Callable[[pd.DataFrame], None]] = {
    "worldcover_statistics": _class_shares,
    "timeseries_statistics": _ordered_statistics,
}
"""The catalogue UDPs that save CSV (aggregate_spatial over the polygon), and their checks."""


@pytest.fixture(scope="module")
def connection(tmp_path_factory: pytest.TempPathFactory) -> Iterator[openeo.Connection]:
    folder = require_shared(*CATALOGUE)
    config = BackendConfig(state_dir=tmp_path_factory.mktemp("backend"), udp_dirs=(folder,), mode=Mode.REAL)
    with LocalBackend(config) as backend:
        yield openeo.connect(backend.url).authenticate_basic("demo", "demo")


@pytest.mark.parametrize("name", sorted(TABLES))
def test_catalogue_udp_with_a_table_runs_as_a_batch_job(connection: openeo.Connection, tmp_path: Path,
                                                        name: str) -> None:
    process_id, namespace, arguments = call_arguments(require_shared(*CATALOGUE, f"{name}.json"))
    cube = connection.datacube_from_process(process_id, namespace=namespace, **arguments)
    job = cube.create_job(title=name)
    run_to_end(job)
    (asset,) = job.get_results().get_assets()
    table = pd.read_csv(asset.download(tmp_path / asset.key))
    assert table["feature_index"].tolist() == [0]  # one polygon, one row
    TABLES[name](table)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_catalogue_udp_runs_as_a_batch_job(connection: openeo.Connection, tmp_path: Path, name: str) -> None:
    expect = EXPECTED[name]
    process_id, namespace, arguments = call_arguments(require_shared(*CATALOGUE, f"{name}.json"))
    cube = connection.datacube_from_process(process_id, namespace=namespace, **arguments)
    job = cube.create_job(title=name)
    run_to_end(job)
    # One file, or one per date for a UDP that keeps its time dimension (bais2): the first.
    asset = min(job.get_results().get_assets(), key=lambda a: a.key)
    path = asset.download(tmp_path / asset.key)
    with rasterio.open(path) as src:
        assert src.crs.to_epsg() == 32631
        assert src.res == (expect.res, expect.res)
        # The box is 2.1 x 2 km: the grid covers it, give or take a pixel.
        assert abs(src.width * src.res[0] - 2100) <= 2 * expect.res + 60
        assert abs(src.height * src.res[0] - 2000) <= 2 * expect.res + 60
        assert src.count == expect.bands
        values = src.read(masked=True).astype("float64").filled(np.nan)
        finite = np.isfinite(values)
        assert finite.mean() > 0.9, f"{1 - finite.mean():.0%} of the pixels have no value"
        assert expect.low <= np.nanmin(values) and np.nanmax(values) <= expect.high
        assert np.nanstd(values) > 0, "a constant image"
        if expect.check is not None:
            expect.check(values, src)
