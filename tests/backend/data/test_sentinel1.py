"""The synthetic Sentinel-1 GRD: deterministic and seamless, dark water and bright towns, crops that
grow, speckle of the right statistics, the revisit and orbits of the two satellites.

Most tests put the provider on a designed land cover (stripes of one class each, a function of
the absolute pixel) in place of `worldcover.load`, whose map another module owns and may change;
one test runs on the real map."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from datetime import date, timedelta

import numpy as np
import pytest
import xarray as xr

from openeo_upscale.backend.data import sentinel1, sentinel2, worldcover

EPSG = 32631  # UTM 31N, Antwerp
X0, Y0 = 596_000.0, 5_668_000.0
STRIPE = 400
"""Metres of one class stripe of the designed land cover."""
STRIPES = (80, 40, 50, 10, 30, 60, 90, 123)
"""Classes of the stripes, west to east; 123 is a code the model does not know."""
SUMMER = ("2021-06-01", "2021-08-01")


def designed_map(epsg: int, bounds: tuple[float, float, float, float], dates: Sequence[date],
                 bands: Sequence[str], resolution: float | None = None) -> xr.DataArray:
    """`worldcover.load`'s contract on stripes: the class of a pixel is that of its 10 m pixel."""
    res = float(resolution or 10)
    xs = sentinel2.pixel_axis(bounds[0], bounds[2], res, False)
    ys = sentinel2.pixel_axis(bounds[1], bounds[3], res, True)
    native = np.floor(xs / 10) * 10
    codes = np.array(STRIPES, dtype=np.float32)[(native // STRIPE).astype(np.int64) % len(STRIPES)]
    values = np.broadcast_to(codes, (len(dates), len(bands), ys.size, xs.size)).copy()
    return sentinel2.cube(values, list(dates), list(bands), ys, xs, epsg=epsg, res=res, name="MAP")


@pytest.fixture
def stripes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(worldcover, "load", designed_map)


def box(width: float = 2 * STRIPE * len(STRIPES), height: float = 1000.0) -> sentinel1.Bounds:
    """A box at a multiple of the stripe pattern: stripe i covers [X0 + i * STRIPE, ...)."""
    x0 = math.floor(X0 / (STRIPE * len(STRIPES))) * STRIPE * len(STRIPES)
    return (x0, Y0, x0 + width, Y0 + height)


def days(start: str, end: str, **properties: str) -> list[date]:
    scenes = sentinel1.acquisitions(EPSG, box(), start, end)
    return [s.date for s in scenes if all(getattr(s, k) == v for k, v in properties.items())]


def class_means(cube: xr.DataArray, band: str) -> dict[int, float]:
    """Mean (over dates and pixels) per stripe class, in dB."""
    classes = np.array(STRIPES)[(np.floor(cube.x.values / 10) * 10 // STRIPE).astype(int) % len(STRIPES)]
    values = cube.sel(bands=band).values.astype(np.float64)
    return {code: 10 * math.log10(values[..., classes == code].mean()) for code in STRIPES}


# ----- orbits --------------------------------------------------------------------------------------


def test_revisit_alternates_orbits_every_three_days_and_every_twelve_per_satellite_after_1b() -> None:
    scenes = sentinel1.acquisitions(EPSG, box(), "2021-10-01", "2022-03-01")
    before = [s for s in scenes if s.date <= sentinel1.S1B_LAST]
    after = [s for s in scenes if s.date > sentinel1.S1B_LAST]
    assert len(before) > 20 and len(after) > 10
    gaps = {(b.date - a.date).days for a, b in itertools.pairwise(before)}
    assert gaps == {3}
    assert all(a.orbit_state != b.orbit_state for a, b in itertools.pairwise(before))
    assert {s.platform for s in before} == {"sentinel-1a", "sentinel-1b"}
    # Each track every 6 days with both satellites, every 12 with Sentinel-1A alone.
    for state in ("ascending", "descending"):
        track = [s.date for s in before if s.orbit_state == state]
        assert {(b - a).days for a, b in itertools.pairwise(track)} == {6}
        track = [s.date for s in after if s.orbit_state == state]
        assert {(b - a).days for a, b in itertools.pairwise(track)} == {12}
        assert len({s.relative_orbit for s in scenes if s.orbit_state == state}) == 1
    assert {s.platform for s in after} == {"sentinel-1a"}
    assert {(b.date - a.date).days for a, b in itertools.pairwise(after)} == {3, 9}
    first = scenes[0]
    assert (first.instrument_mode, first.polarizations, first.product_type) == ("IW", ("VV", "VH"), "GRD")
    assert 1 <= first.relative_orbit <= 175


def test_temporal_extent_is_half_open_and_starts_with_the_collection() -> None:
    scenes = sentinel1.acquisitions(EPSG, box(), "2021-06-01", "2021-07-01")
    first, last = scenes[0].date, scenes[-1].date
    assert sentinel1.acquisitions(EPSG, box(), first, last)[-1].date < last
    assert sentinel1.acquisitions(EPSG, box(), first.isoformat(), last + timedelta(days=1))[-1].date == last
    # A scene is at midnight: a start later that day leaves it out.
    noon = f"{first.isoformat()}T12:00:00Z"
    assert sentinel1.acquisitions(EPSG, box(), noon, first + timedelta(days=1)) == []
    assert sentinel1.acquisitions(EPSG, box(), "2015-01-01", "2016-09-26") == []
    # Other zones have their own days.
    other = sentinel1.acquisitions(32632, (500_000.0, 5_668_000.0, 501_000.0, 5_669_000.0), "2021-06-01",
                                   "2021-07-01")
    assert other and len(other) == len(scenes)


def test_load_refuses_days_without_a_scene_and_unknown_bands(stripes: None) -> None:
    day = days(*SUMMER)[0]
    with pytest.raises(ValueError, match="no SENTINEL1_GRD acquisition"):
        sentinel1.load(EPSG, box(), [day + timedelta(days=1)], ["VV"])
    with pytest.raises(ValueError, match="HH and HV are not produced"):
        sentinel1.load(EPSG, box(), [day], ["HH"])
    with pytest.raises(ValueError, match="UTM"):
        sentinel1.load(4326, box(), [day], ["VV"])


def test_incidence_angle_spans_the_swath_east_on_ascending_west_on_descending() -> None:
    ascending = days(*SUMMER, orbit_state="ascending")[0]
    descending = days(*SUMMER, orbit_state="descending")[0]
    xs = np.arange(166_005.0, 834_000.0, 10.0)
    for day, sign in ((ascending, 1), (descending, -1)):
        theta = sentinel1.incidence_angle(EPSG, xs, day)
        assert theta.min() >= 30.0 and theta.max() <= 46.0 and theta.max() - theta.min() > 15.9
        steps = np.sign(np.diff(theta))
        assert (steps == sign).mean() > 0.99  # monotonic but at the one or two swath seams
    # A point takes the angle of its 10 m pixel's centre.
    np.testing.assert_array_equal(sentinel1.incidence_angle(EPSG, [600_001.0, 600_009.0], ascending),
                                  sentinel1.incidence_angle(EPSG, [600_005.0, 600_005.0], ascending))


# ----- pixels --------------------------------------------------------------------------------------


def test_reruns_are_bit_identical_and_tiles_share_pixels_bit_for_bit(stripes: None) -> None:
    dates = days(*SUMMER)[:4]
    w, s, e, n = box()
    whole = sentinel1.load(EPSG, (w, s, e, n), dates, ["VV", "VH"])
    assert whole.dtype == np.float32 and whole.dims == ("t", "bands", "y", "x")
    assert sentinel1.load(EPSG, (w, s, e, n), dates, ["VV", "VH"]).values.tobytes() == whole.values.tobytes()
    # An overlapping tile, offset by an odd number of pixels, and the bands in another order.
    other = sentinel1.load(EPSG, (w + 1230, s + 370, e + 500, n + 500), dates, ["VH", "VV"])
    shared_x = np.intersect1d(whole.x.values, other.x.values)
    shared_y = np.intersect1d(whole.y.values, other.y.values)
    assert shared_x.size > 100 and shared_y.size > 50
    a = whole.sel(x=shared_x, y=shared_y, bands=["VV", "VH"]).values
    b = other.sel(x=shared_x, y=shared_y, bands=["VV", "VH"]).values
    assert a.tobytes() == b.tobytes()
    # A coarser load takes the 10 m pixel containing each centre.
    coarse = sentinel1.load(EPSG, (w, s, e, n), dates, ["VV"], resolution=30)
    fine = sentinel1.load(EPSG, (w - 30, s - 30, e + 30, n + 30), dates, ["VV"], resolution=10)
    np.testing.assert_array_equal(
        coarse.values, fine.sel(x=np.floor(coarse.x.values / 10) * 10 + 5,
                                y=np.floor(coarse.y.values / 10) * 10 + 5).values)


def test_water_is_darker_than_crops_darker_than_towns_and_vh_below_vv(stripes: None) -> None:
    cube = sentinel1.load(EPSG, box(), days(*SUMMER), ["VV", "VH"])
    assert (cube.values > 0).all() and np.isfinite(cube.values).all()  # the unknown code 123 too
    vv, vh = class_means(cube, "VV"), class_means(cube, "VH")
    assert vv[80] < vv[40] < vv[50], vv
    assert -23.0 < vv[80] < -17.0 and -5.0 < vv[50] < -1.0 and -9.5 < vv[10] < -5.5, vv
    assert -14.0 < vh[10] < -10.0, vh
    assert all(vh[code] < vv[code] - 4.0 for code in STRIPES), (vv, vh)


def test_speckle_is_gamma_with_the_looks_and_keeps_the_mean(stripes: None) -> None:
    dates = days(*SUMMER)
    speckled = sentinel1.load(EPSG, box(), dates, ["VV", "VH"]).values.astype(np.float64)
    clean = sentinel1.load(EPSG, box(), dates, ["VV", "VH"], speckle=False).values.astype(np.float64)
    ratio = speckled / clean
    assert ratio.size > 500_000
    assert abs(ratio.mean() - 1.0) < 0.01
    assert abs(ratio.std() / ratio.mean() - 1.0 / math.sqrt(sentinel1.LOOKS)) < 0.01
    # Independent between dates and bands: correlations near 0.
    assert abs(np.corrcoef(ratio[0, 0].ravel(), ratio[1, 0].ravel())[0, 1]) < 0.02
    assert abs(np.corrcoef(ratio[0, 0].ravel(), ratio[0, 1].ravel())[0, 1]) < 0.02
    # Over a homogeneous area (one water stripe on one date) the mean is the class's.
    cube = sentinel1.load(EPSG, box(), dates[:1], ["VV"])
    x = cube.x.values
    water = (np.floor(x / 10) * 10 // STRIPE).astype(int) % len(STRIPES) == 0
    noisy, flat = cube.values[0, 0][:, water], clean[0, 0][:, water]
    assert noisy.size > 5000 and np.ptp(flat[:, 0]) == 0  # homogeneous along each column
    assert abs(noisy.mean() / flat.mean() - 1.0) < 0.03
    assert abs(noisy.std() / noisy.mean() - 1.0 / math.sqrt(sentinel1.LOOKS)) < 0.03


def test_crops_grow_in_summer_and_grassland_follows_the_season(stripes: None) -> None:
    def mean_db(start: str, end: str, code: int, band: str) -> float:
        cube = sentinel1.load(EPSG, box(), days(start, end), [band], speckle=False)
        return class_means(cube, band)[code]

    winter, summer = ("2021-01-05", "2021-02-15"), ("2021-06-20", "2021-07-31")
    assert mean_db(*summer, 40, "VH") > mean_db(*winter, 40, "VH") + 3.0
    assert mean_db(*summer, 30, "VH") > mean_db(*winter, 30, "VH") + 1.0
    assert abs(mean_db(*summer, 50, "VV") - mean_db(*winter, 50, "VV")) < 1.0  # towns do not grow


def test_on_the_real_land_cover_every_pixel_has_backscatter() -> None:
    bounds = (X0, Y0, X0 + 2000.0, Y0 + 2000.0)
    cube = sentinel1.load(EPSG, bounds, days(*SUMMER)[:3], ["VV", "VH"])
    codes = worldcover.load(EPSG, bounds, [worldcover.DATE], ["MAP"]).values[0, 0]
    assert cube.shape[2:] == codes.shape
    valid = codes != worldcover.NODATA
    assert valid.any() and (cube.values[:, :, valid] > 0).all()
    assert (cube.values[:, :, ~valid] == sentinel1.NODATA).all()
