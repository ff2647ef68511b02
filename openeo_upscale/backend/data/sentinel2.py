"""Synthetic Sentinel-2 L2A, generated on the fly: no files, no RNG state.

The surface is `landscape`, one land-cover map of the whole Earth (also served as ESA
WorldCover), sampled on each UTM zone's 20 m classification grid (`LAND_RES`, the SCL grid).
Every place-keyed field (the map, clouds, cirrus, snow) is evaluated at the pixel centre's
position in `landscape`'s global frame, and every scene-keyed value (cloud cover, snow, the
radiometric factor) depends on the date only, so a scene is seamless across tiles *and* across
UTM zone edges. Only the static per-pixel texture is keyed by (zone, native pixel index), since
two zones' pixels never coincide. Values are a pure function of (zone, absolute pixel index at
the band's native resolution, date, band): tiles that share or abut pixels agree on them
exactly, and a rerun is bit-identical. Only integer hashing, pyproj (per point) and exactly
rounded operations (``+ - * /``, ``sqrt``, ``floor``, ``rint``, ``clip``, comparisons) touch
pixel data, never ``sin``/``exp``, whose SIMD and scalar paths may round differently;
trigonometry is used only for per-scene scalars.

The model, in layers, all on the classification grid unless said otherwise:

- Surface: each `landscape.Cover` has its spectrum. A green-vegetation fraction ``fv``
  (`landscape.vegetation_fraction`) mixes a vegetation spectrum (a darker one for tree cover)
  with a background: soil (brightness varying in space) for fields, grassland, bare land and
  wetland; bright grey roofs and streets (per 60 m block) in towns; dark grey asphalt on roads;
  water (dark in NIR, turbidity varying) in lakes and rivers. Each crop type greens up and is
  harvested on its own dates (`landscape.CALENDARS`, shifted per parcel); grassland, trees and
  wetland are lowest in mid January and highest in mid July (half a year later south of the
  equator).
- SCL 4 (vegetation) where ``fv >= 0.6`` on land outside towns and roads, which keeps NDVI
  above ~0.5; 5 (not vegetated) elsewhere on land; 6 water, exactly where the map is water.
- Clouds: per scene a cloud cover ``cc`` (percent, from the hash of the date: one weather for
  the whole Earth) and a cumulus field, a three-octave value noise (features of 0.2-1.5 km) of
  global position, new on every date. The field is thresholded at its own ``1 - cc/100``
  quantile (measured once per process on 65536 sample points), so the *expected* share of
  cloudy pixels (SCL 8, 9, 10) equals ``eo:cloud_cover``. The densest 60 % of a scene's cloud
  is SCL 9, the rest 8, or 10 (thin cirrus) where a per-scene cirrus field says so. Clouds
  blend the surface with a bright cloud spectrum (opacity 0.55-1 for 8/9, 0.3-0.4 for cirrus):
  bright in all bands.
- Cloud shadows (SCL 3): where the cloud field, evaluated 500-1200 m towards the sun (south-
  south-east in the northern hemisphere, farther in winter), is cloudy and the pixel itself is
  not; the surface is darkened to 35 %.
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
from datetime import date, datetime, timedelta
from enum import IntEnum
from types import MappingProxyType

import numpy as np
import numpy.typing as npt
import xarray as xr

from openeo_upscale.backend.data import landscape
from openeo_upscale.backend.data._common import Bounds, as_datetime, check_bands, check_bounds, resolution_of
from openeo_upscale.backend.data._noise import fbm, hash_, threshold, uniform
from openeo_upscale.backend.data._noise import u as _u
from openeo_upscale.backend.data.landscape import Cover, Land

__all__ = [
    "ANGLE_BANDS",
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
    "Scene",
    "acquisitions",
    "cloud_cover",
    "cube",
    "is_acquisition",
    "load",
    "pixel_axis",
]

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]
Bools = npt.NDArray[np.bool_]

EPOCH = date(2015, 6, 23)
"""Sentinel-2A launch: acquisitions fall on ``EPOCH + k * REVISIT_DAYS``."""
REVISIT_DAYS = 5
"""Days between two acquisitions of the same place (Sentinel-2A and -2B together)."""
FIRST_DATE = date(2017, 3, 28)
"""Start of the collection's temporal extent; no scenes before it."""
NODATA = 0
"""Nodata value of every band; never produced by the generator."""

ANGLE_BANDS: Mapping[str, int] = MappingProxyType({
    "sunAzimuthAngles": 20, "sunZenithAngles": 20, "viewAzimuthMean": 20, "viewZenithMean": 20,
})
"""The sun and view angles in degrees, as Copernicus Data Space names them: smooth functions of
place and date, computed at each output pixel's centre (the resolution is nominal)."""
BANDS: Mapping[str, int] = MappingProxyType({
    "B01": 60, "B02": 10, "B03": 10, "B04": 10, "B05": 20, "B06": 20, "B07": 20, "B08": 10,
    "B8A": 20, "B09": 60, "B11": 20, "B12": 20, "SCL": 20, **ANGLE_BANDS,
})
"""Band name -> native resolution in metres, in collection order (L2A has no B10)."""
REFLECTANCE_BANDS: tuple[str, ...] = tuple(b for b in BANDS if b != "SCL" and b not in ANGLE_BANDS)
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

_FOREST = (200, 250, 480, 230, 750, 2300, 2850, 3000, 3100, 2750, 1500, 700)
_ASPHALT = (850, 800, 820, 850, 880, 900, 920, 940, 950, 930, 1000, 950)
# Background mixed with the green vegetation of each `Cover`: soil (0), roofs and streets (1),
# water (2), asphalt (3).
_BACKGROUNDS = np.array([_SOIL, _URBAN, _WATER, _ASPHALT], dtype=np.float64)
_BACKGROUND_OF = np.zeros(len(Cover), dtype=np.int64)
_BACKGROUND_OF[[Cover.BUILT, Cover.WATER, Cover.ROAD]] = [1, 2, 3]
_BACKGROUNDS.flags.writeable = False
_BACKGROUND_OF.flags.writeable = False

# Value-noise octaves: (lattice cell in metres, weight).
_CLOUD_NOISE = ((1500.0, 1.0), (600.0, 0.45), (200.0, 0.2))
_CIRRUS_NOISE = ((4000.0, 1.0),)
_SNOW_NOISE = ((8000.0, 1.0), (2500.0, 0.5), (700.0, 0.25))

LAND_RES = landscape.RES
"""Metres of the classification grid, anchored at 0: land cover, clouds, shadows and snow live here."""
_VEGETATION_FV = 0.6  # vegetation fraction from which a land pixel is SCL 4
_HIGH_SHARE = 0.6  # share of a scene's cloud that is SCL 9
_SHADOW_FACTOR = 0.35

# Hash-key namespaces, so that no two fields share a stream (`landscape` uses 1001 on).
_K_TEXTURE, _K_RADIOMETRY, _K_CLOUD, _K_CIRRUS, _K_SNOW, _K_TRACK = range(1, 7)
_WEATHER_SEED = (32631, 14)
"""Hash key of the per-day cloud cover: the key zone 31N had when each zone had its own covers,
so that the scenes over Antwerp keep their published ``eo:cloud_cover``."""


@dataclass(frozen=True)
class Scene:
    """One acquisition: its date and the scene's cloud cover in percent (``eo:cloud_cover``)."""

    date: date
    cloud_cover: float


# ----- scenes --------------------------------------------------------------------------------------


def _centres(index: Ints, res: float) -> Floats:
    """Centres in metres of the pixels `index` of a grid of `res` metres anchored at 0."""
    return np.asarray((index + 0.5) * res, dtype=np.float64)


def _zone(epsg: int) -> bool:
    """Validate a UTM EPSG code; True for the southern hemisphere."""
    if not (32601 <= epsg <= 32660 or 32701 <= epsg <= 32760):
        raise ValueError(f"not a WGS 84 / UTM EPSG code: {epsg}")
    return epsg > 32700






def is_acquisition(day: date) -> bool:
    """Whether the collection has a scene on `day` (the same days in every zone)."""
    return day >= FIRST_DATE and (day - EPOCH).days % REVISIT_DAYS == 0


def cloud_cover(epsg: int, day: date) -> float:
    """The scene's ``eo:cloud_cover`` in percent, rounded to 0.01: a quarter of the scenes are
    nearly clear (< 5 %), 30 % partly cloudy (5-50 %), 45 % mostly cloudy (50-100 %). It
    depends on the day only (`epsg` is validated), so that the cloud field, and with it the
    scene, continues across zone edges."""
    _zone(epsg)
    kind, share = (_u(*_WEATHER_SEED, day.toordinal(), n) for n in (0, 1))
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
    check_bounds(bounds)
    first, stop = as_datetime(start), as_datetime(end)
    lower = max(first, datetime(FIRST_DATE.year, FIRST_DATE.month, FIRST_DATE.day))
    offset = (lower - datetime(EPOCH.year, EPOCH.month, EPOCH.day)).total_seconds() / 86400
    day = EPOCH + timedelta(days=REVISIT_DAYS * math.ceil(offset / REVISIT_DAYS))
    scenes = []
    while datetime(day.year, day.month, day.day) < stop:
        scenes.append(Scene(day, cloud_cover(epsg, day)))
        day += timedelta(days=REVISIT_DAYS)
    return scenes


# ----- one scene on the classification grid -------------------------------------------------------


def _local_doy(day: date, south: bool) -> float:
    """Day of the year as seen by the seasons: shifted half a year south of the equator."""
    doy = day.timetuple().tm_yday
    return (doy + 182.6) % 365.25 if south else float(doy)


@dataclass(frozen=True)
class _Sky:
    """One scene on the classification grid: what the surface and atmosphere do to each band."""

    scl: npt.NDArray[np.uint8]
    fv: Floats
    snow: Bools
    keep: Floats  # share of the (shadowed) surface signal that reaches the sensor
    cloud: Floats  # cloud opacity


def _sky(epsg: int, day: date, land: Land) -> _Sky:
    south = _zone(epsg)
    doy = _local_doy(day, south)
    ordinal = day.toordinal()
    fv = landscape.vegetation_fraction(land, doy)
    gx, gy = land.x, land.y
    is_land = land.cover != Cover.WATER
    vegetated = is_land & (land.cover != Cover.BUILT) & (land.cover != Cover.ROAD) & (fv >= _VEGETATION_FV)
    scl = np.where(vegetated, 4, 5).astype(np.uint8)
    scl[~is_land] = 6

    winter = max(0.0, math.cos(2.0 * math.pi * (doy - 17.0) / 365.25))
    snowy = _u(_K_SNOW, ordinal, 0, int(south)) < 0.25 * winter
    snow_share = 0.05 + 0.35 * _u(_K_SNOW, ordinal, 1, int(south)) if snowy else 0.0
    if snow_share > 0.0:
        snow = is_land & (fbm((_K_SNOW, ordinal), gx, gy, _SNOW_NOISE) > threshold(_SNOW_NOISE, snow_share))
    else:
        snow = np.zeros(scl.shape, dtype=bool)
    scl[snow] = 11

    # Clouds: a field of global position and date, so that scenes are seamless across zones.
    cover = cloud_cover(epsg, day) / 100.0
    low, high = threshold(_CLOUD_NOISE, cover), threshold(_CLOUD_NOISE, _HIGH_SHARE * cover)
    if not math.isfinite(low):  # a clear (low = +inf) or overcast (-inf) sky needs no field
        field = np.full(scl.shape, -low)
        overhead = np.zeros(scl.shape, dtype=bool)
    else:
        field = fbm((_K_CLOUD, ordinal), gx, gy, _CLOUD_NOISE)
        # Shadows fall away from the sun (north-north-west in the north, longer in winter): a
        # pixel is shadowed by the cloud that far towards the sun.
        reach = 500.0 + 700.0 * (1.0 - landscape.season(doy))
        sun_x, sun_y = 0.5 * reach, 0.866 * reach * (1.0 if south else -1.0)
        overhead = fbm((_K_CLOUD, ordinal), gx + sun_x, gy + sun_y, _CLOUD_NOISE) > low
    cloudy, dense = field > low, field > high
    level = threshold(_CIRRUS_NOISE, 0.5 * _u(_K_CIRRUS, ordinal, 0))
    if math.isfinite(level) and cloudy.any():
        cirrus = cloudy & ~dense & (fbm((_K_CIRRUS, ordinal), gx, gy, _CIRRUS_NOISE) > level)
    else:
        cirrus = cloudy & ~dense & (level < 0)
    shadow = overhead & ~cloudy
    scl[shadow] = 3
    scl[cloudy] = 8
    scl[cirrus] = 10
    scl[dense] = 9

    span = max(high - low, 1e-6) if math.isfinite(high) and math.isfinite(low) else 1.0
    c = np.where(np.isfinite(field), field, 0.0)
    opacity = np.where(dense, 0.85 + 0.15 * np.clip((c - high) / 0.05, 0.0, 1.0),
                       np.where(cirrus, 0.3 + 0.1 * np.clip((c - low) / span, 0.0, 1.0),
                                np.where(cloudy, 0.55 + 0.3 * np.clip((c - low) / span, 0.0, 1.0), 0.0)))
    keep = (1.0 - opacity) * np.where(shadow, _SHADOW_FACTOR, 1.0)
    return _Sky(scl=scl, fv=fv, snow=snow, keep=keep, cloud=opacity)


def _band_on_class_grid(band: str, land: Land, sky: _Sky) -> tuple[Floats, Floats]:
    """(P, Q) with reflectance = P * texture + Q: the textured surface signal and the cloud's."""
    i = REFLECTANCE_BANDS.index(band)
    green = np.where(land.cover == Cover.TREE, float(_FOREST[i]), float(_VEGETATION[i]))
    background = _BACKGROUNDS[:, i][_BACKGROUND_OF[land.cover]] * land.brightness
    surface = sky.fv * green + (1.0 - sky.fv) * background
    surface = np.where(sky.snow, float(_SNOW[i]), surface)
    return surface * sky.keep, sky.cloud * _CLOUD[i]


# ----- loading -------------------------------------------------------------------------------------


def pixel_axis(low: float, high: float, res: float, descending: bool) -> Floats:
    """Pixel centres of the grid snapped to multiples of `res` that covers [low, high] (each provider
    of the synthetic collections lays its pixels on this grid)."""
    first, stop = math.floor(low / res), math.ceil(high / res)
    centres = _centres(np.arange(first, max(stop, first + 1)), res)
    return centres[::-1].copy() if descending else centres


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
    check_bounds(bounds)
    check_bands(bands, BANDS, "SENTINEL2_L2A")
    days = [d.date() if isinstance(d, datetime) else d for d in dates]
    missing = [d.isoformat() for d in days if not is_acquisition(d)]
    if missing:
        raise ValueError(f"no SENTINEL2_L2A acquisition on {missing}: scenes are every {REVISIT_DAYS} "
                         f"days from {FIRST_DATE.isoformat()} on the days k * {REVISIT_DAYS} after "
                         f"{EPOCH.isoformat()}")
    res = resolution_of(resolution, min(BANDS[b] for b in bands))

    west, south_m, east, north = bounds
    xs, ys = pixel_axis(west, east, res, False), pixel_axis(south_m, north, res, True)

    out = np.empty((len(days), len(bands), ys.size, xs.size), dtype=np.float32)
    for k, band in enumerate(bands):
        if band in ANGLE_BANDS:
            for t, day in enumerate(days):
                out[t, k] = _angle(band, epsg, day, xs, ys)
    surface = [b for b in bands if b not in ANGLE_BANDS]
    if not surface:
        return cube(out, days, bands, ys, xs, epsg=epsg, res=res, name="SENTINEL2_L2A")

    # Per native resolution: native pixel and classification pixel of each output column/row.
    natives = {BANDS[b] for b in surface}
    native_x = {r: np.floor(xs / r).astype(np.int64) for r in natives}
    native_y = {r: np.floor(ys / r).astype(np.int64) for r in natives}
    class_x = {r: landscape.pixel(native_x[r], r) for r in natives}
    class_y = {r: landscape.pixel(native_y[r], r) for r in natives}
    # The classification pixels needed: all of them at native resolution, a sparse lattice of
    # them when the output is coarser (every field is evaluated pointwise).
    cx = np.unique(np.concatenate(list(class_x.values())))
    cy = np.unique(np.concatenate(list(class_y.values())))
    gather = {r: np.ix_(np.searchsorted(cy, class_y[r]), np.searchsorted(cx, class_x[r])) for r in natives}
    texture = {BANDS[b]: _texture(epsg, BANDS[b], native_x[BANDS[b]], native_y[BANDS[b]])
               for b in surface if b != "SCL"}

    land = landscape.land(epsg, cx, cy)
    for t, day in enumerate(days):
        sky = _sky(epsg, day, land)
        for k, band in enumerate(bands):
            if band in ANGLE_BANDS:
                continue
            r = BANDS[band]
            if band == "SCL":
                out[t, k] = sky.scl[gather[r]]
                continue
            p, q = _band_on_class_grid(band, land, sky)
            band_id = REFLECTANCE_BANDS.index(band)
            factor = 1.0 + 0.02 * (_u(_K_RADIOMETRY, day.toordinal(), band_id) - 0.5)
            value = (p[gather[r]] * texture[r] + q[gather[r]]) * factor
            out[t, k] = np.clip(np.rint(value), 1.0, 10000.0)

    return cube(out, days, bands, ys, xs, epsg=epsg, res=res, name="SENTINEL2_L2A")


_SWATH = 290_000.0  # metres across the Sentinel-2 swath
_LATITUDE_METRES = 110_946.0  # metres of northing per degree of latitude, near enough for angles


def _angle(band: str, epsg: int, day: date, xs: Floats, ys: Floats) -> Floats:
    """One angle band on the grid ``ys x xs`` (degrees), for the FAPAR/LAI networks of the
    catalogue: per-scene constants from trigonometry, per-pixel values by exact arithmetic only.

    The sun at about 10:30 local time: zenith ~ |latitude - declination| + 8 deg (latitude from
    the northing), azimuth ~ 150 deg (30 deg south of the equator). The view: zenith 0.5-12 deg
    across a 290 km swath whose tracks shift from scene to scene, azimuth 103 deg east of the
    track and 283 deg west of it."""
    south = _zone(epsg)
    doy = day.timetuple().tm_yday
    declination = 23.44 * math.sin(2.0 * math.pi * (doy - 81) / 365.25)
    if band == "sunZenithAngles":
        latitude = (ys - (10_000_000.0 if south else 0.0)) / _LATITUDE_METRES
        row = np.abs(latitude - declination) + 8.0
        return np.broadcast_to(row[:, None], (ys.size, xs.size))
    if band == "sunAzimuthAngles":
        azimuth = 30.0 if south else 150.0
        return np.full((ys.size, xs.size), azimuth + 2.0 * math.sin(2.0 * math.pi * doy / 365.25))
    shift = _u(_K_TRACK, day.toordinal()) * _SWATH
    across = np.mod(xs + shift, _SWATH) - _SWATH / 2
    if band == "viewZenithMean":
        column = 0.5 + 11.5 * np.abs(across) / (_SWATH / 2)
    else:
        column = np.where(across >= 0.0, 103.0, 283.0)
    return np.broadcast_to(column[None, :], (ys.size, xs.size))


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
    values = 0.96 + 0.08 * uniform(hash_(epsg, _K_TEXTURE, res, uy[:, None], ux[None, :]))
    return values[np.ix_(native_y - y0, native_x - x0)]
