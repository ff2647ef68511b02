"""UTM zones: numbering, EPSG codes, and splitting a lon/lat area into zone/hemisphere parts.

The plain 6° zones are used everywhere, without the Norway/Svalbard exceptions of MGRS, so that a
tile's zone follows from its longitude alone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import shapely
from shapely.geometry.base import BaseGeometry

from openeo_upscale.errors import GridError
from openeo_upscale.grid.aoi import polygonal

UTM_NORTH = 84.0
"""Northern limit of UTM (degrees latitude); beyond it UPS takes over."""
UTM_SOUTH = -80.0
"""Southern limit of UTM (degrees latitude)."""
ZONE_WIDTH = 6.0
"""Width of a UTM zone in degrees longitude."""


def zone_number(lon: float) -> int:
    """The UTM zone (1..60) of a longitude in degrees; 180° belongs to zone 60."""
    if not -180.0 <= lon <= 180.0:
        lon = (lon + 180.0) % 360.0 - 180.0
    return min(60, max(1, math.floor((lon + 180.0) / ZONE_WIDTH) + 1))


def utm_epsg(zone: int, north: bool) -> int:
    """EPSG code of a WGS 84 / UTM zone: 326xx in the north, 327xx in the south."""
    if not 1 <= zone <= 60:
        raise GridError(f"UTM zone must be 1..60, got {zone}")
    return (32600 if north else 32700) + zone


def zone_of_epsg(epsg: int) -> tuple[int, bool]:
    """(zone, north) of a WGS 84 / UTM EPSG code."""
    zone = epsg % 100
    if epsg // 100 not in (326, 327) or not 1 <= zone <= 60:
        raise GridError(f"EPSG:{epsg} is not a WGS 84 / UTM zone")
    return zone, epsg // 100 == 326


def zone_label(epsg: int) -> str:
    """A short label like `31N` for EPSG:32631."""
    zone, north = zone_of_epsg(epsg)
    return f"{zone}{'N' if north else 'S'}"


def zone_band(zone: int) -> tuple[float, float]:
    """(west, east) longitudes of a zone's 6° band."""
    west = -180.0 + (zone - 1) * ZONE_WIDTH
    return west, west + ZONE_WIDTH


def central_meridian(zone: int) -> float:
    """Longitude of a zone's central meridian."""
    return -183.0 + zone * ZONE_WIDTH


@dataclass(frozen=True)
class ZonePart:
    """The part of an area of interest that one zone/hemisphere grid covers.

    `geometry` is in lon/lat: the area inside the zone's 6° band, and north (`north=True`) or
    south of the equator.
    """

    zone: int
    north: bool
    geometry: BaseGeometry

    @property
    def epsg(self) -> int:
        """EPSG code of the zone/hemisphere's UTM projection."""
        return utm_epsg(self.zone, self.north)


def check_latitudes(area: BaseGeometry) -> None:
    """Raise GridError when a lon/lat area reaches beyond the UTM latitudes (80°S..84°N)."""
    _, south, _, north = area.bounds
    if north > UTM_NORTH:
        raise GridError(f"AOI reaches latitude {north:.6g}, north of {UTM_NORTH:g}°N where UTM ends "
                        "(polar areas need a UPS grid, which is not supported)")
    if south < UTM_SOUTH:
        raise GridError(f"AOI reaches latitude {south:.6g}, south of {-UTM_SOUTH:g}°S where UTM ends "
                        "(polar areas need a UPS grid, which is not supported)")


def zone_parts(area: BaseGeometry, max_segment_deg: float) -> list[ZonePart]:
    """Split a lon/lat area (longitudes within ±180) into its zone/hemisphere parts.

    The cutting lines (zone meridians, the equator) are densified every `max_segment_deg`
    degrees, because they are curved once projected. Parts without area are left out; the
    result is ordered by EPSG code.
    """
    candidates: set[tuple[int, bool]] = set()
    for polygon in shapely.get_parts(area):
        west, south, east, north = polygon.bounds
        zones = range(zone_number(west), zone_number(east) + 1)
        halves = [h for h, inside in ((True, north > 0.0), (False, south < 0.0)) if inside]
        candidates.update((zone, half) for zone in zones for half in halves)
    _, area_south, _, area_north = area.bounds
    parts = []
    for zone, north in sorted(candidates, key=lambda c: utm_epsg(*c)):
        band_west, band_east = zone_band(zone)
        # Only as tall as the area, so the densified cutter stays small.
        low, high = (max(0.0, area_south - 1.0), area_north + 1.0) if north else \
            (area_south - 1.0, min(0.0, area_north + 1.0))
        cutter = shapely.segmentize(shapely.box(band_west, low, band_east, high), max_segment_deg)
        piece = polygonal(shapely.intersection(area, cutter))
        if not piece.is_empty and piece.area > 0.0:
            parts.append(ZonePart(zone, north, piece))
    return parts
