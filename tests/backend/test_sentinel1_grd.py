"""SENTINEL1_GRD and ``sar_backscatter`` end to end: the official client against the local backend in
real mode, and the Sentinel-1 UDPs of the ESA APEx catalogue validated and run as batch jobs on a
2 km tile near Antwerp, each result checked against a numpy reference computed from the provider.

``sentinel1_stats`` runs ``apply_dimension`` into the existing ``bands`` dimension with two labels
(Copernicus Data Space gives bands x outputs, as the engine does); its graph also runs on VV alone.
``sentinel1_changedetection`` needs ``run_udf`` on a list (its temporal extent): not run here.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import openeo
import pytest
import rasterio
from openeo.rest.job import BatchJob
from rasterio.errors import NotGeoreferencedWarning

from openeo_upscale.backend import BackendConfig, LocalBackend
from openeo_upscale.backend.config import Mode
from openeo_upscale.backend.data import sentinel1, worldcover
from openeo_upscale.backend.engine import cubes_sar
from tests.backend.client_helpers import wait_for_status
from tests.backend.test_catalogue_validation import CATALOGUE, refusals, udp_call
from tests.conftest import require_shared

EPSG = 32631
BOX = {"west": 4.32, "south": 51.17, "east": 4.348, "north": 51.188}
"""About 2 x 2 km west of Antwerp: river, town, fields and some forest."""
PERIOD = ["2023-05-01", "2023-07-01"]
JOB_SECONDS = 120.0
"""Deadline of one batch job (they take 3-10 s on two cores)."""
S1_UDPS = ("sentinel1_stats", "sentinel1_soil_moisture", "urban_areas")
Bounds = tuple[float, float, float, float]


@pytest.fixture(scope="module")
def connection(tmp_path_factory: pytest.TempPathFactory) -> Iterator[openeo.Connection]:
    config = BackendConfig(state_dir=tmp_path_factory.mktemp("backend"),
                           udp_dirs=(require_shared(*CATALOGUE),), mode=Mode.REAL)
    with LocalBackend(config) as backend:
        yield openeo.connect(backend.url).authenticate_basic("demo", "demo")


def finish(job: BatchJob, folder: Path) -> list[Path]:
    """Start `job`, wait until it ends (at most `JOB_SECONDS`) and download its assets."""
    job.start()
    status = wait_for_status(job, "finished", "error", "canceled", timeout=JOB_SECONDS)
    errors = [entry["message"] for entry in job.logs() if entry.get("level") == "error"]
    assert status == "finished", errors
    folder.mkdir(parents=True, exist_ok=True)
    return [asset.download(folder / asset.key) for asset in job.get_results().get_assets()]


def read(path: Path) -> tuple[np.ndarray, list[str], Bounds]:
    """(bands, y, x) values, band names and bounds of a GeoTIFF on the 10 m grid of EPSG 32631."""
    with rasterio.open(path) as src:
        assert src.crs.to_epsg() == EPSG and src.res == (10.0, 10.0)
        west, south, east, north = src.bounds
        return src.read().astype(np.float64), list(src.descriptions), (west, south, east, north)


def sigma0(bounds: Bounds, period: list[str], bands: list[str]) -> tuple[np.ndarray, list[Any]]:
    """The provider's sigma0 (t, bands, y, x) as float64 and its scenes."""
    scenes = sentinel1.acquisitions(EPSG, bounds, *period)
    cube = sentinel1.load(EPSG, bounds, [s.date for s in scenes], bands)
    return cube.values.astype(np.float64), scenes


def land_cover(bounds: Bounds) -> np.ndarray:
    return worldcover.load(EPSG, bounds, [worldcover.DATE], ["MAP"]).values[0, 0]


def udp_path(name: str) -> Path:
    return require_shared(*CATALOGUE, f"{name}.json")


# ----- the collection ------------------------------------------------------------------------------


def test_the_client_reads_the_collection(connection: openeo.Connection) -> None:
    assert "SENTINEL1_GRD" in connection.list_collection_ids()
    described = connection.describe_collection("SENTINEL1_GRD")
    summaries = described["summaries"]
    assert summaries["sat:orbit_state"] == ["ascending", "descending"]
    assert summaries["sar:instrument_mode"] == ["IW"] and summaries["sar:polarizations"] == ["VV", "VH"]
    assert {"sentinel-1a", "sentinel-1b"} <= set(summaries["platform"])
    assert [b["name"] for b in summaries["sar:bands"]] == ["VV", "VH"]
    dims = described["cube:dimensions"]
    assert set(dims) == {"x", "y", "t", "bands"} and dims["bands"]["values"] == ["VV", "VH"]
    assert dims["t"]["extent"][0].startswith(sentinel1.FIRST_DATE.isoformat())
    cube = connection.load_collection("SENTINEL1_GRD", spatial_extent=BOX, temporal_extent=PERIOD,
                                      bands=["VH"])
    assert cube.metadata is not None and cube.metadata.band_names == ["VH"]
    assert [d.name for d in cube.metadata.spatial_dimensions] == ["x", "y"]
    everything = connection.load_collection("SENTINEL1_GRD").metadata
    assert everything is not None and everything.band_names == ["VV", "VH"]
    assert connection.validate_process_graph(cube.sar_backscatter().save_result(format="GTiff")) == []


def test_processes_describes_sar_backscatter_with_cdse_defaults(connection: openeo.Connection) -> None:
    spec = connection.describe_process("sar_backscatter")
    assert spec["experimental"] is True and spec["returns"]["schema"]["subtype"] == "datacube"
    defaults = {p["name"]: p.get("default") for p in spec["parameters"]}
    assert defaults == {"data": None, **cubes_sar.DEFAULTS}
    (coefficient,) = [p for p in spec["parameters"] if p["name"] == "coefficient"]
    assert coefficient["schema"][0]["enum"] == list(cubes_sar.COEFFICIENTS)


def test_a_backscatter_job_gives_gamma0_means_per_class(connection: openeo.Connection,
                                                        tmp_path: Path) -> None:
    """Ascending scenes only, gamma0-terrain with the incidence angle band, a temporal mean."""
    cube = connection.load_collection("SENTINEL1_GRD", spatial_extent=BOX, temporal_extent=PERIOD,
                                      bands=["VV", "VH"],
                                      properties={"sat:orbit_state": lambda value: value == "ascending"})
    cube = cube.sar_backscatter(coefficient="gamma0-terrain", local_incidence_angle=True)
    job = cube.reduce_dimension("t", reducer="mean").save_result(format="GTiff").create_job(title="s1")
    (path,) = finish(job, tmp_path)
    got, names, bounds = read(path)
    assert names == ["VV", "VH", "local_incidence_angle"]

    data, scenes = sigma0(bounds, PERIOD, ["VV", "VH"])
    ascending = [i for i, s in enumerate(scenes) if s.orbit_state == "ascending"]
    assert 0 < len(ascending) < len(scenes)
    theta = np.radians(np.stack([sentinel1.incidence_angle(EPSG, np.arange(bounds[0] + 5, bounds[2], 10),
                                                           scenes[i].date) for i in ascending]))
    gamma0 = data[ascending] / np.cos(theta)[:, None, None, :]
    np.testing.assert_allclose(got[:2], gamma0.mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(got[2], np.broadcast_to(np.degrees(theta).mean(axis=0), got[2].shape),
                               rtol=1e-5)

    db = 10 * np.log10(got[:2])
    codes = land_cover(bounds)
    means = {int(c): (float(db[0][codes == c].mean()), float(db[1][codes == c].mean()))
             for c in np.unique(codes) if (codes == c).sum() >= 200}
    plausible = {80: (-26.0, -15.0), 50: (-5.0, 1.0), 10: (-9.0, -4.0), 40: (-13.0, -6.0), 30: (-12.0, -6.0)}
    checked = [c for c in means if c in plausible]
    assert len(checked) >= 3, means
    for code in checked:
        low, high = plausible[code]
        assert low < means[code][0] < high, (code, means[code])
    assert all(vh < vv - 4.0 for vv, vh in means.values()), means
    if {80, 40, 50} <= set(means):
        assert means[80][0] < means[40][0] < means[50][0], means


# ----- the catalogue's Sentinel-1 UDPs -------------------------------------------------------------


@pytest.mark.parametrize("name", S1_UDPS)
def test_the_catalogue_udps_validate(connection: openeo.Connection, name: str) -> None:
    assert refusals(connection, udp_path(name)) == []


def test_change_detection_is_refused_for_nothing_sentinel1(connection: openeo.Connection) -> None:
    """``sentinel1_changedetection`` also needs ``run_udf``; nothing it says may be about S1 data."""
    messages = refusals(connection, udp_path("sentinel1_changedetection"))
    assert not [m for m in messages if "SENTINEL1_GRD" in m or "sar_backscatter" in m], messages


def test_soil_moisture_runs_and_matches_its_formula(connection: openeo.Connection, tmp_path: Path) -> None:
    reference_period, current_period = ["2022-01-01", "2023-01-01"], ["2023-06-01", "2023-06-15"]
    process_id, namespace, _ = udp_call(udp_path("sentinel1_soil_moisture"))
    cube = connection.datacube_from_process(process_id, namespace=namespace, spatial_extent=BOX,
                                            reference_temporal_extent=reference_period,
                                            current_temporal_extent=current_period)
    (path,) = finish(cube.save_result(format="GTiff").create_job(title="ssm"), tmp_path)
    got, names, bounds = read(path)
    assert names == ["SSM"]

    reference = sigma0(bounds, reference_period, ["VV"])[0][:, 0]
    current = sigma0(bounds, current_period, ["VV"])[0][-1, 0]
    assert reference.shape[0] > 50
    low, high = reference.min(axis=0), reference.max(axis=0)
    mean_db = 10 * np.log10(reference.mean(axis=0))
    masked = (mean_db > -6) | (mean_db < -17)
    expected = np.where(masked, np.nan, (current - low) / (high - low))
    assert (np.isnan(got[0]) == masked).mean() > 0.999
    both = ~np.isnan(got[0]) & ~masked
    np.testing.assert_allclose(got[0][both], expected[both], rtol=1e-4, atol=1e-6)
    valid = got[0][both]
    assert valid.size > 0.3 * got[0].size and ((valid >= 0) & (valid <= 1)).mean() > 0.9
    codes = land_cover(bounds)
    if (codes == 80).sum() >= 100:
        assert np.isnan(got[0][codes == 80]).mean() > 0.95  # permanent water is masked
    fields = np.isin(codes, [30, 40])
    assert np.isnan(got[0][fields]).mean() < 0.05  # fields are not


def stats_reference(bounds: Bounds) -> dict[str, np.ndarray]:
    data = sigma0(bounds, PERIOD, ["VH", "VV"])[0]
    out: dict[str, np.ndarray] = {}
    for k, band in enumerate(("VH", "VV")):
        series = data[:, k]
        out |= {f"{band}_min": series.min(0), f"{band}_max": series.max(0), f"{band}_mean": series.mean(0),
                f"{band}_sd": series.std(0, ddof=1)}
        out |= {f"{band}_q{round(100 * q)}": np.quantile(series, q, axis=0) for q in (0.1, 0.5, 0.9)}
    return out


def test_sentinel1_stats_runs_and_matches_numpy(connection: openeo.Connection, tmp_path: Path) -> None:
    process_id, namespace, _ = udp_call(udp_path("sentinel1_stats"))
    cube = connection.datacube_from_process(process_id, namespace=namespace, spatial_extent=BOX,
                                            temporal_extent=PERIOD)
    (path,) = finish(cube.save_result(format="GTiff").create_job(title="stats"), tmp_path)
    got, names, bounds = read(path)
    expected = stats_reference(bounds)
    assert sorted(names) == sorted(expected)
    for i, name in enumerate(names):
        np.testing.assert_allclose(got[i], expected[name], rtol=1e-4, err_msg=name)


def test_sentinel1_stats_of_one_band_runs_and_matches_numpy(connection: openeo.Connection,
                                                            tmp_path: Path) -> None:
    """The UDP's graph on VV alone (so the target dimension has one label), as a user process."""
    udp = json.loads(udp_path("sentinel1_stats").read_text())
    graph = udp["process_graph"]
    graph["loadcollection1"]["arguments"]["bands"] = ["VV"]
    rename = graph["renamelabels1"]["arguments"]
    rename["target"] = [label for label in rename["target"] if label.startswith("VV")]
    connection.save_user_defined_process("sentinel1_stats_vv", graph, parameters=udp["parameters"])
    cube = connection.datacube_from_process("sentinel1_stats_vv", namespace="user", spatial_extent=BOX,
                                            temporal_extent=PERIOD)
    (path,) = finish(cube.save_result(format="GTiff").create_job(title="stats-vv"), tmp_path)
    got, names, bounds = read(path)
    expected = stats_reference(bounds)
    assert names == ["VV_min", "VV_max", "VV_mean", "VV_sd", "VV_q10", "VV_q50", "VV_q90"]
    for i, name in enumerate(names):
        np.testing.assert_allclose(got[i], expected[name], rtol=1e-5, err_msg=name)
    assert (got[0] <= got[4]).all() and (got[4] <= got[5]).all() and (got[5] <= got[6]).all()
    assert (got[6] <= got[1]).all() and (got[3] > 0).all()


def urban_reference(bounds: Bounds, period: list[str]) -> np.ndarray:
    """The urban_areas picture: red where VH > 0.5 / 5.5, green VV, blue 8 VH, scaled 0-1 to 0-255."""
    first = sigma0(bounds, period, ["VH", "VV"])[0][0]
    vh, vv = first
    rgb = np.stack([np.where(vh * 5.5 > 0.5, 1.0, 0.0), vv, vh * 8])
    return np.clip(rgb, 0.0, 1.0) * 255


def test_urban_areas_runs_unchanged_and_shows_the_town_in_red(connection: openeo.Connection,
                                                             tmp_path: Path) -> None:
    """By namespace as it is (a PNG), and as a user-defined process saving a GTiff instead, which
    gives the grid to check the pixels against numpy; the PNG is that GeoTIFF rounded."""
    period = ["2019-05-26", "2019-06-01"]  # the UDP's default: two scenes
    process_id, namespace, _ = udp_call(udp_path("urban_areas"))
    cube = connection.datacube_from_process(process_id, namespace=namespace, bounding_box=BOX, time=period)
    # The UDP saves its result itself: no save_result of the client's on top.
    (png,) = finish(cube.create_job(title="urban", auto_add_save_result=False), tmp_path / "png")
    assert png.suffix == ".png"

    udp = json.loads(udp_path("urban_areas").read_text())
    graph = udp["process_graph"]
    (save,) = [n for n in graph.values() if n["process_id"] == "save_result"]
    assert save["arguments"]["format"] == "PNG"
    save["arguments"]["format"] = "GTiff"
    connection.save_user_defined_process("urban_areas_gtiff", graph, parameters=udp["parameters"])
    cube = connection.datacube_from_process("urban_areas_gtiff", namespace="user", bounding_box=BOX,
                                            time=period)
    (tif,) = finish(cube.create_job(title="urban-gtiff", auto_add_save_result=False), tmp_path / "tif")
    got, _, bounds = read(tif)
    assert got.shape[0] == 3
    np.testing.assert_allclose(got, urban_reference(bounds, period), rtol=1e-5, atol=1e-4)
    codes = land_cover(bounds)
    red = got[0] == 255
    assert set(np.unique(got[0]).tolist()) <= {0.0, 255.0}
    if (codes == 50).sum() >= 200:
        assert red[codes == 50].mean() > 2 * red[codes != 50].mean(), red.mean()

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)  # a picture has no georeference
        with rasterio.open(png) as src:
            picture = src.read()
    assert picture.dtype == np.uint8
    np.testing.assert_array_equal(picture, np.rint(got).astype(np.uint8))
