"""UTM zone arithmetic and the split of an AOI into zone/hemisphere parts."""

from __future__ import annotations

import pytest
import shapely
from shapely.geometry import MultiPolygon, box

from openeo_upscale.errors import GridError
from openeo_upscale.grid.zones import (
    central_meridian,
    check_latitudes,
    utm_epsg,
    zone_band,
    zone_label,
    zone_number,
    zone_of_epsg,
    zone_parts,
)


@pytest.mark.parametrize(("lon", "zone"), [(-180.0, 1), (-174.0001, 1), (-174.0, 2), (0.0, 31), (-0.0001, 30),
                                           (4.4, 31), (5.9999, 31), (6.0, 32), (179.9, 60), (180.0, 60),
                                           (181.0, 1), (-181.0, 60)])
def test_zone_number(lon: float, zone: int) -> None:
    assert zone_number(lon) == zone


def test_zone_codes_and_bands() -> None:
    assert utm_epsg(31, True) == 32631 and utm_epsg(1, False) == 32701 and utm_epsg(60, False) == 32760
    assert zone_of_epsg(32760) == (60, False)
    assert zone_label(32631) == "31N" and zone_label(32701) == "1S"
    assert zone_band(31) == (0.0, 6.0) and zone_band(1) == (-180.0, -174.0)
    assert zone_band(60) == (174.0, 180.0)
    assert central_meridian(31) == 3.0 and central_meridian(60) == 177.0
    with pytest.raises(GridError, match=r"zone must be 1\.\.60"):
        utm_epsg(61, True)
    with pytest.raises(GridError, match="not a WGS 84 / UTM zone"):
        zone_of_epsg(3857)


def test_check_latitudes() -> None:
    check_latitudes(box(0, -80.0, 1, 84.0))
    with pytest.raises(GridError, match="north of 84°N"):
        check_latitudes(box(0, 80.0, 1, 84.01))
    with pytest.raises(GridError, match="south of 80°S"):
        check_latitudes(box(0, -80.01, 1, -70.0))


def test_parts_across_a_zone_boundary_and_the_equator() -> None:
    aoi = shapely.segmentize(box(5.0, -1.0, 7.0, 1.0), 0.01)
    parts = zone_parts(aoi, 0.01)
    assert [p.epsg for p in parts] == [32631, 32632, 32731, 32732]
    assert sum(p.geometry.area for p in parts) == pytest.approx(aoi.area)
    assert shapely.equals(parts[0].geometry, box(5.0, 0.0, 6.0, 1.0))
    assert shapely.equals(parts[3].geometry, box(6.0, -1.0, 7.0, 0.0))


def test_parts_either_side_of_the_antimeridian() -> None:
    aoi = MultiPolygon([box(179.0, 10.0, 180.0, 11.0), box(-180.0, 10.0, -179.0, 11.0)])
    assert [(p.zone, p.north) for p in zone_parts(aoi, 0.01)] == [(1, True), (60, True)]


def test_an_edge_on_a_zone_boundary_gives_no_empty_part() -> None:
    assert [p.zone for p in zone_parts(box(6.0, 50.0, 7.0, 51.0), 0.01)] == [32]
    assert [p.north for p in zone_parts(box(6.0, 0.0, 7.0, 1.0), 0.01)] == [True]
