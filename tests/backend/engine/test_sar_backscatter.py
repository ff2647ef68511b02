"""``sar_backscatter`` on GRD cubes: the coefficients against a numpy reference, the extra bands,
noise removal, the refusals; and ``load_collection`` filtering Sentinel-1 scenes by orbit."""

from __future__ import annotations

from datetime import date
from typing import Any

import numpy as np
import pytest
import xarray as xr

from openeo_upscale.backend.data import sentinel1, sentinel2
from openeo_upscale.backend.engine import Evaluator, ProcessGraphError
from tests.backend.engine.helpers import node, p, run

EPSG = 32631
BOUNDS = (596_000.0, 5_668_000.0, 596_400.0, 5_668_300.0)
SCENES = sentinel1.acquisitions(EPSG, BOUNDS, "2023-05-01", "2023-07-01")
DAYS = [s.date for s in SCENES]


def grd_cube(bands: tuple[str, ...] = ("VV", "VH"), days: list[date] | None = None) -> xr.DataArray:
    """A GRD-shaped cube of random sigma0 on a 10 m UTM grid, with one nodata (0) pixel."""
    days = DAYS if days is None else days
    xs = sentinel2.pixel_axis(BOUNDS[0], BOUNDS[2], 10, False)
    ys = sentinel2.pixel_axis(BOUNDS[1], BOUNDS[3], 10, True)
    shape = (len(days), len(bands), ys.size, xs.size)
    values = np.random.default_rng(7).uniform(0.001, 0.5, shape).astype(np.float32)
    values[0, 0, 3, 4] = 0.0
    return sentinel2.cube(values, days, bands, ys, xs, epsg=EPSG, res=10.0, name="SENTINEL1_GRD")


def angles(cube: xr.DataArray) -> np.ndarray:
    """Reference incidence angles (t, x) in radians."""
    return np.radians(np.stack([sentinel1.incidence_angle(EPSG, cube.x.values, d) for d in DAYS]))


def test_coefficients_match_a_numpy_reference() -> None:
    cube = grd_cube()
    sigma0 = cube.values.astype(np.float64)
    sigma0[sigma0 == 0] = np.nan
    theta = angles(cube)[:, None, None, :]
    assert len(DAYS) >= 5 and {s.orbit_state for s in SCENES} == {"ascending", "descending"}
    expected = {
        "sigma0-ellipsoid": sigma0, "sigma0-terrain": sigma0,
        "gamma0-ellipsoid": sigma0 / np.cos(theta), "gamma0-terrain": sigma0 / np.cos(theta),
        "beta0": sigma0 / np.sin(theta),
    }
    for coefficient, reference in expected.items():
        got = run("sar_backscatter", data=cube, coefficient=coefficient)
        assert got.dtype == np.float32 and got.dims == cube.dims and list(got.bands.values) == ["VV", "VH"]
        assert got.attrs["crs"] == EPSG and got.attrs["sar:coefficient"] == coefficient
        np.testing.assert_allclose(got.values, reference.astype(np.float32), rtol=1e-6, equal_nan=True)
        assert np.isnan(got.values[0, 0, 3, 4]) and np.isfinite(got.values[0, 1, 3, 4])
    # The default is gamma0-terrain; gamma0 / beta0 is tan(theta), at 30-46 degrees.
    default = run("sar_backscatter", data=cube)
    np.testing.assert_array_equal(default.values, run("sar_backscatter", data=cube,
                                                      coefficient="gamma0-terrain").values)
    ratio = default.values / run("sar_backscatter", data=cube, coefficient="beta0").values
    assert np.nanmin(ratio) > np.tan(np.radians(29.99)) and np.nanmax(ratio) < np.tan(np.radians(46.01))


def test_extra_bands_come_after_the_polarisations_in_the_specifications_order() -> None:
    cube = grd_cube(("VV",))
    got = run("sar_backscatter", data=cube, coefficient="sigma0-ellipsoid", mask=True, contributing_area=True,
              local_incidence_angle=True, ellipsoid_incidence_angle=True, elevation_model="COPERNICUS_30",
              options={"implementation_version": "2"})
    assert list(got.bands.values) == ["VV", "mask", "contributing_area", "local_incidence_angle",
                                      "ellipsoid_incidence_angle"]
    mask = got.sel(bands="mask").values
    assert np.isnan(mask[0, 3, 4]) and np.nansum(mask == 1) == mask.size - 1
    assert (got.sel(bands="contributing_area").values == 100.0).all()
    theta = np.degrees(angles(cube))
    local = got.sel(bands="local_incidence_angle").values
    np.testing.assert_allclose(local, np.broadcast_to(theta[:, None, :], local.shape), rtol=1e-6)
    np.testing.assert_array_equal(local, got.sel(bands="ellipsoid_incidence_angle").values)
    # Only what is asked for.
    only = run("sar_backscatter", data=cube, local_incidence_angle=True)
    assert list(only.bands.values) == ["VV", "local_incidence_angle"]


def test_noise_removal_off_adds_the_noise_floor() -> None:
    cube = grd_cube()
    kept = run("sar_backscatter", data=cube, coefficient="sigma0-ellipsoid", noise_removal=False)
    expected = cube.values.astype(np.float64) + sentinel1.NESZ
    expected[0, 0, 3, 4] = np.nan
    np.testing.assert_allclose(kept.values, expected.astype(np.float32), rtol=1e-6, equal_nan=True)


@pytest.mark.parametrize(("arguments", "message"), [
    ({"coefficient": "sigma1"}, "unknown coefficient 'sigma1'"),
    ({"coefficient": None}, "non-normalised"),
    ({"mask": "yes"}, "'mask' must be true or false"),
    ({"noise_removal": 1}, "'noise_removal' must be true or false"),
    ({"elevation_model": 30}, "elevation_model"),
    ({"options": [1]}, "'options' must be an object"),
])
def test_bad_arguments_are_refused(arguments: dict[str, Any], message: str) -> None:
    with pytest.raises(ProcessGraphError, match=message) as caught:
        run("sar_backscatter", data=grd_cube(), **arguments)
    assert caught.value.code == "ProcessParameterInvalid"


def test_only_unconverted_grd_cubes_of_acquisition_days_are_accepted() -> None:
    with pytest.raises(ProcessGraphError, match=r"needs Sentinel-1 GRD data .* not bands \['B04'\]"):
        run("sar_backscatter", data=grd_cube(("VV", "B04")))
    with pytest.raises(ProcessGraphError, match="dimensions t, bands, y and x"):
        run("sar_backscatter", data=grd_cube().isel(t=0, drop=True))
    with pytest.raises(ProcessGraphError, match="no Sentinel-1 acquisition geometry for 2023-06-02"):
        run("sar_backscatter", data=grd_cube(days=[date(2023, 6, 2)]))
    with pytest.raises(ProcessGraphError, match="must be a raster data cube"):
        run("sar_backscatter", data=[1, 2])
    twice = {
        "a": node("sar_backscatter", data=p("cube"), coefficient="gamma0-terrain"),
        "b": node("sar_backscatter", data={"from_node": "a"}, result=True),
    }
    with pytest.raises(ProcessGraphError, match="already holds gamma0-terrain backscatter"):
        Evaluator().evaluate(twice, {"cube": grd_cube()})


def test_load_collection_filters_scenes_by_orbit_state_and_relative_orbit() -> None:
    box = {"west": 4.40, "south": 51.15, "east": 4.403, "north": 51.152}
    period = ["2023-06-01", "2023-07-01"]

    def load(**properties: Any) -> xr.DataArray:
        graph = {"l": node("load_collection", id="SENTINEL1_GRD", spatial_extent=box, temporal_extent=period,
                           bands=["VV", "VH"], properties=properties or None, result=True)}
        cube: xr.DataArray = Evaluator().evaluate(graph)
        return cube

    def days(cube: xr.DataArray) -> list[date]:
        return [np.datetime64(t, "D").astype(date) for t in cube.t.values]

    everything = load()
    assert everything.dtype == np.float32 and list(everything.bands.values) == ["VV", "VH"]
    assert (everything.values > 0).all()
    ascending = load(**{"sat:orbit_state": {"process_graph": {"e": node("eq", x=p("value"), y="ascending",
                                                                         result=True)}}})
    assert 0 < ascending.sizes["t"] < everything.sizes["t"]
    assert {sentinel1.orbit_state(32631, d) for d in days(ascending)} == {"ascending"}
    orbit = sentinel1.acquisitions(32631, (596_000.0, 5_668_000.0, 596_200.0, 5_668_200.0), *period)
    descending = next(s.relative_orbit for s in orbit if s.orbit_state == "descending")
    by_orbit = load(**{"sat:relative_orbit": {"process_graph": {"e": node("eq", x=p("value"), y=descending,
                                                                           result=True)}}})
    assert by_orbit.sizes["t"] == everything.sizes["t"] - ascending.sizes["t"]
    xr.testing.assert_identical(everything.sel(t=ascending.t), ascending)
    dual = load(**{"sar:polarizations": {"process_graph": {"c": node("array_contains", data=p("value"),
                                                                     value="VH", result=True)}},
                   "sar:instrument_mode": {"process_graph": {"e": node("eq", x=p("value"), y="IW",
                                                                       result=True)}}})
    assert dual.sizes["t"] == everything.sizes["t"]
    # After the end of Sentinel-1B, Sentinel-1A alone.
    none = load(platform={"process_graph": {"e": node("eq", x=p("value"), y="sentinel-1b", result=True)}})
    assert none.sizes["t"] == 0
