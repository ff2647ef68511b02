"""The UTM tile grid: an area of interest becomes square tiles, each in one UTM zone's grid.

Every zone/hemisphere (EPSG:326xx north of the equator, 327xx south) has its own grid of
`size`-metre squares anchored at multiples of `size`, so a tile is named by its grid cell alone
(`{epsg}_{west}_{south}_{size}`) and is the same whatever AOI produced it.

A zone's grid covers the part of the AOI inside the zone's 6° band and hemisphere: it gets every
cell whose interior meets that part. Cells on a zone's edge reach into the next zone, whose own
cells reach back, so the two grids overlap there instead of leaving a gap; the same happens at the
equator when `size` does not divide 10,000 km. A tile is therefore labelled with the grid it was
cut from, which is the zone of the AOI part it covers; its centre may lie just over the line.

How it stays fast (about a million tiles in seconds): the cells of a zone part are found by a
quadtree-like descent over blocks of 4^k cells, so that only blocks on the part's boundary are
split and the interior is accepted block by block; lon/lat polygons are built from numpy arrays
with one pyproj call per chunk of 65,536 cells; `aoi_fraction` is computed only for cells not
wholly inside the AOI, by intersecting them with the AOI cut into small pieces first.
"""

from __future__ import annotations

import logging
import math
import numbers
import time
from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import pyproj
import shapely
from shapely.affinity import translate
from shapely.geometry import MultiPolygon, Polygon
from shapely.geometry.base import BaseGeometry

from openeo_upscale.errors import GridError
from openeo_upscale.grid.aoi import (
    LONLAT,
    M_PER_DEG,
    AoiLike,
    load_aoi,
    polygonal,
    transform,
    transformer,
    wrap_longitudes,
)
from openeo_upscale.grid.zones import ZonePart, central_meridian, check_latitudes, zone_parts

log = logging.getLogger(__name__)

COLUMNS = ("tile_id", "epsg", "west", "south", "east", "north", "geometry", "area_km2", "aoi_fraction")
"""The columns of a tile GeoDataFrame, in order."""
MAX_SIZE = 200_000
"""Largest tile edge in metres: tiles must stay small next to a 6° zone (about 670 km wide)."""

# A cell counts as meeting the AOI when the AOI reaches more than this far into it: cells that
# only touch it (an AOI drawn along grid lines, the equator at northing 0) stay out, whatever the
# last bits of a reprojection round trip (about 1e-9 m) say.
_TOUCH_M = 1e-6
# Quadtree descent: start with at most this many blocks along each axis.
_TOP_BLOCKS = 8
# Cells are intersected with the AOI cut into pieces of this many cells square.
_GROUP = 16
# Cells turned into lon/lat polygons at a time: bounds the temporary arrays (about 20 MB).
_CHUNK = 1 << 16
_GEOD = pyproj.Geod(ellps="WGS84")


@dataclass(frozen=True)
class _ZoneTiles:
    """The tiles of one zone part: grid cells (i, j) -> square [i*size, (i+1)*size) x [j*size, ...)."""

    epsg: int
    i: np.ndarray
    j: np.ndarray
    fraction: np.ndarray
    geometry: np.ndarray


def tiles(
    aoi: AoiLike,
    size: int = 5000,
    *,
    crs: str = "utm",
    overlap: int = 0,
    clip: bool = False,
    min_coverage: float = 0.0,
    max_tiles: int = 2_000_000,
) -> gpd.GeoDataFrame:
    """Cut an area of interest into square UTM tiles of `size` metres.

    `aoi` is anything `load_aoi` accepts (bbox, bbox dict, GeoJSON mapping, shapely geometry in
    lon/lat, GeoDataFrame/GeoSeries in any CRS, or a vector file path). Returns a GeoDataFrame in
    EPSG:4326 with one row per tile, ordered by EPSG code, then south to north, west to east:

    - `tile_id`: `f"{epsg}_{west}_{south}_{size}"` with the corner of the grid cell (before
      `overlap`), e.g. `32631_590000_5660000_5000`; stable across AOIs and overlaps.
    - `epsg`: the UTM zone/hemisphere grid of the tile (326xx north, 327xx south).
    - `west`, `south`, `east`, `north`: the tile's square in that projection's metres, grown by
      `overlap` on every side, so `east - west == size + 2 * overlap`.
    - `geometry`: that square in lon/lat, densified (at least 4 points per edge, segments of at
      most 1 km) so it follows the projected square; cut at the antimeridian into a
      MultiPolygon where it crosses it. With `clip=True`, its intersection with the AOI.
    - `area_km2`: the area of the square (of the clipped part with `clip=True`) in the
      projection's square kilometres.
    - `aoi_fraction`: the share of the square covered by the AOI (1.0 when wholly inside).

    Without `min_coverage`, the tiles together cover the whole AOI, across zone boundaries, the
    equator and the antimeridian; a cell that only touches the AOI (shares no area with it) is
    left out. `overlap` grows every tile by that many metres on each side, without changing
    which tiles there are; `min_coverage` drops tiles whose `aoi_fraction` is below it (leaving
    gaps on purpose).

    Raises GridError for an empty or area-less AOI, latitudes beyond UTM (84°N, 80°S), a `size`
    or `overlap` that is not a whole number of metres in range, `crs` other than "utm", or an AOI
    that needs more than `max_tiles` tiles (estimated from its area before any tile is made).
    """
    started = time.perf_counter()
    if not isinstance(crs, str) or crs.lower() != "utm":
        raise GridError(f"crs must be 'utm' (the only tile grid supported), got {crs!r}")
    size = _whole_metres("size", size, 1, MAX_SIZE)
    overlap = _whole_metres("overlap", overlap, 0, size)
    min_coverage = _share("min_coverage", min_coverage)
    max_tiles = _whole_number("max_tiles", max_tiles)

    # GEOS raises floating-point flags inside its robust arithmetic (coordinates near 1e-300
    # underflow, for one); numpy would report them as warnings about its own ufuncs.
    with np.errstate(all="ignore"):
        area = load_aoi(aoi)
        outline = area.lonlat()
        check_latitudes(outline)
        _check_estimate(outline, size, max_tiles)

        # Edges are split every `segment_m` before they are projected: a straight edge in lon/lat
        # is curved in UTM (and a UTM edge in lon/lat); 250 m keeps that error at millimetres.
        segment_m = min(250.0, max(1.0, size / 8.0))
        area_ll = area.lonlat(segment_m)
        parts = zone_parts(area_ll, segment_m / M_PER_DEG)
        found: list[_ZoneTiles] = []
        count = 0
        for part in parts:
            zone_tiles = _tile_part(part, area_ll, size, overlap, clip, segment_m, max_tiles - count)
            count += len(zone_tiles.i)
            found.append(zone_tiles)
        frame = _frame(found, size, overlap, clip)
    if min_coverage > 0.0:
        frame = frame.loc[frame["aoi_fraction"].to_numpy() >= min_coverage].reset_index(drop=True)
    log.debug("%d tiles of %d m in %d zone parts in %.2f s", len(frame), size, len(parts),
              time.perf_counter() - started)
    return frame


def tile_id(epsg: int, west: int, south: int, size: int) -> str:
    """The id of the grid cell whose south-west corner is (west, south) in EPSG:`epsg`."""
    return f"{epsg}_{west}_{south}_{size}"


def _whole_metres(name: str, value: object, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise GridError(f"{name} must be a whole number of metres, got {value!r}")
    number = float(value)
    if not math.isfinite(number) or number != math.floor(number):
        raise GridError(f"{name} must be a whole number of metres, got {value!r}")
    if not low <= number <= high:
        if name == "size" and number <= 0:
            raise GridError(f"size must be positive, got {value!r}")
        raise GridError(f"{name} must be between {low} and {high} metres, got {value!r}")
    return int(number)


def _share(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0.0 <= float(value) <= 1.0:
        raise GridError(f"{name} must be a number between 0 and 1, got {value!r}")
    return float(value)


def _whole_number(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or int(value) < 1:
        raise GridError(f"{name} must be a positive whole number, got {value!r}")
    return int(value)


def _check_estimate(outline: BaseGeometry, size: int, max_tiles: int) -> None:
    """Fail before making any tile when the AOI's area alone needs more than `max_tiles` cells."""
    # Geodesic area of the outline with edges split every degree: good to a few per cent, which
    # is all an estimate needs, and quick even for a continent.
    area_m2 = abs(_GEOD.geometry_area_perimeter(shapely.segmentize(outline, 1.0))[0])
    estimate = math.ceil(area_m2 / float(size) ** 2)
    if estimate > max_tiles:
        raise GridError(f"the AOI ({area_m2 / 1e6:,.0f} km²) needs about {estimate:,} tiles of {size} m, "
                        f"more than max_tiles={max_tiles:,}; use larger tiles, a smaller AOI or a "
                        "higher max_tiles")


def _tile_part(part: ZonePart, area_ll: BaseGeometry, size: int, overlap: int, clip: bool,
               segment_m: float, budget: int) -> _ZoneTiles:
    """The tiles of one zone/hemisphere grid that cover `part`."""
    epsg = part.epsg
    width = size + 2 * overlap
    part_utm = _projected(part.geometry, epsg)
    if part_utm.is_empty:  # a float-noise sliver (a vertex 1e-18° off the equator) can vanish
        empty = np.empty(0, dtype=np.int64)
        return _ZoneTiles(epsg, empty, empty, np.empty(0), np.empty(0, dtype=object))
    # A tile meeting the part lies within one (grown) tile diagonal of it; the AOI around the
    # part out to that distance (and a margin) decides aoi_fraction and clipping.
    reach_m = width * math.sqrt(2.0) * 1.5 + 1.0
    local_ll = _surroundings(area_ll, part.geometry.bounds, reach_m, segment_m / M_PER_DEG)
    local_utm = _projected(local_ll, epsg)
    shapely.prepare(part_utm)
    shapely.prepare(local_utm)

    i, j, full = _cells(part_utm, local_utm, size, overlap, budget)
    order = np.lexsort((i, j))
    i, j, full = i[order], j[order], full[order]
    geometry, crosses = _lonlat_squares(i, j, size, overlap, epsg)
    fraction = np.ones(len(i))
    partial = np.flatnonzero(~full)
    if partial.size:
        x0 = (i[partial] * size - overlap).astype(float)
        y0 = (j[partial] * size - overlap).astype(float)
        squares = shapely.box(x0, y0, x0 + width, y0 + width)
        bounds = np.column_stack([x0, y0, x0 + width, y0 + width])
        covered = _intersect_in_pieces(squares, bounds, i[partial], j[partial], local_utm)
        fraction[partial] = np.clip(shapely.area(covered) / float(width) ** 2, 0.0, 1.0)
        if clip:
            shapes = geometry[partial]
            clipped = _intersect_in_pieces(shapes, shapely.bounds(shapes), i[partial], j[partial], local_ll)
            odd = np.flatnonzero(~np.isin(shapely.get_type_id(clipped), (3, 6)))  # not (Multi)Polygon
            for k in odd:
                clipped[k] = polygonal(clipped[k])
            geometry[partial] = clipped

    # Tiles of zones 1 and 60 (and big tiles near the poles) can reach over the antimeridian.
    for k in np.flatnonzero(crosses):
        geometry[k] = wrap_longitudes(geometry[k])
    # A cell met only by a zero-width spike of the AOI shares no area with it: not needed.
    keep = fraction > 0.0
    if clip:
        keep &= ~shapely.is_empty(geometry)
    i, j, fraction, geometry = i[keep], j[keep], fraction[keep], geometry[keep]
    log.debug("EPSG:%d: %d tiles, %d partly covered", epsg, len(i), partial.size)
    return _ZoneTiles(epsg, i, j, fraction, geometry)


def _projected(geometry_ll: BaseGeometry, epsg: int) -> BaseGeometry:
    """A lon/lat area in a UTM zone, still valid: projecting can fold a near-degenerate spike."""
    projected = transform(geometry_ll, LONLAT, epsg)
    return projected if projected.is_valid else polygonal(shapely.make_valid(projected))


def _surroundings(area_ll: BaseGeometry, bounds: tuple[float, float, float, float], reach_m: float,
                  segment_deg: float) -> BaseGeometry:
    """The AOI within `reach_m` of a lon/lat box, in continuous longitudes (maybe beyond ±180)."""
    west, south, east, north = bounds
    # 1° of latitude is at least 110.5 km; 1° of longitude at least that times cos(latitude).
    dlat = reach_m / 110_000.0
    south, north = max(-90.0, south - dlat), min(90.0, north + dlat)
    widest = min(89.0, max(abs(south), abs(north)))
    dlon = min(60.0, reach_m / (110_000.0 * math.cos(math.radians(widest))))
    west, east = west - dlon, east + dlon
    pieces = []
    for offset in (-360.0, 0.0, 360.0):  # the AOI beyond the antimeridian, shifted to this side
        low, high = max(west - offset, -180.0), min(east - offset, 180.0)
        if low >= high:
            continue
        cutter = shapely.segmentize(shapely.box(low, south, high, north), segment_deg)
        piece = polygonal(shapely.intersection(area_ll, cutter))
        if not piece.is_empty:
            pieces.append(translate(piece, xoff=offset))
    return polygonal(shapely.union_all(pieces)) if pieces else Polygon()


def _cells(part: BaseGeometry, local: BaseGeometry, size: int, overlap: int,
           budget: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Grid cells (i, j) whose interior meets `part`, and whether their grown square lies inside `local`.

    A descent over blocks of `block` x `block` cells: blocks missing the part are dropped, blocks
    inside it (with their grown squares inside the AOI) are accepted whole, the rest are split
    into 4 x 4 sub-blocks, down to single cells.
    """
    west, south, east, north = part.bounds
    i0, i1 = math.floor(west / size), math.ceil(east / size)
    j0, j1 = math.floor(south / size), math.ceil(north / size)
    span = max(i1 - i0, j1 - j0, 1)
    block = 1
    while -(-span // block) > _TOP_BLOCKS:
        block *= 4
    bi, bj = (a.ravel() for a in np.meshgrid(np.arange(i0 // block, (i1 - 1) // block + 1, dtype=np.int64),
                                             np.arange(j0 // block, (j1 - 1) // block + 1, dtype=np.int64)))
    found_i: list[np.ndarray] = []
    found_j: list[np.ndarray] = []
    found_full: list[np.ndarray] = []
    count = 0
    while bi.size:
        edge = float(block * size)
        x0, y0 = bi * edge, bj * edge
        hit = shapely.intersects(part, shapely.box(x0 + _TOUCH_M, y0 + _TOUCH_M,
                                                   x0 + edge - _TOUCH_M, y0 + edge - _TOUCH_M))
        bi, bj, x0, y0 = bi[hit], bj[hit], x0[hit], y0[hit]
        grown = shapely.box(x0 - overlap, y0 - overlap, x0 + edge + overlap, y0 + edge + overlap)
        if block == 1:
            found_i.append(bi)
            found_j.append(bj)
            found_full.append(shapely.contains_properly(local, grown))
            count += bi.size
            bi, bj = bi[:0], bj[:0]
        else:
            done = shapely.contains_properly(part, shapely.box(x0, y0, x0 + edge, y0 + edge))
            done[done] = shapely.contains_properly(local, grown[done])
            ci, cj = _subdivide(bi[done], bj[done], block)
            found_i.append(ci)
            found_j.append(cj)
            found_full.append(np.ones(ci.size, dtype=bool))
            count += ci.size
            bi, bj = _subdivide(bi[~done], bj[~done], 4)
            block //= 4
        if count > budget:
            raise GridError(f"the AOI needs more than max_tiles ({count:,} so far, {budget:,} left) tiles "
                            f"of {size} m; use larger tiles, a smaller AOI or a higher max_tiles")
    if not found_i:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64), np.empty(0, dtype=bool)
    return np.concatenate(found_i), np.concatenate(found_j), np.concatenate(found_full)


def _subdivide(bi: np.ndarray, bj: np.ndarray, factor: int) -> tuple[np.ndarray, np.ndarray]:
    """The factor x factor sub-blocks (or cells) of blocks (bi, bj)."""
    k = np.arange(factor * factor)
    return (bi[:, None] * factor + k % factor).ravel(), (bj[:, None] * factor + k // factor).ravel()


def _lonlat_squares(i: np.ndarray, j: np.ndarray, size: int, overlap: int,
                    epsg: int) -> tuple[np.ndarray, np.ndarray]:
    """Lon/lat polygons of the grown squares of cells (i, j), and which reach over ±180°.

    Rings run counter-clockwise from the south-west corner with `per_edge` points per edge,
    transformed from the UTM zone with one pyproj call per chunk of cells (chunks keep the
    temporary arrays small). Neighbours share their edge points exactly: no slivers between.
    """
    per_edge = max(4, math.ceil(size / 1000))
    t = np.arange(per_edge) / per_edge
    ux = np.concatenate([t, np.ones(per_edge), 1.0 - t, np.zeros(per_edge)])
    uy = np.concatenate([np.zeros(per_edge), t, np.ones(per_edge), 1.0 - t])
    width = float(size + 2 * overlap)
    to_lonlat = transformer(epsg, LONLAT)
    meridian = central_meridian(epsg % 100)
    shapes = np.empty(len(i), dtype=object)
    crosses = np.zeros(len(i), dtype=bool)
    for start in range(0, len(i), _CHUNK):
        cells = slice(start, start + _CHUNK)
        lon = (i[cells] * size - overlap).astype(float)[:, None] + width * ux
        lat = (j[cells] * size - overlap).astype(float)[:, None] + width * uy
        to_lonlat.transform(lon, lat, inplace=True)  # x, y become lon, lat
        # pyproj wraps longitudes into ±180; keep each tile continuous around its zone instead.
        # Only the wrapped points change, so a tile's coordinates never depend on its neighbours.
        wrapped = np.abs(lon - meridian) > 180.0
        if wrapped.any():
            lon[wrapped] -= np.copysign(360.0, lon[wrapped] - meridian)
            crosses[cells] = (lon.max(axis=1) > 180.0) | (lon.min(axis=1) < -180.0)
        count, points = lon.shape[0], lon.shape[1] + 1
        ring = np.empty((count, points, 2))
        ring[:, :-1, 0] = lon
        ring[:, :-1, 1] = lat
        ring[:, -1] = ring[:, 0]
        shapes[cells] = shapely.from_ragged_array(
            shapely.GeometryType.POLYGON, ring.reshape(-1, 2),
            (np.arange(0, count * points + 1, points), np.arange(count + 1)))
    return shapes, crosses


def _intersect_in_pieces(shapes: np.ndarray, bounds: np.ndarray, i: np.ndarray, j: np.ndarray,
                         region: BaseGeometry) -> np.ndarray:
    """shapes ∩ region, element-wise, cutting the region into one piece per group of cells first.

    Intersecting each tile with the whole AOI would cost the AOI's size every time; a piece
    holds only the AOI around `_GROUP` x `_GROUP` cells. A region of many polygons (field
    parcels, islands) is cut polygon by polygon, each only where an R-tree says it may matter.
    """
    keys = np.column_stack([i // _GROUP, j // _GROUP])
    _, group = np.unique(keys, axis=0, return_inverse=True)
    group = group.ravel()
    groups = int(group.max()) + 1
    low_x, low_y = np.full(groups, np.inf), np.full(groups, np.inf)
    high_x, high_y = np.full(groups, -np.inf), np.full(groups, -np.inf)
    np.minimum.at(low_x, group, bounds[:, 0])
    np.minimum.at(low_y, group, bounds[:, 1])
    np.maximum.at(high_x, group, bounds[:, 2])
    np.maximum.at(high_y, group, bounds[:, 3])
    windows = shapely.box(low_x, low_y, high_x, high_y)
    polygons = shapely.get_parts(region)
    window_of, polygon_of = shapely.STRtree(polygons).query(windows, predicate="intersects")
    cut, cut_of = shapely.get_parts(shapely.intersection(polygons[polygon_of], windows[window_of]),
                                    return_index=True)
    areal = shapely.get_type_id(cut) == 3  # touching windows leave points and lines
    cut, owner = cut[areal], window_of[cut_of[areal]]
    order = np.argsort(owner, kind="stable")
    pieces = np.array([MultiPolygon()] * groups, dtype=object)
    if cut.size:
        shapely.multipolygons(cut[order], indices=owner[order], out=pieces)
    return shapely.intersection(shapes, pieces[group])


def _frame(found: list[_ZoneTiles], size: int, overlap: int, clip: bool) -> gpd.GeoDataFrame:
    """Assemble the tile GeoDataFrame (columns `COLUMNS`, EPSG:4326)."""
    counts = [len(z.i) for z in found]
    epsg = np.repeat(np.array([z.epsg for z in found], dtype=np.int64), counts)
    i = np.concatenate([z.i for z in found]) if found else np.empty(0, dtype=np.int64)
    j = np.concatenate([z.j for z in found]) if found else np.empty(0, dtype=np.int64)
    fraction = np.concatenate([z.fraction for z in found]) if found else np.empty(0)
    geometry = np.concatenate([z.geometry for z in found]) if found else np.empty(0, dtype=object)
    west, south = i * size, j * size
    text = np.dtypes.StringDType()
    ids = np.strings.add(np.strings.add(np.strings.add(np.strings.add(
        epsg.astype(text), "_"), west.astype(text)), "_"), south.astype(text))
    ids = np.strings.add(ids, f"_{size}")
    width = size + 2 * overlap
    square_km2 = width * width / 1e6
    data = {
        "tile_id": ids.astype(object),
        "epsg": epsg,
        "west": west - overlap,
        "south": south - overlap,
        "east": west + size + overlap,
        "north": south + size + overlap,
        "geometry": gpd.array.from_shapely(geometry, crs=LONLAT),
        "area_km2": square_km2 * fraction if clip else np.full(len(i), square_km2),
        "aoi_fraction": fraction,
    }
    return gpd.GeoDataFrame(data, columns=list(COLUMNS), geometry="geometry", crs=LONLAT)
