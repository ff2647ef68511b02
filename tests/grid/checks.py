"""Checks shared by the grid tests: coverage in an equal-area projection, tile invariants."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import shapely
from shapely.geometry import Polygon
from shapely.geometry.base import BaseGeometry

from openeo_upscale.grid.aoi import polygonal

# Radius of the sphere with the WGS 84 ellipsoid's area.
AUTHALIC_RADIUS_M = 6_371_007.2


def area_m2(geometry: BaseGeometry) -> float:
    """Ground area in m² of a lon/lat geometry whose edges are straight in lon/lat.

    Exact on the authalic sphere: by Green's theorem the area is R² |∮ sin(lat) dlon|, and along
    an edge straight in lon/lat that integral has a closed form. An equal-area projection gives
    the same number but only after densifying every edge, and even then it turns a float-noise
    sliver (three almost collinear points) into a chord-versus-curve area of its own; this
    formula keeps such a sliver at float noise.
    """
    total = 0.0
    for polygon in shapely.get_parts(geometry):
        if not isinstance(polygon, Polygon):
            continue
        rings = [polygon.exterior, *polygon.interiors]
        for k, ring in enumerate(rings):
            lon, lat = np.radians(np.asarray(ring.coords)).T
            dlon, dlat = np.diff(lon), np.diff(lat)
            middle = (lat[1:] + lat[:-1]) / 2.0
            # ∫ sin(lat) dlon along the edge = dlon * sin(mid-lat) * sin(dlat/2) / (dlat/2)
            ring_area = abs(float(np.sum(dlon * np.sin(middle) * np.sinc(dlat / (2.0 * np.pi)))))
            total += ring_area if k == 0 else -ring_area
    return total * AUTHALIC_RADIUS_M**2


def uncovered_share(aoi_lonlat: BaseGeometry, frame: gpd.GeoDataFrame) -> float:
    """Share of the AOI's area outside the union of the tile geometries.

    The difference is taken in lon/lat, where both the AOI and the tiles are defined, and both
    areas are ground areas (`area_m2`): a ratio of degree² would overweight slivers near the
    poles, where a degree of longitude is short.
    """
    missing = aoi_lonlat
    with np.errstate(all="ignore"):  # GEOS's own floating-point flags, not numpy's
        # One zone at a time: a zone's squares only share whole edges, which GEOS unites
        # exactly. Clipped tiles are not measured this way: GEOS 3.14 can return a wrong union
        # for slivers with almost collinear vertices (see the clip property test instead).
        for _, group in frame.groupby("epsg"):
            union = shapely.union_all(np.asarray(group.geometry.values))
            missing = polygonal(shapely.difference(missing, union))
    return area_m2(missing) / area_m2(aoi_lonlat)


def assert_grid_invariants(frame: gpd.GeoDataFrame, size: int, overlap: int = 0) -> None:
    """Ids unique and derived from the bounds, squares aligned to multiples of size, exact size."""
    assert frame.crs is not None and frame.crs.to_epsg() == 4326
    assert not frame["tile_id"].duplicated().any()
    west = frame["west"].to_numpy() + overlap
    south = frame["south"].to_numpy() + overlap
    assert (west % size == 0).all() and (south % size == 0).all()
    assert ((frame["east"] - frame["west"]) == size + 2 * overlap).all()
    assert ((frame["north"] - frame["south"]) == size + 2 * overlap).all()
    expected = [f"{e}_{w}_{s}_{size}" for e, w, s in zip(frame["epsg"], west, south, strict=True)]
    assert frame["tile_id"].tolist() == expected
    assert frame["epsg"].isin([*range(32601, 32661), *range(32701, 32761)]).all()
    assert shapely.is_valid(np.asarray(frame.geometry.values)).all()
    assert ((frame["aoi_fraction"] > 0) & (frame["aoi_fraction"] <= 1)).all()
