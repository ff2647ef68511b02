"""The synthetic Sentinel-2 L2A collection: determinism, seamless tiles and UTM zone edges, resampling,
revisit, clouds and composites, SCL consistency, seasons and crop calendars."""

from __future__ import annotations

import itertools
from datetime import date, timedelta

import numpy as np
import pytest
import xarray as xr
from pyproj import Transformer

from openeo_upscale.backend.collections import COLLECTIONS
from openeo_upscale.backend.data import landscape
from openeo_upscale.backend.data.landscape import Cover, Crop
from openeo_upscale.backend.data.sentinel2 import (
    ANGLE_BANDS,
    BANDS,
    CLOUD_CLASSES,
    EPOCH,
    FIRST_DATE,
    LAND_RES,
    REFLECTANCE_BANDS,
    SCL_CLASSES,
    SCL_PRODUCED,
    Scene,
    acquisitions,
    cloud_cover,
    is_acquisition,
    load,
)

EPSG = 32631  # UTM 31N, Antwerp
# A 5 km tile north-east of Antwerp with about 14 % water (a lake and rivers), towns, fields and
# some forest (found once by scanning the zone).
TILE = (632000.0, 5711000.0, 637000.0, 5716000.0)
VISIBLE = ["B02", "B03", "B04"]


def dates(start: str, end: str, bounds: tuple[float, float, float, float] = TILE) -> list[date]:
    return [s.date for s in acquisitions(EPSG, bounds, start, end)]


@pytest.fixture(scope="module")
def year() -> xr.DataArray:
    """A year of scenes over TILE at 20 m, the bands the consistency checks need."""
    return load(EPSG, TILE, dates("2022-01-01", "2023-01-01"), ["B02", "B03", "B04", "B08", "B11", "SCL"],
                resolution=20)


def band(cube: xr.DataArray, name: str) -> np.ndarray:
    return cube.sel(bands=name).values.astype(np.float64)


# ----- grid and values ---------------------------------------------------------------------------


def test_cube_layout_and_grid_snapped_to_the_resolution() -> None:
    bounds = (614003.0, 5695011.0, 614497.0, 5695290.0)
    [day] = dates("2022-07-01", "2022-07-05")
    cube = load(EPSG, bounds, [day], ["B04", "B8A", "SCL"])
    assert cube.dims == ("t", "bands", "y", "x")
    assert cube.dtype == np.float32
    assert cube.attrs == {"crs": EPSG, "resolution": 10.0, "nodata": 0}
    assert list(cube.bands.values) == ["B04", "B8A", "SCL"]
    assert cube.t.dtype == np.dtype("datetime64[ns]") and cube.t.values[0] == np.datetime64(day.isoformat())
    # Pixel centres of the 10 m grid covering the bounds: 614000..614500, 5695010..5695290.
    assert cube.x.values[0] == 614005.0 and cube.x.values[-1] == 614495.0 and cube.sizes["x"] == 50
    assert cube.y.values[0] == 5695285.0 and cube.y.values[-1] == 5695015.0 and cube.sizes["y"] == 28
    assert np.all(np.diff(cube.y.values) == -10.0)
    assert load(EPSG, bounds, [day], ["B8A", "B01"]).attrs["resolution"] == 20.0
    assert load(EPSG, bounds, [day], ["B01"], resolution=30).sizes["x"] == 18  # 613980..614520


def test_two_loads_are_bit_identical() -> None:
    days = dates("2022-05-01", "2022-06-01")
    first = load(EPSG, TILE, days, ["B04", "B08", "B09", "SCL"])
    second = load(EPSG, TILE, days, ["B04", "B08", "B09", "SCL"])
    assert first.values.tobytes() == second.values.tobytes()
    xr.testing.assert_identical(first, second)


def test_reflectances_are_integer_dn_within_range_and_never_nodata(year: xr.DataArray) -> None:
    reflectance = year.sel(bands=[b for b in year.bands.values if b != "SCL"]).values
    assert reflectance.min() >= 1 and reflectance.max() <= 10000
    assert np.array_equal(reflectance, np.rint(reflectance))
    [day] = dates("2022-01-10", "2022-01-15")
    every = load(EPSG, (614000.0, 5695000.0, 615000.0, 5696000.0), [day],
                 [b for b in BANDS if b not in ANGLE_BANDS]).values
    assert every.min() >= 1 and every.max() <= 10000


def test_angle_bands_are_smooth_functions_of_place_and_date() -> None:
    """The sun and view angles the catalogue's FAPAR and LAI networks read: plausible degrees,
    the sun higher in June than in December, tiles agreeing where they overlap."""
    june, december = dates("2022-06-20", "2022-06-25")[0], dates("2022-12-20", "2022-12-25")[0]
    bounds = (614000.0, 5695000.0, 616000.0, 5697000.0)
    cube = load(EPSG, bounds, [june, december], list(ANGLE_BANDS), resolution=20)
    sun_zenith, sun_azimuth = (cube.sel(bands=b).values for b in ("sunZenithAngles", "sunAzimuthAngles"))
    view_zenith, view_azimuth = (cube.sel(bands=b).values for b in ("viewZenithMean", "viewAzimuthMean"))
    assert 25 < sun_zenith[0].mean() < 40 and 70 < sun_zenith[1].mean() < 85  # 51 N: June and December
    assert np.all((sun_azimuth > 140) & (sun_azimuth < 160))
    assert np.all((view_zenith >= 0) & (view_zenith <= 12)) and set(np.unique(view_azimuth)) <= {103.0, 283.0}
    shifted = load(EPSG, (615000.0, 5696000.0, 617000.0, 5698000.0), [june], list(ANGLE_BANDS), resolution=20)
    overlap = cube.isel(t=[0]).sel(x=shifted.x[shifted.x < 616000], y=shifted.y[shifted.y < 5697000])
    np.testing.assert_array_equal(overlap.values, shifted.sel(x=overlap.x, y=overlap.y).values)
    with_surface = load(EPSG, bounds, [june], ["B04", "viewZenithMean"], resolution=20)
    np.testing.assert_array_equal(with_surface.sel(bands="viewZenithMean").values, view_zenith[:1])


# ----- seamless tiles and resampling -------------------------------------------------------------


@pytest.mark.parametrize("band_names", [["B02", "B8A", "B09", "SCL"], ["B05", "SCL"]])
def test_overlapping_and_abutting_tiles_agree_with_one_big_load(band_names: list[str]) -> None:
    # Two tiles that overlap (x 2010..2990 from the west edge) and a third that abuts the first;
    # offsets not multiples of 60 m, so the 60 m band's pixels straddle the tile edges.
    x0, y0 = TILE[0], TILE[1]
    west = (x0, y0, x0 + 2990.0, y0 + 3000.0)
    east = (x0 + 2010.0, y0 + 1010.0, x0 + 5000.0, y0 + 4000.0)
    north = (x0, y0 + 3000.0, x0 + 2990.0, y0 + 5000.0)
    days = [d for d in dates("2022-04-01", "2022-07-01") if 30 < cloud_cover(EPSG, d) < 80][:3]
    resolution = min(BANDS[b] for b in band_names)
    union = load(EPSG, TILE, days, band_names, resolution)
    assert (union.sel(bands="SCL") == 3).any(), "the check should cover cloud shadows"
    for bounds in (west, east, north):
        tile = load(EPSG, bounds, days, band_names, resolution)
        xr.testing.assert_identical(tile, union.sel(x=tile.x, y=tile.y))
    overlap = dict(x=slice(x0 + 2010.0, x0 + 2990.0), y=slice(y0 + 3000.0, y0 + 1010.0))
    a = load(EPSG, west, days, band_names, resolution).sel(overlap)
    b = load(EPSG, east, days, band_names, resolution).sel(overlap)
    assert a.sizes["x"] > 0 and a.values.tobytes() == b.values.tobytes()


def test_coarser_bands_are_upsampled_by_nearest_neighbour() -> None:
    days = dates("2022-06-01", "2022-06-20")
    bounds = (613980.0, 5694960.0, 616980.0, 5697960.0)  # multiples of 60 m
    native20 = load(EPSG, bounds, days, ["B05", "B11", "SCL"])
    native60 = load(EPSG, bounds, days, ["B01", "B09"])
    at10 = load(EPSG, bounds, days, ["B04", "B05", "B11", "SCL", "B01", "B09"])
    assert native20.attrs["resolution"] == 20 and native60.attrs["resolution"] == 60
    assert at10.attrs["resolution"] == 10
    up20 = native20.values.repeat(2, axis=2).repeat(2, axis=3)
    up60 = native60.values.repeat(6, axis=2).repeat(6, axis=3)
    assert np.array_equal(at10.sel(bands=["B05", "B11", "SCL"]).values, up20)
    assert np.array_equal(at10.sel(bands=["B01", "B09"]).values, up60)


def test_finer_bands_are_downsampled_by_the_pixel_holding_the_centre() -> None:
    days = dates("2022-06-01", "2022-06-10")
    at10 = load(EPSG, TILE, days, ["B04", "B08"])
    at20 = load(EPSG, TILE, days, ["B04", "B08"], resolution=20)
    # A 20 m centre lies on a 10 m pixel corner; it belongs to the pixel east and south of it.
    assert np.array_equal(at20.values, at10.values[:, :, 0::2, 1::2])


# ----- acquisitions and cloud cover --------------------------------------------------------------


def test_a_scene_every_five_days_from_the_collection_start() -> None:
    scenes = acquisitions(EPSG, TILE, "2022-01-01", "2023-01-01")
    assert all(isinstance(s, Scene) for s in scenes) and len(scenes) == 73
    assert {b.date - a.date for a, b in itertools.pairwise(scenes)} == {timedelta(days=5)}
    assert all((s.date - EPOCH).days % 5 == 0 and is_acquisition(s.date) for s in scenes)
    assert not is_acquisition(scenes[0].date + timedelta(days=1))
    assert acquisitions(EPSG, TILE, "2016-01-01", "2017-04-10")[0].date == date(2017, 3, 29) > FIRST_DATE
    assert acquisitions(EPSG, TILE, "2016-01-01", "2017-01-01") == []


def test_start_is_inclusive_and_end_exclusive() -> None:
    day = date(2022, 6, 11)
    assert is_acquisition(day)
    assert [s.date for s in acquisitions(EPSG, TILE, day, day + timedelta(days=1))] == [day]
    assert acquisitions(EPSG, TILE, day - timedelta(days=4), day) == []
    assert [s.date for s in acquisitions(EPSG, TILE, "2022-06-11T00:00:00Z", "2022-06-16")] == [day]
    assert acquisitions(EPSG, TILE, "2022-06-11T00:00:01Z", "2022-06-16") == []


def test_cloud_cover_is_per_scene_and_spans_clear_to_overcast() -> None:
    scenes = acquisitions(EPSG, TILE, "2022-03-01", "2022-07-01")
    covers = [s.cloud_cover for s in scenes]
    assert all(0.0 <= c <= 100.0 for c in covers)
    # A typical `eo:cloud_cover` filter keeps some scenes and drops others.
    assert sum(c <= 20 for c in covers) >= 4 and sum(c > 80 for c in covers) >= 2
    other_place = (TILE[0] + 100e3, TILE[1] - 200e3, TILE[2] + 100e3, TILE[3] - 200e3)
    assert acquisitions(EPSG, other_place, "2022-03-01", "2022-07-01") == scenes
    # One cloud field covers the Earth, so that scenes are seamless across zone edges: the
    # neighbouring zone has the same scenes with the same cover.
    assert [s.cloud_cover for s in acquisitions(32632, TILE, "2022-03-01", "2022-07-01")] == covers


def test_share_of_cloudy_pixels_matches_cloud_cover() -> None:
    # Cloud features are up to ~1.5 km across, so a 20 km square holds about two hundred
    # independent ones: the share of a scene's cloudy pixels may stray from the scene's
    # cloud cover by a binomial sd of up to sqrt(0.25 / 180) = 4 points. Over this year it
    # strays by 1.9 points on average and 6.6 at most, with a bias of -0.1.
    bounds = (600000.0, 5660000.0, 620000.0, 5680000.0)
    scenes = acquisitions(EPSG, bounds, "2022-01-01", "2023-01-01")
    scl = load(EPSG, bounds, [s.date for s in scenes], ["SCL"], resolution=100).values[:, 0]
    share = np.isin(scl, list(CLOUD_CLASSES)).mean(axis=(1, 2)) * 100
    error = share - np.array([s.cloud_cover for s in scenes])
    assert np.abs(error).mean() < 4.0 and np.abs(error).max() < 12.0
    assert abs(error.mean()) < 1.5  # no bias


# ----- SCL consistency and seasons ---------------------------------------------------------------


def test_scl_uses_the_produced_classes_and_all_of_them_occur(year: xr.DataArray) -> None:
    scl = band(year, "SCL")
    assert set(np.unique(scl).astype(int)) == SCL_PRODUCED
    assert set(SCL_CLASSES) >= SCL_PRODUCED and SCL_CLASSES[3] == "cloud_shadows"


def test_clouds_are_bright_in_all_bands(year: xr.DataArray) -> None:
    scl = band(year, "SCL")
    thick, cirrus = np.isin(scl, [8, 9]), scl == 10
    for name in [*VISIBLE, "B08", "B11"]:
        assert band(year, name)[thick].min() > 3000, name
    assert band(year, "B02")[cirrus].min() > 1500


def test_water_is_dark_in_nir_and_vegetation_green(year: xr.DataArray) -> None:
    scl = band(year, "SCL")
    red, nir = band(year, "B04"), band(year, "B08")
    assert (scl == 6).sum() > 10000 and nir[scl == 6].max() < 500
    ndvi = (nir - red) / (nir + red)
    assert ndvi[scl == 4].min() > 0.3
    assert np.median(ndvi[scl == 5]) < np.median(ndvi[scl == 4]) - 0.2


def test_cloud_shadows_are_dark(year: xr.DataArray) -> None:
    scl, nir = band(year, "SCL"), band(year, "B08")
    clear_land = np.isin(scl, [4, 5])
    assert (scl == 3).sum() > 10000
    assert nir[scl == 3].mean() < 0.6 * nir[clear_land].mean()


def test_snow_only_in_the_cold_season_bright_and_dark_in_swir(year: xr.DataArray) -> None:
    scl = band(year, "SCL")
    snow = scl == 11
    months = year.t.dt.month.values
    assert snow.any() and not snow[(months >= 4) & (months <= 10)].any()
    assert band(year, "B03")[snow].min() > 7000 and band(year, "B11")[snow].max() < 2000


def test_vegetation_is_greener_in_summer(year: xr.DataArray) -> None:
    months = year.t.dt.month.values
    scl, red, nir = band(year, "SCL"), band(year, "B04"), band(year, "B08")
    ndvi = (nir - red) / (nir + red)

    def mean_vegetation_ndvi(month: int) -> float:
        selected = (scl == 4) & (months == month)[:, None, None]
        return float(ndvi[selected].mean())

    assert mean_vegetation_ndvi(7) > mean_vegetation_ndvi(1) + 0.1


def test_seasons_are_reversed_south_of_the_equator() -> None:
    south, bounds = 32735, (500000.0, 7000000.0, 505000.0, 7005000.0)
    summer = [s.date for s in acquisitions(south, bounds, "2022-01-01", "2022-02-01")]
    winter = [s.date for s in acquisitions(south, bounds, "2022-07-01", "2022-08-01")]
    cube = load(south, bounds, summer + winter, ["B04", "B08", "SCL"], resolution=60)
    ndvi = (band(cube, "B08") - band(cube, "B04")) / (band(cube, "B08") + band(cube, "B04"))
    vegetated = band(cube, "SCL") == 4
    n = len(summer)
    assert ndvi[:n][vegetated[:n]].mean() > ndvi[n:][vegetated[n:]].mean() + 0.1


# ----- errors and metadata -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("epsg", "bounds", "days", "bands", "message"),
    [
        (4326, TILE, [date(2022, 6, 11)], ["B04"], "UTM"),
        (EPSG, (1.0, 0.0, 0.0, 1.0), [date(2022, 6, 11)], ["B04"], "west < east"),
        (EPSG, TILE, [date(2022, 6, 12)], ["B04"], "no SENTINEL2_L2A acquisition"),
        (EPSG, TILE, [date(2016, 6, 11)], ["B04"], "no SENTINEL2_L2A acquisition"),
        (EPSG, TILE, [date(2022, 6, 11)], ["B10"], "unknown bands"),
        (EPSG, TILE, [date(2022, 6, 11)], [], "no bands"),
    ],
)
def test_bad_requests_are_refused(epsg: int, bounds: tuple[float, float, float, float], days: list[date],
                                  bands: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        load(epsg, bounds, days, bands)


def test_collection_metadata_documents_the_generator() -> None:
    collection = COLLECTIONS["SENTINEL2_L2A"]
    eo_bands = collection["summaries"]["eo:bands"]
    assert {b["name"]: b["gsd"] for b in eo_bands} == dict(BANDS)
    assert collection["cube:dimensions"]["bands"]["values"] == list(BANDS)
    assert [b["name"] for b in eo_bands if b["name"] != "SCL" and b["name"] not in ANGLE_BANDS] == list(
        REFLECTANCE_BANDS)
    [scl] = [b for b in eo_bands if b["name"] == "SCL"]
    classes = {c["value"]: c for c in scl["classification:classes"]}
    assert {v: c["name"] for v, c in classes.items()} == dict(SCL_CLASSES)
    assert {v for v, c in classes.items() if "not produced" not in c["description"]} == SCL_PRODUCED
    assert collection["cube:dimensions"]["t"]["step"] == "P5D"
    assert collection["extent"]["temporal"]["interval"][0][0].startswith(FIRST_DATE.isoformat())


# ----- the land under the scenes -----------------------------------------------------------------


def land_of(cube: xr.DataArray) -> landscape.Land:
    """The map on the classification pixels of a 20 m cube's grid."""
    cx = np.floor(cube.x.values / LAND_RES).astype(np.int64)
    cy = np.floor(cube.y.values / LAND_RES).astype(np.int64)
    return landscape.land(EPSG, cx, cy)


def clear_median_ndvi(cube: xr.DataArray, where: np.ndarray, start: str, end: str) -> float:
    """Median NDVI over the pixels `where` that are clear land (SCL 4 or 5) on the dates in
    [start, end)."""
    days = (cube.t.values >= np.datetime64(start)) & (cube.t.values < np.datetime64(end))
    scl, red, nir = band(cube, "SCL")[days], band(cube, "B04")[days], band(cube, "B08")[days]
    chosen = np.isin(scl, [4, 5]) & where[None]
    assert chosen.sum() > 200, (start, end)
    return float(np.median(((nir - red) / (nir + red))[chosen]))


def test_crop_ndvi_follows_the_crop_calendar(year: xr.DataArray) -> None:
    land = land_of(year)
    maize = land.crop == Crop.MAIZE
    wheat = land.crop == Crop.WINTER_WHEAT
    # Maize: sown in May, green in summer, harvested in October.
    assert clear_median_ndvi(year, maize, "2022-03-20", "2022-05-10") < 0.3
    assert clear_median_ndvi(year, maize, "2022-07-15", "2022-09-01") > 0.75
    assert clear_median_ndvi(year, maize, "2022-10-25", "2022-12-01") < 0.3
    # Winter wheat: sown in October, green by May, harvested in late July.
    assert clear_median_ndvi(year, wheat, "2022-05-01", "2022-06-15") > 0.75
    assert clear_median_ndvi(year, wheat, "2022-08-10", "2022-10-01") < 0.3
    # Grassland and forest: seasonal, greener in summer.
    for cover in (Cover.GRASS, Cover.TREE):
        kind = land.cover == cover
        assert (clear_median_ndvi(year, kind, "2022-06-15", "2022-08-15")
                > clear_median_ndvi(year, kind, "2022-01-01", "2022-02-15") + 0.05), cover


def test_one_scene_is_visibly_cloudy_and_a_may_june_composite_is_clear() -> None:
    scenes = acquisitions(EPSG, TILE, "2023-05-01", "2023-07-01")
    scl = load(EPSG, TILE, [s.date for s in scenes], ["SCL"], resolution=60).values[:, 0]
    hidden = np.isin(scl, [3, *CLOUD_CLASSES])
    cloudiest = int(np.argmax([s.cloud_cover for s in scenes]))
    assert hidden[cloudiest].mean() > 0.5
    assert (~hidden).any(axis=0).mean() > 0.99  # almost every pixel is clear at least once


def test_scenes_are_seamless_across_a_utm_zone_edge() -> None:
    """The SCL of one scene loaded in zone 31 and in zone 32 over an area at 6 deg E: each
    zone-31 pixel (20 m) is paired with the zone-32 pixel nearest to its centre; the pairs
    agree (same SCL) as often as a zone-31 pixel agrees with its neighbour 20 m east, so the
    clouds, their shadows and the land continue across the edge (measured on 2023-05-02, 30 %
    cloudy: 97.9 % across, 94.3 % within)."""
    w, s, e, n = 5.97, 51.10, 6.03, 51.14
    scenes = acquisitions(32631, TILE, "2023-05-01", "2023-07-01")
    day = next(sc.date for sc in scenes if 30 < sc.cloud_cover < 70)
    west = load(32631, Transformer.from_crs(4326, 32631, always_xy=True).transform_bounds(w, s, e, n), [day],
                ["SCL"], resolution=20)
    east = load(32632, Transformer.from_crs(4326, 32632, always_xy=True).transform_bounds(w, s, e, n), [day],
                ["SCL"], resolution=20)
    xs, ys = np.meshgrid(west.x.values, west.y.values)
    lon, lat = Transformer.from_crs(32631, 4326, always_xy=True).transform(xs, ys)
    x32, y32 = Transformer.from_crs(4326, 32632, always_xy=True).transform(lon, lat)
    inside = (x32 > east.x.values[0]) & (x32 < east.x.values[-1]) & (y32 < east.y.values[0]) & (
        y32 > east.y.values[-1])
    col = np.rint((x32 - east.x.values[0]) / 20).astype(np.int64).clip(0, east.sizes["x"] - 1)
    row = np.rint((east.y.values[0] - y32) / 20).astype(np.int64).clip(0, east.sizes["y"] - 1)
    a, b = west.values[0, 0], east.values[0, 0][row, col]
    across = (a == b)[inside].mean()
    within = (a[:, :-1] == a[:, 1:]).mean()
    assert np.isin(a, list(CLOUD_CLASSES)).mean() > 0.1 and (a == 3).any()
    assert inside.mean() > 0.9 and across >= within > 0.8, (across, within)
