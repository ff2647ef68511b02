"""Synthetic Sentinel-2 L2A, generated on the fly from a hash: no files, no RNG state.

Every value is a pure function of (UTM zone EPSG, absolute pixel index at the band's native
resolution, date, band). The absolute index of a pixel is ``(floor(x / res), floor(y / res))`` of
its centre in UTM metres, so two tiles that share or abut pixels agree on them exactly, and a
rerun is bit-identical. Only integer hashing and exactly rounded operations (``+ - * /``,
``floor``, ``rint``, ``clip``, comparisons) touch pixel data, never ``sin``/``exp``, whose SIMD and
scalar paths may round differently; trigonometry is used only for per-scene scalars.

The model, in layers, all at the 20 m classification grid (the SCL grid) unless said otherwise:

- Land cover (static): smooth value-noise fields place water (~6 % of the area) and urban areas
  (~10 %); the rest is a brick pattern of 300 m x 240 m parcels of crops, grassland, forest and
  bare soil (public as `land_cover`, which `worldcover` serves as ESA WorldCover). A vegetation
  fraction ``fv`` mixes a green-vegetation and a soil (or urban) spectrum. Grassland and forest
  follow a seasonal curve (lowest mid January, highest mid July; half a year later south of the
  equator); crops are bare until a per-parcel sowing day, green up over 45 days and are
  harvested 100-150 days later.
- SCL 4 (vegetation) where ``fv >= 0.6`` on land, which keeps NDVI above ~0.5; 5 (not vegetated)
  elsewhere on land and in towns; 6 water.
- Clouds: per scene a cloud cover ``cc`` (percent, from the hash of zone and date) and a cloud
  field, a four-octave value noise (features of 0.1-2 km). The field is thresholded at its own
  ``1 - cc/100`` quantile (measured once per process on 65536 sample points), so the
  *expected* share of cloudy pixels (SCL 8, 9, 10) equals ``eo:cloud_cover``. The densest 60 % of
  a scene's cloud is SCL 9, the rest 8, or 10 (thin cirrus) where a per-scene cirrus field says
  so. Clouds blend the surface with a bright cloud spectrum (opacity 0.55-1 for 8/9, 0.3-0.4 for
  cirrus): bright in all bands.
- Cloud shadows (SCL 3): the thick cloud mask (8, 9) displaced 500-1200 m away from the sun
  (north-north-west in the northern hemisphere, longer in winter), outside clouds; the surface
  is darkened to 35 %.
- Snow (SCL 11): in the cold season only, in about a quarter of the mid-winter scenes, over
  5-40 % of the land; bright in the visible, dark in SWIR.

Reflectances are delivered as float32 holding integer DN in 1..10000 (no integer wraparound when
the engine subtracts bands); 0 is nodata and never produced. Each band adds a static +/-4 %
per-pixel texture at its native resolution and a +/-1 % per-scene radiometric factor.

Resampling in `load`: every output pixel takes the band's native pixel that contains its centre.
So a coarser band is upsampled by nearest neighbour and a finer band is downsampled by nearest
neighbour (not block mean), and SCL stays a valid class map at any resolution.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from enum import IntEnum
from functools import cache
from types import MappingProxyType

import numpy as np
import numpy.typing as npt
import xarray as xr

__all__ = [
    "BANDS",
    "CLOUD_CLASSES",
    "EPOCH",
    "FIRST_DATE",
    "LAND_RES",
    "NODATA",
    "REFLECTANCE_BANDS",
    "REVISIT_DAYS",
    "SCL",
    "SCL_CLASSES",
    "SCL_PRODUCED",
    "LandCover",
    "Scene",
    "acquisitions",
    "cloud_cover",
    "cube",
    "is_acquisition",
    "land_cover",
    "land_pixel",
    "load",
    "pixel_axis",
]

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]
Bools = npt.NDArray[np.bool_]
Bounds = tuple[float, float, float, float]

EPOCH = date(2015, 6, 23)
"""Sentinel-2A launch: acquisitions fall on ``EPOCH + k * REVISIT_DAYS``."""
REVISIT_DAYS = 5
"""Days between two acquisitions of the same place (Sentinel-2A and -2B together)."""
FIRST_DATE = date(2017, 3, 28)
"""Start of the collection's temporal extent; no scenes before it."""
NODATA = 0
"""Nodata value of every band; never produced by the generator."""

BANDS: Mapping[str, int] = MappingProxyType({
    "B01": 60, "B02": 10, "B03": 10, "B04": 10, "B05": 20, "B06": 20, "B07": 20, "B08": 10,
    "B8A": 20, "B09": 60, "B11": 20, "B12": 20, "SCL": 20,
})
"""Band name -> native resolution in metres, in collection order (L2A has no B10)."""
REFLECTANCE_BANDS: tuple[str, ...] = tuple(b for b in BANDS if b != "SCL")
"""The bands holding surface reflectance in DN (0-10000)."""


class SCL(IntEnum):
    """Sen2Cor scene classification values."""

    NO_DATA = 0
    SATURATED_OR_DEFECTIVE = 1
    DARK_AREA_PIXELS = 2
    CLOUD_SHADOWS = 3
    VEGETATION = 4
    NOT_VEGETATED = 5
    WATER = 6
    UNCLASSIFIED = 7
    CLOUD_MEDIUM_PROBABILITY = 8
    CLOUD_HIGH_PROBABILITY = 9
    THIN_CIRRUS = 10
    SNOW = 11


SCL_CLASSES: Mapping[int, str] = MappingProxyType({int(c): c.name.lower() for c in SCL})
"""SCL value -> class name, all Sen2Cor classes."""
SCL_PRODUCED: frozenset[int] = frozenset({3, 4, 5, 6, 8, 9, 10, 11})
"""The SCL classes the generator produces (0, 1, 2 and 7 never occur)."""
CLOUD_CLASSES: frozenset[int] = frozenset({8, 9, 10})
"""The SCL classes counted in ``eo:cloud_cover``."""

# Spectra in DN for REFLECTANCE_BANDS: B01 B02 B03 B04 B05 B06 B07 B08 B8A B09 B11 B12.
_VEGETATION = (250, 300, 600, 300, 900, 2800, 3400, 3600, 3700, 3300, 1900, 900)
_SOIL = (900, 1000, 1300, 1700, 1900, 2050, 2200, 2350, 2450, 2400, 3200, 2600)
_URBAN = (1200, 1300, 1400, 1500, 1600, 1700, 1750, 1800, 1850, 1800, 2300, 2100)
_WATER = (700, 650, 600, 350, 300, 200, 180, 150, 130, 100, 60, 40)
_SNOW = (9000, 9300, 9200, 9000, 8800, 8600, 8400, 8200, 8000, 7500, 1200, 900)
_CLOUD = (7800, 7600, 7500, 7500, 7500, 7600, 7600, 7700, 7700, 6000, 5800, 4500)

# Value-noise octaves: (lattice cell in metres, weight).
_CLOUD_NOISE = ((2000.0, 1.0), (800.0, 0.5), (320.0, 0.25), (120.0, 0.12))
_CIRRUS_NOISE = ((5000.0, 1.0), (1500.0, 0.5))
_WATER_NOISE = ((6000.0, 1.0), (2400.0, 0.5), (900.0, 0.25))
_URBAN_NOISE = ((5000.0, 1.0), (2000.0, 0.5), (700.0, 0.25))
_SNOW_NOISE = ((8000.0, 1.0), (2500.0, 0.5), (700.0, 0.25))
_SOIL_NOISE = ((1500.0, 1.0), (400.0, 0.5))
_TURBIDITY_NOISE = ((2500.0, 1.0),)

LAND_RES = 20
"""Metres of the classification grid, anchored at 0: land cover, clouds, shadows and snow live here."""
_CLASS_RES = LAND_RES
_VEGETATION_FV = 0.6  # vegetation fraction from which a land pixel is SCL 4
_HIGH_SHARE = 0.6  # share of a scene's cloud that is SCL 9
_SHADOW_FACTOR = 0.35


class LandCover(IntEnum):
    """The land-cover kinds of the classification grid (`land_cover`)."""

    WATER = 0
    URBAN = 1
    CROP = 2
    GRASS = 3
    FOREST = 4
    BARE = 5


_WATER_K, _URBAN_K, _CROP_K, _GRASS_K, _FOREST_K, _BARE_K = (int(k) for k in LandCover)

# Hash-key namespaces, so that no two fields share a stream.
(_K_WATER, _K_URBAN, _K_ROWSHIFT, _K_PARCEL, _K_PARCEL_A, _K_PARCEL_B, _K_SOIL, _K_BLOCK,
 _K_TURBIDITY, _K_TEXTURE, _K_RADIOMETRY, _K_CLOUD, _K_CIRRUS, _K_SCENE, _K_SNOW,
 _K_QUANTILES) = range(1, 17)


@dataclass(frozen=True)
class Scene:
    """One acquisition: its date and the scene's cloud cover in percent (``eo:cloud_cover``)."""

    date: date
    cloud_cover: float


# ----- hashing and value noise ---------------------------------------------------------------------

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


def _mix(h: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    """splitmix64's finaliser. Arrays only: numpy warns on overflow of uint64 scalars, not arrays."""
    h = (h ^ (h >> np.uint64(30))) * _M1
    h = (h ^ (h >> np.uint64(27))) * _M2
    return h ^ (h >> np.uint64(31))


def _hash(*parts: int | npt.ArrayLike) -> npt.NDArray[np.uint64]:
    """A 64-bit hash of integer parts, broadcast together; put scalars first, then 1-D axes, so
    that only the last combination runs over the full grid."""
    h = np.zeros(1, dtype=np.uint64)
    for part in parts:
        word = np.atleast_1d(np.asarray(part, dtype=np.int64)).view(np.uint64)
        h = _mix(h ^ _mix(word + _GOLDEN))
    return h


def _uniform(h: npt.NDArray[np.uint64]) -> Floats:
    """Hash -> float64 uniform in [0, 1)."""
    return (h >> np.uint64(11)).astype(np.float64) * (1.0 / 2.0**53)


def _u(*parts: int) -> float:
    """A uniform in [0, 1) for scalar parts (per-scene values)."""
    return float(_uniform(_hash(*parts))[0])


def _value_noise(key: tuple[int, ...], xs: Floats, ys: Floats, cell: float) -> Floats:
    """Smooth noise in [0, 1] on the grid ``ys x xs`` (metres): hashed values on a lattice of
    ``cell`` metres, interpolated with smoothstep weights, separably (x first, then y)."""
    gx, gy = xs / cell, ys / cell
    fx, fy = np.floor(gx), np.floor(gy)
    wx, wy = gx - fx, gy - fy
    wx, wy = wx * wx * (3.0 - 2.0 * wx), wy * wy * (3.0 - 2.0 * wy)
    ix, iy = fx.astype(np.int64), fy.astype(np.int64)
    x0, y0 = int(ix.min()), int(iy.min())
    lattice = _uniform(_hash(*key, np.arange(y0, int(iy.max()) + 2)[:, None],
                             np.arange(x0, int(ix.max()) + 2)[None, :]))
    jx, jy = ix - x0, iy - y0
    rows = lattice[:, jx] * (1.0 - wx) + lattice[:, jx + 1] * wx
    return rows[jy] * (1.0 - wy)[:, None] + rows[jy + 1] * wy[:, None]


def _fbm(key: tuple[int, ...], xs: Floats, ys: Floats, octaves: tuple[tuple[float, float], ...]) -> Floats:
    """A weighted sum of value-noise octaves, normalised to [0, 1]."""
    total = sum(w for _, w in octaves)
    out = np.zeros((ys.size, xs.size))
    for n, (cell, weight) in enumerate(octaves):
        out += (weight / total) * _value_noise((*key, n), xs, ys, cell)
    return out


@cache
def _sorted_sample(octaves: tuple[tuple[float, float], ...]) -> Floats:
    """2**16 values of an fBm field at scattered points, sorted: its empirical distribution.

    Every key gives the same distribution, and at one point the four lattice values of each
    octave are i.i.d. uniforms, so each sample draws them afresh instead of building lattices
    (which the finest octave would make large); the points spread over 1000 km so the
    fractional positions in the octaves have their joint distribution."""
    index = np.arange(1 << 16)
    xs = _uniform(_hash(_K_QUANTILES, 0, index)) * 1e6
    ys = _uniform(_hash(_K_QUANTILES, 1, index)) * 1e6
    total = sum(w for _, w in octaves)
    out = np.zeros(index.size)
    for n, (cell, weight) in enumerate(octaves):
        fx, fy = xs / cell - np.floor(xs / cell), ys / cell - np.floor(ys / cell)
        wx, wy = fx * fx * (3.0 - 2.0 * fx), fy * fy * (3.0 - 2.0 * fy)
        a, b, c, d = (_uniform(_hash(_K_QUANTILES, 2 + n, corner, index)) for corner in range(4))
        out += (weight / total) * ((a * (1.0 - wx) + b * wx) * (1.0 - wy) + (c * (1.0 - wx) + d * wx) * wy)
    return np.sort(out)


def _threshold(octaves: tuple[tuple[float, float], ...], exceed: float) -> float:
    """The level that a share `exceed` of the field lies above (+inf for 0, -inf for 1)."""
    if exceed <= 0.0:
        return math.inf
    if exceed >= 1.0:
        return -math.inf
    sample = _sorted_sample(octaves)
    return float(sample[min(sample.size - 1, int((1.0 - exceed) * sample.size))])


# ----- scenes --------------------------------------------------------------------------------------


def _centres(index: Ints, res: float) -> Floats:
    """Centres in metres of the pixels `index` of a grid of `res` metres anchored at 0."""
    return np.asarray((index + 0.5) * res, dtype=np.float64)


def _zone(epsg: int) -> bool:
    """Validate a UTM EPSG code; True for the southern hemisphere."""
    if not (32601 <= epsg <= 32660 or 32701 <= epsg <= 32760):
        raise ValueError(f"not a WGS 84 / UTM EPSG code: {epsg}")
    return epsg > 32700


def _check_bounds(bounds: Bounds) -> None:
    west, south, east, north = bounds
    if not all(math.isfinite(v) for v in bounds) or west >= east or south >= north:
        raise ValueError(f"bounds must be finite (west, south, east, north) with west < east and "
                         f"south < north, not {bounds}")


def _as_datetime(value: str | date) -> datetime:
    """A naive UTC datetime: dates at midnight, ISO strings with or without time and offset."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        return value
    return datetime(value.year, value.month, value.day)


def is_acquisition(day: date) -> bool:
    """Whether the collection has a scene on `day` (the same days in every zone)."""
    return day >= FIRST_DATE and (day - EPOCH).days % REVISIT_DAYS == 0


def cloud_cover(epsg: int, day: date) -> float:
    """The scene's ``eo:cloud_cover`` in percent, rounded to 0.01: a quarter of the scenes are
    nearly clear (< 5 %), 30 % partly cloudy (5-50 %), 45 % mostly cloudy (50-100 %)."""
    _zone(epsg)
    kind, share = _u(epsg, _K_SCENE, day.toordinal(), 0), _u(epsg, _K_SCENE, day.toordinal(), 1)
    if kind < 0.25:
        cover = 5.0 * share
    elif kind < 0.55:
        cover = 5.0 + 45.0 * share
    else:
        cover = 50.0 + 50.0 * share
    return round(cover, 2)


def acquisitions(epsg: int, bounds: Bounds, start: str | date, end: str | date) -> list[Scene]:
    """The scenes of `epsg` over `bounds` from `start` (inclusive) to `end` (exclusive), as in an
    openEO temporal extent; a scene is at midnight UTC of its day. Every place in a zone has the
    same dates, a scene every `REVISIT_DAYS` days from `FIRST_DATE` on."""
    _zone(epsg)
    _check_bounds(bounds)
    first, stop = _as_datetime(start), _as_datetime(end)
    lower = max(first, datetime(FIRST_DATE.year, FIRST_DATE.month, FIRST_DATE.day))
    offset = (lower - datetime(EPOCH.year, EPOCH.month, EPOCH.day)).total_seconds() / 86400
    day = EPOCH + timedelta(days=REVISIT_DAYS * math.ceil(offset / REVISIT_DAYS))
    scenes = []
    while datetime(day.year, day.month, day.day) < stop:
        scenes.append(Scene(day, cloud_cover(epsg, day)))
        day += timedelta(days=REVISIT_DAYS)
    return scenes


# ----- the classification grid ---------------------------------------------------------------------


def _local_doy(day: date, south: bool) -> float:
    """Day of the year as seen by the seasons: shifted half a year south of the equator."""
    doy = day.timetuple().tm_yday
    return (doy + 182.6) % 365.25 if south else float(doy)


def _season(doy: float) -> float:
    """0 in mid January, 1 in mid July."""
    return 0.5 - 0.5 * math.cos(2.0 * math.pi * (doy - 17.0) / 365.25)


@dataclass(frozen=True)
class _Land:
    """Static land cover on classification pixels ``cy x cx`` (ascending absolute indices; rows
    ascending in northing)."""

    kind: Ints
    param_a: Floats  # per-parcel uniforms: vigour, sowing day
    param_b: Floats  # crop season length
    background: Ints  # the spectrum mixed with vegetation: 0 soil, 1 urban, 2 water
    brightness: Floats  # soil, urban or water factor for the background spectrum


def _kinds(epsg: int, cx: Ints, cy: Ints) -> tuple[Ints, Ints, Ints]:
    """(kind, parcel row, parcel column) on classification pixels ``cy x cx``."""
    xs, ys = _centres(cx, _CLASS_RES), _centres(cy, _CLASS_RES)
    water = _fbm((epsg, _K_WATER), xs, ys, _WATER_NOISE) < _threshold(_WATER_NOISE, 0.94)
    urban = _fbm((epsg, _K_URBAN), xs, ys, _URBAN_NOISE) > _threshold(_URBAN_NOISE, 0.10)
    # Parcels: rows 240 m tall, each row's columns (300 m wide) shifted, like bricks.
    prow = (cy * _CLASS_RES + _CLASS_RES // 2) // 240
    shift = np.floor(_uniform(_hash(epsg, _K_ROWSHIFT, prow)) * 300).astype(np.int64)
    pcol = (cx[None, :] * _CLASS_RES + _CLASS_RES // 2 + shift[:, None]) // 300
    parcel = _uniform(_hash(epsg, _K_PARCEL, prow[:, None], pcol))
    kind = np.select([parcel < 0.40, parcel < 0.70, parcel < 0.85], [_CROP_K, _GRASS_K, _FOREST_K], _BARE_K)
    kind[urban] = _URBAN_K
    kind[water] = _WATER_K
    return kind.astype(np.int64), prow, pcol


def land_cover(epsg: int, cx: Ints, cy: Ints) -> Ints:
    """The `LandCover` kind of the classification pixels ``cy x cx`` of zone `epsg`: absolute
    indices on the `LAND_RES` grid (``floor(x / LAND_RES)`` of a centre in UTM metres), rows as
    `cy` gives them. The static layer under every band: SCL 6 exactly where it is WATER and the
    sky is clear."""
    _zone(epsg)
    return _kinds(epsg, np.asarray(cx, dtype=np.int64), np.asarray(cy, dtype=np.int64))[0]


def land_pixel(native: Ints, res: int) -> Ints:
    """The classification pixel containing the centre of pixel `native` of a grid of `res` metres
    anchored at 0 (`res` an integer, so that the index is exact)."""
    return _class_index(native, res)


def _land(epsg: int, cx: Ints, cy: Ints) -> _Land:
    xs, ys = _centres(cx, _CLASS_RES), _centres(cy, _CLASS_RES)
    kind, prow, pcol = _kinds(epsg, cx, cy)
    soil = 0.75 + 0.5 * _fbm((epsg, _K_SOIL), xs, ys, _SOIL_NOISE)
    block = 0.75 + 0.6 * _uniform(_hash(epsg, _K_BLOCK, (cy // 3)[:, None], (cx // 3)[None, :]))
    turbidity = 0.85 + 0.5 * _fbm((epsg, _K_TURBIDITY), xs, ys, _TURBIDITY_NOISE)
    brightness = np.where(kind == _WATER_K, turbidity, np.where(kind == _URBAN_K, block, soil))
    return _Land(
        kind=kind,
        param_a=_uniform(_hash(epsg, _K_PARCEL_A, prow[:, None], pcol)),
        param_b=_uniform(_hash(epsg, _K_PARCEL_B, prow[:, None], pcol)),
        background=np.where(kind == _WATER_K, 2, np.where(kind == _URBAN_K, 1, 0)).astype(np.int64),
        brightness=brightness,
    )


def _vegetation_fraction(land: _Land, doy: float) -> Floats:
    """Fraction of green vegetation per pixel on `doy` (local season)."""
    season = _season(doy)
    a, b = land.param_a, land.param_b
    sow = 60.0 + 90.0 * a
    harvest = sow + 100.0 + 50.0 * b
    green = np.clip((doy - sow) / 45.0, 0.0, 1.0) * np.clip((harvest - doy) / 30.0, 0.0, 1.0)
    crop = 0.06 + 0.9 * green * green * (3.0 - 2.0 * green)
    return np.select(
        [land.kind == _CROP_K, land.kind == _GRASS_K, land.kind == _FOREST_K, land.kind == _BARE_K,
         land.kind == _URBAN_K],
        [crop, 0.62 + 0.08 * a + 0.25 * season, 0.70 + 0.05 * a + 0.22 * season, 0.04 + 0.1 * a,
         0.05 + 0.25 * a],
        0.0,
    )


@dataclass(frozen=True)
class _Sky:
    """One scene on the classification grid: what the surface and atmosphere do to each band."""

    scl: npt.NDArray[np.uint8]
    fv: Floats
    snow: Bools
    keep: Floats  # share of the (shadowed) surface signal that reaches the sensor
    cloud: Floats  # cloud opacity


def _sky(epsg: int, day: date, land: _Land, cx: Ints, cy: Ints) -> _Sky:
    south = _zone(epsg)
    doy = _local_doy(day, south)
    ordinal = day.toordinal()
    fv = _vegetation_fraction(land, doy)
    is_land = land.kind != _WATER_K
    scl = np.where(is_land & (land.kind != _URBAN_K) & (fv >= _VEGETATION_FV), 4, 5).astype(np.uint8)
    scl[~is_land] = 6

    winter = max(0.0, math.cos(2.0 * math.pi * (doy - 17.0) / 365.25))
    snowy = _u(epsg, _K_SNOW, ordinal, 0) < 0.25 * winter
    snow_share = 0.05 + 0.35 * _u(epsg, _K_SNOW, ordinal, 1) if snowy else 0.0
    xs, ys = _centres(cx, _CLASS_RES), _centres(cy, _CLASS_RES)
    if snow_share > 0.0:
        snow = is_land & (_fbm((epsg, _K_SNOW, ordinal), xs, ys, _SNOW_NOISE)
                          > _threshold(_SNOW_NOISE, snow_share))
    else:
        snow = np.zeros(scl.shape, dtype=bool)
    scl[snow] = 11

    # Clouds also where the shadows come from, so that shadows of clouds beyond the block show;
    # everything here is a function of the absolute classification pixel.
    cover = cloud_cover(epsg, day) / 100.0
    reach = (500.0 + 700.0 * (1.0 - _season(doy))) / _CLASS_RES
    ox, oy = round(0.5 * reach), round(0.866 * reach) * (1 if south else -1)
    ex, ey = np.union1d(cx, cx + ox), np.union1d(cy, cy + oy)
    exs, eys = _centres(ex, _CLASS_RES), _centres(ey, _CLASS_RES)
    field = _fbm((epsg, _K_CLOUD, ordinal), exs, eys, _CLOUD_NOISE)
    low, high = _threshold(_CLOUD_NOISE, cover), _threshold(_CLOUD_NOISE, _HIGH_SHARE * cover)
    cirrus_level = _threshold(_CIRRUS_NOISE, 0.5 * _u(epsg, _K_CIRRUS, ordinal, 0))
    cirrus_ext = (field > low) & (field <= high) & (
        _fbm((epsg, _K_CIRRUS, ordinal), exs, eys, _CIRRUS_NOISE) > cirrus_level)
    thick = (field > low) & ~cirrus_ext  # clouds that cast shadows: SCL 8 and 9
    core = np.ix_(np.searchsorted(ey, cy), np.searchsorted(ex, cx))
    c, cirrus = field[core], cirrus_ext[core]
    cloudy, dense = c > low, c > high
    shadow = thick[np.ix_(np.searchsorted(ey, cy + oy), np.searchsorted(ex, cx + ox))] & ~cloudy
    scl[shadow] = 3
    scl[cloudy] = 8
    scl[cirrus] = 10
    scl[dense] = 9

    span = max(high - low, 1e-6) if math.isfinite(high) and math.isfinite(low) else 1.0
    opacity = np.where(dense, 0.85 + 0.15 * np.clip((c - high) / 0.05, 0.0, 1.0),
                       np.where(cirrus, 0.3 + 0.1 * np.clip((c - low) / span, 0.0, 1.0),
                                np.where(cloudy, 0.55 + 0.3 * np.clip((c - low) / span, 0.0, 1.0), 0.0)))
    keep = (1.0 - opacity) * np.where(shadow, _SHADOW_FACTOR, 1.0)
    return _Sky(scl=scl, fv=fv, snow=snow, keep=keep, cloud=opacity)


def _band_on_class_grid(band: str, land: _Land, sky: _Sky) -> tuple[Floats, Floats]:
    """(P, Q) with reflectance = P * texture + Q: the textured surface signal and the cloud's."""
    i = REFLECTANCE_BANDS.index(band)
    background = np.array([_SOIL[i], _URBAN[i], _WATER[i]], dtype=np.float64)
    surface = sky.fv * _VEGETATION[i] + (1.0 - sky.fv) * background[land.background] * land.brightness
    surface = np.where(sky.snow, float(_SNOW[i]), surface)
    return surface * sky.keep, sky.cloud * _CLOUD[i]


# ----- loading -------------------------------------------------------------------------------------


def pixel_axis(low: float, high: float, res: float, descending: bool) -> Floats:
    """Pixel centres of the grid snapped to multiples of `res` that covers [low, high] (each provider
    of the synthetic collections lays its pixels on this grid)."""
    first, stop = math.floor(low / res), math.ceil(high / res)
    centres = _centres(np.arange(first, max(stop, first + 1)), res)
    return centres[::-1].copy() if descending else centres


def _class_index(native: Ints, res: int) -> Ints:
    """The classification pixel that contains the centre of native pixel `native` at `res` m."""
    return (2 * native * res + res) // (2 * _CLASS_RES)


def load(epsg: int, bounds: Bounds, dates: Sequence[date], bands: Sequence[str],
         resolution: float | None = None) -> xr.DataArray:
    """Synthetic L2A over `bounds` (UTM metres in `epsg`) as a cube ``(t, bands, y, x)``.

    The grid has `resolution` metres (default: the finest native resolution among `bands`),
    snapped to multiples of it and covering `bounds`; ``x``/``y`` are pixel centres, ``y``
    descending. Every output pixel takes the band's native pixel containing its centre (nearest
    neighbour both ways). Values are float32 DN (reflectance 1-10000, SCL classes); `dates` must
    be acquisition days (see `acquisitions`).
    """
    _zone(epsg)
    _check_bounds(bounds)
    if not bands:
        raise ValueError("no bands requested")
    unknown = [b for b in bands if b not in BANDS]
    if unknown:
        raise ValueError(f"unknown bands {unknown}; SENTINEL2_L2A has {list(BANDS)}")
    days = [d.date() if isinstance(d, datetime) else d for d in dates]
    missing = [d.isoformat() for d in days if not is_acquisition(d)]
    if missing:
        raise ValueError(f"no SENTINEL2_L2A acquisition on {missing}: scenes are every {REVISIT_DAYS} "
                         f"days from {FIRST_DATE.isoformat()} on the days k * {REVISIT_DAYS} after "
                         f"{EPOCH.isoformat()}")
    res = float(resolution) if resolution is not None else float(min(BANDS[b] for b in bands))
    if not (math.isfinite(res) and res > 0):
        raise ValueError(f"resolution must be a positive number of metres, not {resolution}")

    west, south_m, east, north = bounds
    xs, ys = pixel_axis(west, east, res, False), pixel_axis(south_m, north, res, True)

    # Per native resolution: native pixel and classification pixel of each output column/row.
    natives = {BANDS[b] for b in bands}
    native_x = {r: np.floor(xs / r).astype(np.int64) for r in natives}
    native_y = {r: np.floor(ys / r).astype(np.int64) for r in natives}
    class_x = {r: _class_index(native_x[r], r) for r in natives}
    class_y = {r: _class_index(native_y[r], r) for r in natives}
    # The classification pixels needed: all of them at native resolution, a sparse lattice of
    # them when the output is coarser (every field is evaluated pointwise).
    cx = np.unique(np.concatenate(list(class_x.values())))
    cy = np.unique(np.concatenate(list(class_y.values())))
    gather = {r: np.ix_(np.searchsorted(cy, class_y[r]), np.searchsorted(cx, class_x[r])) for r in natives}
    texture = {BANDS[b]: _texture(epsg, BANDS[b], native_x[BANDS[b]], native_y[BANDS[b]])
               for b in bands if b != "SCL"}

    land = _land(epsg, cx, cy)
    out = np.empty((len(days), len(bands), ys.size, xs.size), dtype=np.float32)
    for t, day in enumerate(days):
        sky = _sky(epsg, day, land, cx, cy)
        for k, band in enumerate(bands):
            r = BANDS[band]
            if band == "SCL":
                out[t, k] = sky.scl[gather[r]]
                continue
            p, q = _band_on_class_grid(band, land, sky)
            band_id = REFLECTANCE_BANDS.index(band)
            factor = 1.0 + 0.02 * (_u(epsg, _K_RADIOMETRY, day.toordinal(), band_id) - 0.5)
            value = (p[gather[r]] * texture[r] + q[gather[r]]) * factor
            out[t, k] = np.clip(np.rint(value), 1.0, 10000.0)

    return cube(out, days, bands, ys, xs, epsg=epsg, res=res, name="SENTINEL2_L2A")


def cube(values: npt.NDArray[np.float32], days: Sequence[date], bands: Sequence[str], ys: Floats, xs: Floats,
         *, epsg: int, res: float, name: str, nodata: float = NODATA) -> xr.DataArray:
    """A provider's ``(t, bands, y, x)`` cube as the engine takes it."""
    return xr.DataArray(
        values,
        dims=("t", "bands", "y", "x"),
        coords={
            "t": np.array([np.datetime64(d.isoformat(), "ns") for d in days], dtype="datetime64[ns]"),
            "bands": list(bands),
            "y": ys,
            "x": xs,
        },
        attrs={"crs": epsg, "resolution": res, "nodata": nodata},
        name=name,
    )


def _texture(epsg: int, res: int, native_x: Ints, native_y: Ints) -> Floats:
    """Static +/-4 % per-pixel texture at native resolution `res`, on the output grid."""
    x0, y0 = int(native_x.min()), int(native_y.min())
    ux = np.arange(x0, int(native_x.max()) + 1)
    uy = np.arange(y0, int(native_y.max()) + 1)
    values = 0.96 + 0.08 * _uniform(_hash(epsg, _K_TEXTURE, res, uy[:, None], ux[None, :]))
    return values[np.ix_(native_y - y0, native_x - x0)]
