"""The synthetic land-cover map: a pure function of place, seamless across tiles and UTM zones,
Belgian-looking class shares, connected rivers, field-sized parcels and crop calendars."""

from __future__ import annotations

import numpy as np
import pytest
from pyproj import Transformer
from scipy import ndimage

from openeo_upscale.backend.data import landscape
from openeo_upscale.backend.data.landscape import CALENDARS, RES, Cover, Crop, Land

EPSG = 32631
ANTWERP = (4.25, 51.05, 4.55, 51.25)
"""A 21 x 22 km box around Antwerp (west, south, east, north)."""
SHARES = {  # WorldCover code -> (min %, max %) plausible for this part of Belgium
    40: (20.0, 45.0), 30: (15.0, 35.0), 10: (8.0, 30.0), 50: (8.0, 30.0), 80: (1.0, 8.0),
    60: (0.0, 5.0), 90: (0.0, 5.0),
}


def class_indices(bounds: tuple[float, float, float, float], step: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Classification pixel indices covering UTM `bounds`, every `step`-th, rows north first."""
    west, south, east, north = bounds
    cx = np.arange(int(west // RES), int(east // RES) + 1, step)
    cy = np.arange(int(north // RES), int(south // RES) - 1, -step)
    return cx, cy


def antwerp_utm() -> tuple[float, float, float, float]:
    return Transformer.from_crs(4326, EPSG, always_xy=True).transform_bounds(*ANTWERP)


def test_shares_over_antwerp_are_belgian() -> None:
    cx, cy = class_indices(antwerp_utm(), step=3)  # every 60 m: each pixel is a pure function
    codes = landscape.classes(EPSG, cx, cy)
    assert codes.shape == (cy.size, cx.size)
    values, counts = np.unique(codes, return_counts=True)
    shares = dict(zip(values.tolist(), (100.0 * counts / counts.sum()).tolist(), strict=True))
    assert set(shares) <= set(SHARES), shares
    for code, (low, high) in SHARES.items():
        assert low <= shares.get(code, 0.0) <= high, (code, shares)


def test_overlapping_tiles_share_their_pixels_bit_for_bit() -> None:
    cx, cy = np.arange(30000, 30400), np.arange(285400, 285000, -1)  # more pixels than one chunk
    whole = landscape.land(EPSG, cx, cy)
    part = landscape.land(EPSG, cx[120:], cy[50:210])
    for name in ("cover", "crop", "shift", "vigour", "brightness", "x", "y"):
        a, b = getattr(whole, name)[50:210, 120:], getattr(part, name)
        assert a.tobytes() == b.tobytes(), name
    again = landscape.land(EPSG, cx, cy)
    assert all(getattr(again, n).tobytes() == getattr(whole, n).tobytes() for n in ("cover", "brightness"))
    np.testing.assert_array_equal(landscape.classes(EPSG, cx, cy), whole.code)


def test_the_same_place_has_the_same_class_in_both_utm_zones() -> None:
    """Random places on both sides of the 31/32 zone edge at 6 deg E, taken into each zone's UTM
    metres and evaluated through that zone's code path (`land_at`). "Agree" means: the global
    positions differ by under a millimetre, and the class (and crop, vigour) is the same at
    every place; a place could only differ if it lay within that millimetre of a class edge,
    which none of these does."""
    rng = np.random.default_rng(7)
    lon, lat = rng.uniform(5.9, 6.1, 20000), rng.uniform(51.0, 51.2, 20000)
    sides = []
    for epsg in (32631, 32632):
        x, y = Transformer.from_crs(4326, epsg, always_xy=True).transform(lon, lat)
        sides.append((landscape.positions(epsg, x, y), landscape.land_at(epsg, x, y)))
    (pos31, west), (pos32, east) = sides
    assert np.abs(pos31[0] - pos32[0]).max() < 1e-3 and np.abs(pos31[1] - pos32[1]).max() < 1e-3
    assert len(np.unique(west.code)) >= 5  # the places see several classes
    np.testing.assert_array_equal(west.code, east.code)
    np.testing.assert_array_equal(west.crop, east.crop)
    np.testing.assert_array_equal(west.vigour, east.vigour)


def test_grids_of_both_zones_agree_across_the_seam_as_well_as_within_a_zone() -> None:
    """The 20 m grids of zones 31 and 32 over one area at 6 deg E: each zone-31 pixel is paired
    with the zone-32 pixel that contains its centre (a centre at most 14 m away); their classes
    agree as often as a zone-31 pixel agrees with its own neighbour 20 m east (measured: 97.5 %
    across, 93.4 % within)."""
    to31, to32 = (Transformer.from_crs(4326, e, always_xy=True) for e in (32631, 32632))
    cx, cy = class_indices(to31.transform_bounds(5.97, 51.10, 6.03, 51.14))
    west = landscape.classes(32631, cx, cy)
    xs, ys = np.meshgrid((cx + 0.5) * RES, (cy + 0.5) * RES)
    lon, lat = Transformer.from_crs(32631, 4326, always_xy=True).transform(xs, ys)
    x32, y32 = to32.transform(lon, lat)
    ix, iy = np.floor(x32 / RES).astype(np.int64), np.floor(y32 / RES).astype(np.int64)
    ux, jx = np.unique(ix, return_inverse=True)
    uy, jy = np.unique(iy, return_inverse=True)
    east = landscape.classes(32632, ux, uy)[jy.reshape(ix.shape), jx.reshape(ix.shape)]
    across = (west == east).mean()
    within = (west[:, :-1] == west[:, 1:]).mean()
    assert len(np.unique(west)) >= 5
    assert across >= within > 0.9, (across, within)


def test_rivers_are_long_connected_lines() -> None:
    cx, cy = class_indices(antwerp_utm())
    water = landscape.classes(EPSG, cx, cy) == 80
    labels, count = ndimage.label(water, structure=np.ones((3, 3)))
    sizes = np.bincount(labels.ravel())[1:]
    longest = ndimage.find_objects(labels)[int(np.argmax(sizes))]
    extent_km = max(s.stop - s.start for s in longest) * RES / 1000
    assert count > 3 and extent_km > 5.0, (count, extent_km)


def test_parcels_are_field_sized_and_crops_mixed() -> None:
    cx, cy = class_indices((600000.0, 5660000.0, 605000.0, 5665000.0))
    land = landscape.land(EPSG, cx, cy)
    farmed = np.isin(land.cover, [Cover.CROP, Cover.GRASS])
    parcels = np.unique(land.vigour[farmed]).size  # one uniform per parcel
    mean_km2 = farmed.sum() * (RES / 1000) ** 2 / parcels
    assert 0.05 < mean_km2 < 0.6, mean_km2
    crops = np.unique(land.crop[land.cover == Cover.CROP])
    assert set(crops.tolist()) == {int(c) for c in Crop if c != Crop.NONE}
    assert (land.crop[land.cover != Cover.CROP] == Crop.NONE).all()
    assert np.abs(land.shift).max() <= 10.0 and land.shift.std() > 3.0


def one_parcel(crop: Crop, shift: float = 0.0) -> Land:
    a = np.ones((1, 1))
    return Land(cover=np.full((1, 1), int(Cover.CROP)), crop=np.full((1, 1), int(crop)), shift=shift * a,
                vigour=0.5 * a, brightness=a, x=a, y=a)


@pytest.mark.parametrize("crop", [c for c in Crop if c != Crop.NONE])
def test_each_crop_is_bare_before_its_season_green_in_it_and_cut_at_harvest(crop: Crop) -> None:
    calendar = CALENDARS[crop]
    parcel = one_parcel(crop)

    def fv(doy: float) -> float:
        return float(landscape.vegetation_fraction(parcel, doy)[0, 0])

    assert fv((calendar.peak + calendar.senesce) / 2) > 0.85
    assert fv(calendar.harvest + 5) < 0.1
    if calendar.winter:
        assert fv(calendar.emerge - 10) < 0.35 and fv(calendar.sow + 5) < 0.1
    else:
        assert fv(calendar.sow - 5) < 0.1 and fv(calendar.emerge - 1) < 0.1
    # The per-parcel shift moves the whole calendar.
    shifted = one_parcel(crop, shift=10.0)
    assert float(landscape.vegetation_fraction(shifted, calendar.harvest + 5)[0, 0]) > 0.2


def test_grassland_and_trees_are_greener_in_summer() -> None:
    a = np.ones((1, 2))
    land = Land(cover=np.array([[int(Cover.GRASS), int(Cover.TREE)]]), crop=np.zeros((1, 2), dtype=np.int64),
                shift=0 * a, vigour=0.5 * a, brightness=a, x=a, y=a)
    winter, summer = landscape.vegetation_fraction(land, 17), landscape.vegetation_fraction(land, 200)
    assert (summer > winter + 0.2).all() and (winter >= 0.6).all()


def test_pixel_and_bad_zones() -> None:
    np.testing.assert_array_equal(landscape.pixel(np.array([0, 1, 2, 3]), 10), [0, 0, 1, 1])
    np.testing.assert_array_equal(landscape.pixel(np.array([0, 1, 2]), 60), [1, 4, 7])
    with pytest.raises(ValueError, match="UTM"):
        landscape.classes(4326, np.arange(3), np.arange(3))
