"""`tiles()`: the reference case, zone/equator/antimeridian cases, options and every clear error."""

from __future__ import annotations

import time

import geopandas as gpd
import numpy as np
import pytest
import shapely
from pyproj import Transformer
from shapely.geometry import MultiPolygon, box

from openeo_upscale.errors import GridError, UpscaleError
from openeo_upscale.grid import COLUMNS, tiles
from openeo_upscale.grid.zones import zone_band

from .checks import assert_grid_invariants, uncovered_share

ANTWERP = (4.35, 51.10, 4.45, 51.20)


def _on_square(frame: gpd.GeoDataFrame) -> None:
    """Every vertex of every tile geometry lies on its square, in its own UTM zone."""
    for row in frame.itertuples():
        back = Transformer.from_crs(4326, row.epsg, always_xy=True)
        xy = shapely.get_coordinates(row.geometry)
        x, y = back.transform(xy[:, 0], xy[:, 1])
        on_x = np.isclose(x, row.west, atol=1e-6) | np.isclose(x, row.east, atol=1e-6)
        on_y = np.isclose(y, row.south, atol=1e-6) | np.isclose(y, row.north, atol=1e-6)
        assert (on_x | on_y).all()
        assert x.min() == pytest.approx(row.west, abs=1e-6) and x.max() == pytest.approx(row.east, abs=1e-6)
        assert y.min() == pytest.approx(row.south, abs=1e-6) and y.max() == pytest.approx(row.north, abs=1e-6)


def test_reference_case_antwerp_at_5km() -> None:
    frame = tiles(ANTWERP, 5000)
    assert list(frame.columns) == list(COLUMNS)
    assert (frame["epsg"] == 32631).all()
    assert (frame["west"] % 5000 == 0).all() and (frame["south"] % 5000 == 0).all()
    assert frame["tile_id"].iloc[0] == "32631_590000_5660000_5000"
    assert len(frame) == 9
    assert_grid_invariants(frame, 5000)
    assert uncovered_share(box(*ANTWERP), frame) < 1e-12
    assert (frame["area_km2"] == 25.0).all()
    # The only tile wholly inside the bbox is the middle one.
    assert frame.loc[frame["aoi_fraction"] == 1.0, "tile_id"].tolist() == ["32631_595000_5665000_5000"]


def test_geometries_follow_the_projected_square() -> None:
    frame = tiles(ANTWERP, 5000, overlap=250)
    _on_square(frame)
    # 5 points per 5 km edge (at least 4, at most 1 km apart): 20 vertices and the closing one
    assert all(len(g.exterior.coords) == 21 for g in frame.geometry)


def test_aoi_fraction_is_the_covered_share_of_the_square() -> None:
    aoi = {"west": 592500, "south": 5662500, "east": 600000, "north": 5670000, "crs": "EPSG:32631"}
    fractions = dict(zip(*(tiles(aoi, 5000)[c] for c in ("tile_id", "aoi_fraction")), strict=True))
    assert fractions == pytest.approx({"32631_590000_5660000_5000": 0.25, "32631_595000_5660000_5000": 0.5,
                                       "32631_590000_5665000_5000": 0.5, "32631_595000_5665000_5000": 1.0},
                                      abs=1e-9)


def test_an_aoi_drawn_along_grid_lines_gets_no_touching_neighbours() -> None:
    aoi = {"west": 590000, "south": 5660000, "east": 600000, "north": 5670000, "crs": 32631}
    frame = tiles(aoi, 5000)
    assert sorted(frame["tile_id"]) == ["32631_590000_5660000_5000", "32631_590000_5665000_5000",
                                        "32631_595000_5660000_5000", "32631_595000_5665000_5000"]
    assert frame["aoi_fraction"].to_numpy() == pytest.approx(1.0, abs=1e-9)


def test_overlap_grows_tiles_and_keeps_ids() -> None:
    plain = tiles(ANTWERP, 5000)
    grown = tiles(ANTWERP, 5000, overlap=100)
    assert grown["tile_id"].tolist() == plain["tile_id"].tolist()
    assert (grown["west"] == plain["west"] - 100).all() and (grown["north"] == plain["north"] + 100).all()
    assert (grown["east"] - grown["west"] == 5200).all()
    assert grown["area_km2"].to_numpy() == pytest.approx(5.2 * 5.2)
    assert all(g.contains(p) for g, p in zip(grown.geometry, plain.geometry, strict=True))
    # The share is of the grown square: the middle tile is 480 m or more inside the bbox.
    assert grown.set_index("tile_id").loc["32631_595000_5665000_5000", "aoi_fraction"] == 1.0
    wide = tiles(ANTWERP, 5000, overlap=1000)
    assert wide.set_index("tile_id").loc["32631_595000_5665000_5000", "aoi_fraction"] < 1.0
    assert_grid_invariants(grown, 5000, overlap=100)


def test_min_coverage_drops_barely_covered_tiles() -> None:
    frame = tiles(ANTWERP, 5000, min_coverage=0.5)
    assert len(frame) == 3
    assert (frame["aoi_fraction"] >= 0.5).all()
    empty = tiles(ANTWERP, 5000, min_coverage=1.0 - 1e-12)
    assert len(empty) == 1
    none = tiles((4.351, 51.101, 4.352, 51.102), 5000, min_coverage=0.5)
    assert none.empty and list(none.columns) == list(COLUMNS) and none.crs.to_epsg() == 4326


def test_clip_cuts_tiles_to_the_aoi() -> None:
    aoi = box(*ANTWERP)
    frame = tiles(ANTWERP, 5000, clip=True)
    assert uncovered_share(aoi, frame) < 1e-12
    assert all(shapely.difference(g, aoi).area < 1e-12 for g in frame.geometry)
    assert frame["area_km2"].to_numpy() == pytest.approx(25.0 * frame["aoi_fraction"].to_numpy())
    union = shapely.union_all(np.asarray(frame.geometry.values))
    assert shapely.symmetric_difference(union, aoi).area < 1e-12 * aoi.area
    # The middle tile is wholly inside and is kept whole.
    assert frame.set_index("tile_id").loc["32631_595000_5665000_5000", "area_km2"] == 25.0


def test_zone_boundary_tiles_overlap_instead_of_leaving_a_gap() -> None:
    bbox = (5.9, 50.0, 6.1, 50.1)
    frame = tiles(bbox, 5000)
    assert set(frame["epsg"]) == {32631, 32632}
    assert uncovered_share(box(*bbox), frame) < 1e-12
    for epsg, zone in ((32631, 31), (32632, 32)):
        west, east = zone_band(zone)
        band_part = box(max(west, bbox[0]), bbox[1], min(east, bbox[2]), bbox[3])
        assert all(g.intersects(band_part) for g in frame.loc[frame["epsg"] == epsg].geometry)
    left = shapely.union_all(frame.loc[frame["epsg"] == 32631].geometry)
    right = shapely.union_all(frame.loc[frame["epsg"] == 32632].geometry)
    assert left.intersection(right).area > 0  # overlap, not a gap, at 6°E


@pytest.mark.parametrize("size", [5000, 3000])
def test_equator_splits_into_north_and_south_grids(size: int) -> None:
    bbox = (8.9, -0.1, 9.1, 0.1)
    frame = tiles(bbox, size)
    assert set(frame["epsg"]) == {32632, 32732}
    assert uncovered_share(box(*bbox), frame) < 1e-12
    north = frame.loc[frame["epsg"] == 32632]
    assert (north["south"] >= 0).all()  # northing 0 is the equator: no tile only touching it
    south = frame.loc[frame["epsg"] == 32732]
    if 10_000_000 % size == 0:
        assert (south["north"] <= 10_000_000).all()
    else:  # the row across the equator stays in the southern grid
        assert (south["north"] > 10_000_000).any()
    assert_grid_invariants(frame, size)


def test_antimeridian_bbox_is_split_and_tiles_stay_within_180() -> None:
    bbox = (179.9, -17.0, -179.9, -16.9)
    frame = tiles(bbox, 5000)
    assert set(frame["epsg"]) == {32760, 32701}
    aoi = MultiPolygon([box(179.9, -17.0, 180.0, -16.9), box(-180.0, -17.0, -179.9, -16.9)])
    assert uncovered_share(aoi, frame) < 1e-12
    west, _, east, _ = shapely.total_bounds(np.asarray(frame.geometry.values))
    assert west >= -180.0 and east <= 180.0
    across = frame.loc[frame.geometry.geom_type == "MultiPolygon"]
    assert len(across) > 0  # tiles reaching over 180° are cut there, one piece either side
    for geometry in across.geometry:
        lons = sorted(p.bounds[0] for p in geometry.geoms)
        assert lons[0] == -180.0 and lons[-1] > 179.0
    assert_grid_invariants(frame, 5000)


def test_near_the_utm_limits() -> None:
    north = tiles((10.0, 83.5, 12.0, 84.0), 20000)
    assert uncovered_share(box(10.0, 83.5, 12.0, 84.0), north) < 1e-12
    south = tiles((-1.0, -80.0, 1.0, -79.7), 10000)
    assert set(south["epsg"]) == {32730, 32731}
    assert uncovered_share(box(-1.0, -80.0, 1.0, -79.7), south) < 1e-12


def test_grid_error_is_an_upscale_error() -> None:
    assert issubclass(GridError, UpscaleError)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"crs": "EPSG:3857"}, "crs must be 'utm'"),
    ({"crs": "mgrs"}, "crs must be 'utm'"),
    ({"size": 0}, "size must be positive"),
    ({"size": -5000}, "size must be positive"),
    ({"size": 2500.5}, "size must be a whole number"),
    ({"size": True}, "size must be a whole number"),
    ({"size": float("nan")}, "size must be a whole number"),
    ({"size": 10_000_000}, "size must be between"),
    ({"overlap": -1}, "overlap must be between"),
    ({"min_coverage": 1.5}, "min_coverage must be a number between 0 and 1"),
    ({"max_tiles": 0}, "max_tiles must be a positive whole number"),
])
def test_bad_options_are_clear_errors(kwargs: dict[str, object], message: str) -> None:
    args: dict[str, object] = {"size": 5000, **kwargs}
    size = args.pop("size")
    with pytest.raises(GridError, match=message):
        tiles(ANTWERP, size, **args)  # type: ignore[arg-type]  # wrong types on purpose


@pytest.mark.parametrize(("aoi", "message"), [
    ((10.0, 83.0, 11.0, 84.5), "north of 84°N"),
    ((10.0, -81.0, 11.0, -79.0), "south of 80°S"),
    (box(0, 85, 1, 86), "north of 84°N"),
])
def test_latitudes_beyond_utm_are_clear_errors(aoi: object, message: str) -> None:
    with pytest.raises(GridError, match=message):
        tiles(aoi)


def test_a_continent_at_10m_fails_fast_on_the_estimate() -> None:
    started = time.perf_counter()
    with pytest.raises(GridError, match=r"needs about [\d,]+ tiles of 10 m, more than max_tiles=2,000,000"):
        tiles((-10.0, 35.0, 30.0, 70.0), 10)
    assert time.perf_counter() - started < 5.0  # from the area alone, not by making tiles


def test_max_tiles_also_holds_when_the_estimate_is_below_it() -> None:
    # 77 km² suggests 4 tiles of 5 km; the bbox needs 9.
    with pytest.raises(GridError, match="needs more than max_tiles"):
        tiles(ANTWERP, 5000, max_tiles=5)
    assert len(tiles(ANTWERP, 5000, max_tiles=9)) == 9


def test_an_aoi_of_many_small_polygons() -> None:
    # Field parcels or islands: 60 small boxes across the 6°E zone boundary.
    islands = MultiPolygon([box(x, y, x + 0.05, y + 0.03) for x in np.arange(5.0, 7.0, 0.2)
                            for y in np.arange(45.0, 46.2, 0.2)])
    frame = tiles(islands, 1000, clip=True)
    assert set(frame["epsg"]) == {32631, 32632}
    assert uncovered_share(islands, frame) < 1e-12
    assert all(shapely.difference(g, islands).area < 1e-15 for g in frame.geometry)
    for row in frame.iloc[::7].itertuples():  # aoi_fraction against a direct intersection in UTM
        to_utm = Transformer.from_crs(4326, row.epsg, always_xy=True)
        near = shapely.segmentize(islands.intersection(row.geometry.buffer(0.01)), 0.001)
        projected = shapely.transform(near, lambda xy, t=to_utm: np.column_stack(t.transform(*xy.T)))
        square = box(row.west, row.south, row.east, row.north)
        assert row.aoi_fraction == pytest.approx(projected.intersection(square).area / square.area, abs=1e-6)
