"""One synthetic land-cover map of the whole Earth, a pure function of geographic place.

The synthetic `SENTINEL2_L2A` computes its reflectances and SCL from this map and the synthetic
`ESA_WORLDCOVER_10M_2021_V2` serves it, so the two agree. Callers sample it on the 20 m
classification grid of a UTM zone (`RES`; pixel ``(cx, cy)`` has its centre at
``((cx + 0.5) * RES, (cy + 0.5) * RES)`` in zone metres), or at any UTM points.

**Seamless everywhere.** Every field is evaluated at a position in one global frame, the
sinusoidal (equal-area) projection of the point on a sphere of 6371 km. A UTM point is taken to
it through a lattice of nodes every 160 m of its zone, projected with pyproj, and bilinear
interpolation between them (error well under a millimetre). So the same place gives the same
class whichever zone's grid samples it (up to points within a millimetre of a class edge), and
within a zone a pixel's value depends only on its own centre: tiles share pixels bit for bit and
reruns are bit-identical. Only pyproj (per point) and exactly rounded numpy operations touch
pixel data; trigonometry is used only for constants.

**The map**, from the lowest layer up (a higher layer overwrites a lower one; each is computed
only where no higher one has decided):

- Field patchwork: "farm blocks", Voronoi cells of a jittered 2 km lattice, each with its own
  orientation (one of 12) and parcel size; inside a block, parcels are the Voronoi cells of a
  jittered lattice stretched along the block's orientation (cells of 450 x 220 m to 800 x 380 m),
  so fields are irregular elongated polygons. A block has its own grassland share (25-70 %);
  each parcel is grassland (30), cropland (40) of one `Crop` type (wheat 32 %, maize 26 %,
  potato 16 %, barley and sugar beet 13 % each), a woodlot (10, 3.5 %) or bare (60, 1 %).
- Herbaceous wetland (90): a quarter of the field parcels within about 100 m of a river.
- Forests (10): large smooth-edged patches where an fBm field (features of 0.9-4 km) is above
  its 86 % level.
- Towns (50): centres on a jittered 3.2 km lattice (40 % towns of 0.5-1.5 km radius, 35 %
  villages of 150-400 m, the rest crossroads) and cities on a 16 km lattice (60 %, radius
  2-3.5 km); built-up where a density falling from 1 at the centre to 0 at the radius
  (quadratically) beats a 120 m noise: dense centres, ragged edges.
- Roads (50): straight, slightly warped lines (about 25 m wide) between neighbouring town
  lattice nodes (east and north neighbours, 85 % of them), so they connect the towns.
- Water (80): minor rivers (about 30 m wide) along the 0.5 level set of a domain-warped noise
  field with 2.5-6 km features, a major river (about 160 m wide) along that of a 12-40 km field,
  lakes where a 0.7-2.5 km noise field is above its 98 % level. A level set is a continuous
  curve; its width is held constant by dividing by the field's gradient.

`vegetation_fraction` gives the green-vegetation cover of each pixel on a day: crop types have
their own sowing, green-up, senescence and harvest days (`CALENDARS`, shifted per parcel by up to
+/-10 days); grassland, tree cover and wetland follow a seasonal curve.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from enum import IntEnum
from types import MappingProxyType

import numpy as np
import numpy.typing as npt
from pyproj import Transformer

from openeo_upscale.backend.data import _noise
from openeo_upscale.backend.data._noise import fbm, noise, noise_gradient, threshold, uniform

__all__ = [
    "CALENDARS",
    "RES",
    "WORLDCOVER",
    "Calendar",
    "Cover",
    "Crop",
    "Land",
    "classes",
    "land",
    "land_at",
    "pixel",
    "positions",
    "season",
    "vegetation_fraction",
]

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]
Bools = npt.NDArray[np.bool_]

RES = 20
"""Metres of the classification grid of a UTM zone, anchored at 0."""


class Cover(IntEnum):
    """The surface kinds of the map; `WORLDCOVER` gives each one's WorldCover code."""

    WATER = 0
    ROAD = 1
    BUILT = 2
    TREE = 3
    GRASS = 4
    CROP = 5
    BARE = 6
    WETLAND = 7


WORLDCOVER: Mapping[Cover, int] = MappingProxyType({
    Cover.WATER: 80, Cover.ROAD: 50, Cover.BUILT: 50, Cover.TREE: 10, Cover.GRASS: 30,
    Cover.CROP: 40, Cover.BARE: 60, Cover.WETLAND: 90,
})
"""Surface kind -> ESA WorldCover class code (roads are built-up)."""


class Crop(IntEnum):
    """The crop of a cropland parcel (NONE elsewhere)."""

    NONE = 0
    WINTER_WHEAT = 1
    WINTER_BARLEY = 2
    MAIZE = 3
    SUGAR_BEET = 4
    POTATO = 5


@dataclass(frozen=True)
class Calendar:
    """A crop's season in days of the (northern) year, before the per-parcel shift. Winter crops
    are sown in the autumn (``sow > harvest``) and green up in spring (``emerge``)."""

    sow: float
    emerge: float
    peak: float
    senesce: float
    harvest: float

    @property
    def winter(self) -> bool:
        """Whether the crop is sown in the autumn before its harvest year."""
        return self.sow > self.harvest


CALENDARS: Mapping[Crop, Calendar] = MappingProxyType({
    Crop.WINTER_WHEAT: Calendar(sow=295, emerge=60, peak=135, senesce=170, harvest=212),
    Crop.WINTER_BARLEY: Calendar(sow=270, emerge=55, peak=125, senesce=155, harvest=190),
    Crop.MAIZE: Calendar(sow=120, emerge=135, peak=200, senesce=250, harvest=280),
    Crop.SUGAR_BEET: Calendar(sow=85, emerge=105, peak=180, senesce=270, harvest=300),
    Crop.POTATO: Calendar(sow=105, emerge=130, peak=175, senesce=205, harvest=240),
})
"""Crop -> its calendar (Belgian dates)."""
_CROP_SHARES = (0.32, 0.13, 0.26, 0.13, 0.16)  # of the cropland parcels, in `Crop` order from 1
_SHIFT_DAYS = 10.0  # per-parcel calendar shift, +/-

_SINUSOIDAL = "+proj=sinu +lon_0=0 +R=6371007.181 +units=m +no_defs"
_NODE = 160.0  # metres between the projected nodes of a zone

# Hash-key namespaces (disjoint from the other providers').
(_K_BLOCK, _K_BLOCK_ATTR, _K_PARCEL_SEED, _K_PARCEL, _K_TOWN, _K_CITY, _K_ROAD, _K_URBAN_NOISE,
 _K_FOREST, _K_LAKE, _K_RIVER, _K_WARP, _K_MAJOR, _K_BLOCK_VIGOUR, _K_SOIL, _K_ROOF,
 _K_TURBIDITY) = range(1001, 1018)

_FOREST_NOISE = ((4000.0, 1.0), (900.0, 0.4))
_LAKE_NOISE = ((2500.0, 1.0), (700.0, 0.4))
_SOIL_NOISE = ((1500.0, 1.0), (400.0, 0.5))
_TURBIDITY_NOISE = ((2500.0, 1.0),)
_FOREST_SHARE = 0.14
_LAKE_SHARE = 0.02
_BLOCK_CELL = 2000.0
_TOWN_CELL = 3200.0
_CITY_CELL = 16000.0
_TOWN_KINDS = ((0.40, 500.0, 1000.0), (0.75, 150.0, 250.0))  # (cumulative share, radius, spread)
_CITY_KINDS = ((0.60, 2000.0, 1500.0),)
_RIVER_NOISE = ((6000.0, 1.0), (2500.0, 0.35))
_MAJOR_NOISE = ((40000.0, 1.0), (12000.0, 0.3))
_RIVER_HALF_WIDTH = 15.0
_MAJOR_HALF_WIDTH = 80.0
_WETLAND_REACH = 100.0
_ROAD_HALF_WIDTH = 12.0
# Parcel frames: 12 orientations (cosine, sine) and 3 sizes (along, across), in metres.
_ANGLES = tuple((math.cos(math.pi * k / 12), math.sin(math.pi * k / 12)) for k in range(12))
_SIZES = ((450.0, 220.0), (600.0, 300.0), (800.0, 380.0))
_CHUNK_PIXELS = 1 << 17  # classification pixels computed at once by `classes`
_PARCEL_REACH = 14  # parcel lattice cells either side of a block's seed (a block is < 5 km wide)


@dataclass(frozen=True)
class Land:
    """The map at some points (arrays of one shape): what the sensors need per pixel."""

    cover: Ints
    """`Cover` kind."""
    crop: Ints
    """`Crop` type (`Crop.NONE` off cropland)."""
    shift: Floats
    """Per-parcel shift of the crop calendar in days (+/-10)."""
    vigour: Floats
    """A uniform in [0, 1) per parcel (how green it gets) or, in towns and forests, per 60 m block."""
    brightness: Floats
    """Factor on the background spectrum: soil, roof or water turbidity (about 0.75-1.35)."""
    x: Floats
    """Global (sinusoidal) easting of the points in metres: where place-keyed fields are evaluated."""
    y: Floats
    """Global (sinusoidal) northing of the points in metres."""

    @property
    def code(self) -> Ints:
        """ESA WorldCover class codes."""
        return _CODES[self.cover]


_CODES = np.array([WORLDCOVER[c] for c in Cover], dtype=np.int64)
_CODES.flags.writeable = False


# ----- the global frame --------------------------------------------------------------------------


def _zone(epsg: int) -> None:
    if not (32601 <= epsg <= 32660 or 32701 <= epsg <= 32760):
        raise ValueError(f"not a WGS 84 / UTM EPSG code: {epsg}")


def positions(epsg: int, x: npt.ArrayLike, y: npt.ArrayLike) -> tuple[Floats, Floats]:
    """Global (sinusoidal) metres of the UTM points (`x`, `y`) of zone `epsg`, broadcast together:
    bilinear between projected nodes every 160 m of the zone, so a point's value depends only on
    the point."""
    _zone(epsg)
    px, py = np.broadcast_arrays(np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64))
    if px.size == 0:
        return np.zeros(px.shape), np.zeros(px.shape)
    sx, sy = px / _NODE, py / _NODE
    ix, iy = np.floor(sx), np.floor(sy)
    fx, fy = sx - ix, sy - iy
    jx, jy = ix.astype(np.int64), iy.astype(np.int64)
    x0, y0 = int(jx.min()), int(jy.min())
    width, height = int(jx.max()) - x0 + 2, int(jy.max()) - y0 + 2
    nx = np.arange(x0, x0 + width, dtype=np.float64) * _NODE
    ny = np.arange(y0, y0 + height, dtype=np.float64) * _NODE
    transformer = Transformer.from_crs(epsg, _SINUSOIDAL, always_xy=True)
    gx, gy = transformer.transform(np.broadcast_to(nx[None, :], (height, width)).ravel(),
                                   np.broadcast_to(ny[:, None], (height, width)).ravel())
    k = (jy - y0) * width + (jx - x0)
    out = []
    for nodes in (np.asarray(gx), np.asarray(gy)):
        low = nodes[k] * (1.0 - fx) + nodes[k + 1] * fx
        high = nodes[k + width] * (1.0 - fx) + nodes[k + width + 1] * fx
        out.append(low * (1.0 - fy) + high * fy)
    return out[0], out[1]


def pixel(native: Ints, res: int) -> Ints:
    """The classification pixel containing the centre of pixel `native` of a zone's grid of `res`
    metres anchored at 0 (`res` an integer, so that the index is exact)."""
    return (2 * np.asarray(native, dtype=np.int64) * res + res) // (2 * RES)


def _grid(epsg: int, cx: npt.ArrayLike, cy: npt.ArrayLike) -> tuple[Floats, Floats]:
    """Global positions of the classification pixels ``cy x cx`` (rows as `cy` gives them)."""
    xs = (np.asarray(cx, dtype=np.int64) + 0.5) * RES
    ys = (np.asarray(cy, dtype=np.int64) + 0.5) * RES
    return positions(epsg, xs[None, :], ys[:, None])


# ----- lattice helpers ---------------------------------------------------------------------------


class _Cells:
    """Hashed per-cell values of an integer lattice over the cells some points need."""

    def __init__(self, ix: Ints, iy: Ints, margin: int) -> None:
        self.x0, self.y0 = int(ix.min()) - margin, int(iy.min()) - margin
        self.width = int(ix.max()) + margin - self.x0 + 1
        self.height = int(iy.max()) + margin - self.y0 + 1

    def values(self, *key: int) -> Floats:
        """Uniforms per cell, flat (index with `index`)."""
        ys = np.arange(self.y0, self.y0 + self.height)[:, None]
        xs = np.arange(self.x0, self.x0 + self.width)[None, :]
        return uniform(_noise.hash_(*key, ys, xs)).ravel()

    def index(self, ix: Ints, iy: Ints) -> Ints:
        return (iy - self.y0) * self.width + (ix - self.x0)


def _block_uniform(key: int, gx: Floats, gy: Floats) -> Floats:
    """A uniform per 60 m square of the global frame (a town block, a forest stand)."""
    ix, iy = np.floor(gx / 60.0).astype(np.int64), np.floor(gy / 60.0).astype(np.int64)
    if ix.size == 0:
        return np.zeros(ix.shape)
    cells = _Cells(ix, iy, 0)
    return cells.values(key)[cells.index(ix, iy)]


def _voronoi(key: int, sx: Floats, sy: Floats) -> tuple[Ints, Ints, Floats, Floats]:
    """The nearest seed of a jittered unit lattice (one seed per cell, within its middle 70 %) to
    each point in lattice units: (cell x, cell y, seed x, seed y)."""
    ix, iy = np.floor(sx).astype(np.int64), np.floor(sy).astype(np.int64)
    cells = _Cells(ix, iy, 1)
    ox = 0.15 + 0.7 * cells.values(key, 0)
    oy = 0.15 + 0.7 * cells.values(key, 1)
    best = np.full(sx.shape, np.inf)
    bx, by = ix.copy(), iy.copy()
    px, py = np.zeros(sx.shape), np.zeros(sy.shape)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            k = cells.index(ix + dx, iy + dy)
            seed_x, seed_y = (ix + dx) + ox[k], (iy + dy) + oy[k]
            d = (sx - seed_x) ** 2 + (sy - seed_y) ** 2
            closer = d < best
            np.copyto(best, d, where=closer)
            np.copyto(bx, ix + dx, where=closer)
            np.copyto(by, iy + dy, where=closer)
            np.copyto(px, seed_x, where=closer)
            np.copyto(py, seed_y, where=closer)
    return bx, by, px, py


# ----- layers ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Parcels:
    grass_share: Floats
    first: Floats  # parcel uniforms: land use, crop type, calendar shift, vigour
    second: Floats
    third: Floats
    fourth: Floats


def _parcels(gx: Floats, gy: Floats) -> _Parcels:
    """Farm blocks and the parcels inside them."""
    bx, by, px, py = _voronoi(_K_BLOCK, gx / _BLOCK_CELL, gy / _BLOCK_CELL)
    blocks = _Cells(bx, by, 0)
    k = blocks.index(bx, by)
    angle = np.minimum((blocks.values(_K_BLOCK_ATTR, 0) * len(_ANGLES)).astype(np.int64), len(_ANGLES) - 1)[k]
    size = np.minimum((blocks.values(_K_BLOCK_ATTR, 1) * len(_SIZES)).astype(np.int64), len(_SIZES) - 1)[k]
    grass_share = 0.25 + 0.45 * blocks.values(_K_BLOCK_ATTR, 2)[k]
    cos = np.array([c for c, _ in _ANGLES])[angle]
    sin = np.array([s for _, s in _ANGLES])[angle]
    along = np.array([a for a, _ in _SIZES])[size]
    across = np.array([b for _, b in _SIZES])[size]
    # Block-local frame: origin at the block's seed, axes along and across its orientation.
    rx, ry = gx - px * _BLOCK_CELL, gy - py * _BLOCK_CELL
    su = np.clip((rx * cos + ry * sin) / along, -_PARCEL_REACH + 1.0, _PARCEL_REACH - 1.0)
    sv = np.clip((ry * cos - rx * sin) / across, -_PARCEL_REACH + 1.0, _PARCEL_REACH - 1.0)
    # Parcel seeds: per block, a (2 R + 1)^2 lattice of jittered seeds around its origin.
    side = 2 * _PARCEL_REACH + 1
    block_ids = np.arange(blocks.width * blocks.height)
    block_x = (blocks.x0 + block_ids % blocks.width)[:, None]
    block_y = (blocks.y0 + block_ids // blocks.width)[:, None]
    local = np.arange(side * side)[None, :]
    ox = 0.15 + 0.7 * uniform(_noise.hash_(_K_PARCEL_SEED, 0, block_x, block_y, local)).ravel()
    oy = 0.15 + 0.7 * uniform(_noise.hash_(_K_PARCEL_SEED, 1, block_x, block_y, local)).ravel()
    iu, iv = np.floor(su).astype(np.int64), np.floor(sv).astype(np.int64)
    base = k * (side * side)
    best = np.full(gx.shape, np.inf)
    win = np.zeros(gx.shape, dtype=np.int64)
    for dv in (-1, 0, 1):
        for du in (-1, 0, 1):
            cu, cv = iu + du, iv + dv
            j = base + (cv + _PARCEL_REACH) * side + (cu + _PARCEL_REACH)
            d = (su - cu - ox[j]) ** 2 + (sv - cv - oy[j]) ** 2
            closer = d < best
            np.copyto(best, d, where=closer)
            np.copyto(win, j, where=closer)
    # The parcel's uniforms, hashed from its block's lattice cell and its seed.
    attrs = [uniform(_noise.hash_(_K_PARCEL, n, block_x, block_y, local)).ravel()[win] for n in range(4)]
    return _Parcels(grass_share, *attrs)


def _near(s: Floats) -> tuple[Ints, Ints]:
    """A point's lattice cell and the neighbour on the side of the nearer edge, per axis."""
    i = np.floor(s)
    return i.astype(np.int64), np.where(s - i < 0.5, -1, 1)


def _towns(gx: Floats, gy: Floats) -> tuple[Floats, Floats]:
    """(built-up density in [0, 1], a 120 m noise it is compared with).

    Towns and cities have radii under 0.7 of their lattice cell and nodes in the middle 60 % of
    it, so a town covers no point farther than half a cell outside its cell: the 2 x 2 cells
    around a point's nearest lattice corner hold every town that reaches it."""
    density = np.zeros(gx.shape)
    for key, cell, kinds in ((_K_TOWN, _TOWN_CELL, _TOWN_KINDS), (_K_CITY, _CITY_CELL, _CITY_KINDS)):
        sx, sy = gx / cell, gy / cell
        (ix, sidex), (iy, sidey) = _near(sx), _near(sy)
        cells = _Cells(ix, iy, 1)
        ox, oy = 0.2 + 0.6 * cells.values(key, 0), 0.2 + 0.6 * cells.values(key, 1)
        kind, size = cells.values(key, 2), cells.values(key, 3)
        radius = np.zeros(kind.shape)
        for share, smallest, spread in reversed(kinds):
            radius = np.where(kind < share, (smallest + spread * size) / cell, radius)
        # No town at a node: a huge inverse radius, so that the density is negative at once.
        inverse = np.where(radius > 0.0, 1.0 / np.where(radius > 0.0, radius * radius, 1.0), 1e12)
        for cx, cy in ((ix, iy), (ix + sidex, iy), (ix, iy + sidey), (ix + sidex, iy + sidey)):
            k = cells.index(cx, cy)
            d2 = (sx - cx - ox[k]) ** 2 + (sy - cy - oy[k]) ** 2
            # Quadratic fall-off: 1 at the centre, 0 at the radius.
            np.maximum(density, 1.0 - d2 * inverse[k], out=density)
    return density, noise((_K_URBAN_NOISE,), gx, gy, 120.0)


def _warp(gx: Floats, gy: Floats) -> tuple[Floats, Floats]:
    """Positions displaced by up to +/-150 m by a 1.2 km noise: meanders and bending roads."""
    return (gx + 300.0 * (noise((_K_WARP, 0), gx, gy, 1200.0) - 0.5),
            gy + 300.0 * (noise((_K_WARP, 1), gx, gy, 1200.0) - 0.5))


def _roads(wx: Floats, wy: Floats) -> Bools:
    """Lines between neighbouring town nodes (the `_towns` lattice), at warped positions."""
    sx, sy = wx / _TOWN_CELL, wy / _TOWN_CELL
    ix, iy = np.floor(sx).astype(np.int64), np.floor(sy).astype(np.int64)
    cells = _Cells(ix, iy, 1)
    ox, oy = 0.2 + 0.6 * cells.values(_K_TOWN, 0), 0.2 + 0.6 * cells.values(_K_TOWN, 1)
    kept_east, kept_north = cells.values(_K_ROAD, 0) >= 0.15, cells.values(_K_ROAD, 1) >= 0.15
    reach = (_ROAD_HALF_WIDTH / _TOWN_CELL) ** 2
    road = np.zeros(wx.shape, dtype=bool)
    # An east (north) road from node (i, j) stays inside row j (column i): so a point meets only
    # the east roads from its own and its western cell, the north roads from its own and southern.
    for (dx, dy), (ex, ey), kept in (((0, 0), (1, 0), kept_east), ((-1, 0), (1, 0), kept_east),
                                     ((0, 0), (0, 1), kept_north), ((0, -1), (0, 1), kept_north)):
        a, b = cells.index(ix + dx, iy + dy), cells.index(ix + dx + ex, iy + dy + ey)
        ax, ay = ix + dx + ox[a], iy + dy + oy[a]
        vx, vy = ex + ox[b] - ox[a], ey + oy[b] - oy[a]
        t = np.clip(((sx - ax) * vx + (sy - ay) * vy) / (vx * vx + vy * vy), 0.0, 1.0)
        d2 = (sx - ax - t * vx) ** 2 + (sy - ay - t * vy) ** 2
        road |= (d2 < reach) & kept[a]
    return road


def _rivers(wx: Floats, wy: Floats) -> tuple[Bools, Bools]:
    """(river water, land within reach of a river) at warped positions: 0.5 level sets of noise,
    the distance to them estimated as ``|n - 0.5| / |grad n|``. The gradient is needed only
    where ``|n - 0.5|`` is under its largest possible value times the reach (value noise slopes
    by at most 1.5 / cell per axis), a few percent of the points."""
    water = np.zeros(wx.shape, dtype=bool)
    near = np.zeros(wx.shape, dtype=bool)
    for key, octaves, half in ((_K_RIVER, _RIVER_NOISE, _RIVER_HALF_WIDTH),
                               (_K_MAJOR, _MAJOR_NOISE, _MAJOR_HALF_WIDTH)):
        total = sum(w for _, w in octaves)
        offset = fbm((key,), wx, wy, octaves) - 0.5
        steepest = sum(1.5 * math.sqrt(2.0) * w / total / cell for cell, w in octaves)
        close = np.flatnonzero(np.abs(offset) < steepest * (half + _WETLAND_REACH))
        px, py = wx.ravel()[close], wy.ravel()[close]
        ddx, ddy = np.zeros(close.size), np.zeros(close.size)
        for n, (cell, weight) in enumerate(octaves):
            _, a, b = noise_gradient((key, n), px, py, cell)
            ddx += (weight / total) * a
            ddy += (weight / total) * b
        offset2, slope2 = offset.ravel()[close] ** 2, ddx * ddx + ddy * ddy
        water.ravel()[close] = offset2 < half * half * slope2
        near.ravel()[close] = offset2 < (half + _WETLAND_REACH) ** 2 * slope2
    return water, near


def _cover(gx: Floats, gy: Floats) -> tuple[Ints, Ints, Floats, Floats]:
    """(cover, crop, shift, vigour) at global positions (1-D or 2-D arrays).

    The layers from the top down, each computed only where no higher one has decided: water,
    roads, towns, forest, then the parcels (the costliest) on what is left."""
    shape = gx.shape
    gx, gy = gx.ravel(), gy.ravel()
    cover = np.full(gx.size, int(Cover.WATER), dtype=np.int64)
    crop = np.full(gx.size, int(Crop.NONE), dtype=np.int64)
    shift = np.zeros(gx.size)
    vigour = np.full(gx.size, 0.5)
    wx, wy = _warp(gx, gy)
    water, near_river = _rivers(wx, wy)
    water |= fbm((_K_LAKE,), gx, gy, _LAKE_NOISE) > threshold(_LAKE_NOISE, _LAKE_SHARE)
    rest = np.flatnonzero(~water)
    if rest.size == 0:
        return cover.reshape(shape), crop.reshape(shape), shift.reshape(shape), vigour.reshape(shape)
    road = _roads(wx[rest], wy[rest])
    cover[rest[road]] = int(Cover.ROAD)
    rest = rest[~road]
    if rest.size == 0:
        return cover.reshape(shape), crop.reshape(shape), shift.reshape(shape), vigour.reshape(shape)
    gx, gy = gx[rest], gy[rest]
    density, urban_noise = _towns(gx, gy)
    vigour[rest] = _block_uniform(_K_BLOCK_VIGOUR, gx, gy)  # how green a town block, a forest stand
    built = density > 0.05 + 0.6 * urban_noise
    cover[rest[built]] = int(Cover.BUILT)
    forest = ~built
    forest[forest] = fbm((_K_FOREST,), gx[forest], gy[forest], _FOREST_NOISE) > threshold(_FOREST_NOISE,
                                                                                          _FOREST_SHARE)
    cover[rest[forest]] = int(Cover.TREE)
    fields = ~built & ~forest
    rest, near = rest[fields], near_river[rest[fields]]
    if rest.size:
        parcels = _parcels(gx[fields], gy[fields])
        first = parcels.first
        use = (first - 0.045) / 0.955
        farmed = np.where(use < parcels.grass_share, int(Cover.GRASS), int(Cover.CROP))
        kind = np.where(first < 0.035, int(Cover.TREE), np.where(first < 0.045, int(Cover.BARE), farmed))
        kind = np.where(near & (parcels.fourth < 0.25) & (kind != Cover.TREE), int(Cover.WETLAND), kind)
        cover[rest] = kind
        bounds = np.cumsum(_CROP_SHARES)[:-1]
        crop[rest] = np.where(kind == Cover.CROP, 1 + np.searchsorted(bounds, parcels.second, side="right"),
                              int(Crop.NONE))
        shift[rest] = _SHIFT_DAYS * (2.0 * parcels.third - 1.0)
        vigour[rest] = parcels.fourth
    return cover.reshape(shape), crop.reshape(shape), shift.reshape(shape), vigour.reshape(shape)


def _land(gx: Floats, gy: Floats) -> Land:
    cover, crop, shift, vigour = _cover(gx, gy)
    soil = 0.75 + 0.5 * fbm((_K_SOIL,), gx, gy, _SOIL_NOISE)
    roof = 0.75 + 0.6 * _block_uniform(_K_ROOF, gx, gy)
    turbidity = 0.85 + 0.5 * fbm((_K_TURBIDITY,), gx, gy, _TURBIDITY_NOISE)
    brightness = np.where(cover == Cover.WATER, turbidity, np.where(cover == Cover.BUILT, roof, soil))
    return Land(cover=cover, crop=crop, shift=shift, vigour=vigour, brightness=brightness, x=gx, y=gy)


# ----- public sampling ---------------------------------------------------------------------------


def land(epsg: int, cx: npt.ArrayLike, cy: npt.ArrayLike) -> Land:
    """The map on the classification pixels ``cy x cx`` of zone `epsg` (absolute indices on the
    `RES` grid, ``floor(x / RES)`` of a centre in UTM metres), arrays ``(len(cy), len(cx))``."""
    return _land(*_grid(epsg, cx, cy))


def land_at(epsg: int, x: npt.ArrayLike, y: npt.ArrayLike) -> Land:
    """The map at the UTM points (`x`, `y`) of zone `epsg` (broadcast together)."""
    return _land(*positions(epsg, x, y))


def classes(epsg: int, cx: npt.ArrayLike, cy: npt.ArrayLike) -> Ints:
    """ESA WorldCover codes of the classification pixels ``cy x cx`` of zone `epsg` (as `land`,
    without computing what only the sensors need)."""
    cx, cy = np.asarray(cx, dtype=np.int64), np.asarray(cy, dtype=np.int64)
    out = np.empty((cy.size, cx.size), dtype=np.int64)
    # In bands of rows: each pixel is computed alone, so this bounds the memory and changes nothing.
    rows = max(1, _CHUNK_PIXELS // max(cx.size, 1))
    for start in range(0, cy.size, rows):
        out[start:start + rows] = _CODES[_cover(*_grid(epsg, cx, cy[start:start + rows]))[0]]
    return out


# ----- phenology ---------------------------------------------------------------------------------


def season(doy: float) -> float:
    """0 in mid January, 1 in mid July (of the local seasons)."""
    return 0.5 - 0.5 * math.cos(2.0 * math.pi * (doy - 17.0) / 365.25)


_BARE_FV = 0.05
_WINTER_FV = 0.3
_SENESCENT_FV = 0.3
_STAGES = np.array([[0.0, 1.0, 2.0, 3.0, 4.0]] + [[c.sow, c.emerge, c.peak, c.senesce, c.harvest]
                                  for c in CALENDARS.values()])
_WINTER = np.array([False] + [c.winter for c in CALENDARS.values()])


def _crop_fraction(crop: Ints, shift: Floats, vigour: Floats, doy: float) -> Floats:
    sow, emerge, peak, senesce, harvest = (_STAGES[crop, n] + shift for n in range(5))
    winter = _WINTER[crop]
    top = 0.86 + 0.1 * vigour
    start = np.where(winter, _WINTER_FV, _BARE_FV)
    ramp = np.clip((doy - emerge) / (peak - emerge), 0.0, 1.0)
    grow = start + (top - start) * ramp * ramp * (3.0 - 2.0 * ramp)
    decline = top + (_SENESCENT_FV - top) * np.clip((doy - senesce) / (harvest - senesce), 0.0, 1.0)
    autumn = _BARE_FV + (_WINTER_FV - _BARE_FV) * np.clip((doy - sow - 15.0) / 45.0, 0.0, 1.0)
    after = np.where(winter & (doy >= sow), autumn, _BARE_FV)
    late = np.where(doy < harvest, decline, after)
    return np.where(doy < emerge, start, np.where(doy < senesce, grow, late))


def vegetation_fraction(land: Land, doy: float) -> Floats:
    """Green-vegetation cover of each pixel in [0, 1] on day-of-year `doy` of the local seasons
    (the caller shifts it half a year south of the equator)."""
    s = season(doy)
    v = land.vigour
    crop = _crop_fraction(land.crop, land.shift, v, doy)
    return np.select(
        [land.cover == Cover.CROP, land.cover == Cover.GRASS, land.cover == Cover.TREE,
         land.cover == Cover.WETLAND, land.cover == Cover.BARE, land.cover == Cover.BUILT,
         land.cover == Cover.ROAD],
        [crop, 0.62 + 0.08 * v + 0.25 * s, 0.66 + 0.05 * v + 0.25 * s, 0.62 + 0.1 * v + 0.2 * s,
         0.04 + 0.1 * v, 0.05 + 0.2 * v, np.full(v.shape, 0.02)],
        0.0,
    )
