"""Synthetic Sentinel-1 GRD (IW, VV + VH), derived from the land cover: no files, no RNG state.

Every value is a pure function of (UTM zone EPSG, absolute 10 m pixel index, date, band) and of
the ESA WorldCover class there, read through `worldcover.load` (any class code works: codes this
model does not know are treated as generic land, 0 is nodata and gives 0). The absolute index of
a pixel is ``(floor(x / 10), floor(y / 10))`` of its centre in UTM metres, so two tiles that share
pixels agree on them exactly and a rerun is bit-identical. Only integer hashing, table look-ups
and exactly rounded operations (``+ - * /``, ``floor``, ``clip``, comparisons) touch pixel data;
``cos``, ``10 ** x`` and the gamma quantiles are computed for scalars (per scene, per class, per
column) or once per process.

What `load` delivers is **sigma0 on the ellipsoid, in linear power** (float32): what Copernicus
Data Space's ``sar_backscatter`` gives with ``coefficient="sigma0-ellipsoid"``. The engine's
``sar_backscatter`` converts it to the other coefficients with `incidence_angle` (a flat world:
terrain and ellipsoid coefficients are the same).

The model:

- **Orbits**: per UTM zone one ascending and one descending track; Sentinel-1A and -1B each pass
  a track every 12 days, -1B six days after -1A, so each track is seen every 6 days and the two
  tracks three days apart (a scene every 3 days, alternating ascending/descending). Sentinel-1B
  ends on `S1B_LAST` (as it did, 2021-12-23): from then on the scenes of Sentinel-1A only, a
  12-day revisit per track (gaps of 3 and 9 days). Sentinel-1C is not modelled. Which days a zone
  has is shifted per zone. A scene is at midnight UTC of its day.
- **Geometry**: swaths of `SWATH_METRES` across (east-west) at a per-zone, per-direction offset; the
  incidence angle rises linearly from `NEAR_DEG` to `FAR_DEG` across a swath, eastwards on
  ascending passes (the radar looks east) and westwards on descending ones. A scene's relative
  orbit is that of the swath holding the centre of the requested bounds.
- **Surface**: gamma0 per class and polarisation (`CLASSES`, in dB), so that sigma0 =
  gamma0 * cos(theta): water very dark (sigma0 VV ~ -20 dB) and roughened by a per-scene wind,
  towns bright (VV ~ -3 dB) with 40 m blocks of 0.35-1.65 times, forest -7 / -12 dB, grassland
  and forest following the season (lowest mid January, highest mid July; half a year later
  south of the equator), crops bare until a sowing day in March-May, full canopy 45 days later
  and harvested 100-150 days after sowing, per 200 m cell (not the land cover's parcels: only the
  class codes are read), soil-like classes brighter after rain (a per-zone rain history with
  drying by 30 % a day, up to ~+2.8 dB).
- **Speckle**: multiplicative, gamma distributed with `LOOKS` looks and mean 1 (coefficient of
  variation 1 / sqrt(LOOKS)), drawn per (pixel, date, band) from an integer hash through a table
  of 65536 quantiles.

Values are float32, 0 only where the land cover has nodata.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import cache
from types import MappingProxyType

import numpy as np
import numpy.typing as npt
import xarray as xr
from scipy import special

from openeo_upscale.backend.data import sentinel2, worldcover
from openeo_upscale.backend.data._common import Bounds, as_datetime, check_bands, check_bounds, resolution_of

__all__ = [
    "BANDS",
    "CLASSES",
    "EPOCH",
    "FAR_DEG",
    "FIRST_DATE",
    "LOOKS",
    "NEAR_DEG",
    "NESZ",
    "NODATA",
    "POLARIZATIONS",
    "RESOLUTION",
    "S1B_LAST",
    "SWATH_METRES",
    "Scene",
    "acquisitions",
    "incidence_angle",
    "load",
    "orbit_state",
    "platform",
]

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]

RESOLUTION = 10
"""Native resolution in metres (GRD after backscatter processing)."""
BANDS: Mapping[str, int] = MappingProxyType({"VV": RESOLUTION, "VH": RESOLUTION})
"""Band name -> native resolution in metres: dual-polarisation IW (HH and HV are not produced)."""
POLARIZATIONS: tuple[str, ...] = ("VV", "VH")
"""``sar:polarizations`` of every scene."""
NODATA = 0
"""Nodata value; only where the land cover has nodata."""
EPOCH = date(2014, 4, 3)
"""Sentinel-1A launch: the day count of the orbit slots starts here."""
FIRST_DATE = date(2016, 9, 26)
"""Start of the collection's temporal extent: Sentinel-1B in routine operations."""
S1B_LAST = date(2021, 12, 22)
"""The last day with Sentinel-1B scenes."""
LOOKS = 4.4
"""Equivalent number of looks of IW GRD high resolution: the speckle's gamma shape."""
NEAR_DEG, FAR_DEG = 30.0, 46.0
"""Incidence angle in degrees at the near and far edge of a swath."""
SWATH_METRES = 250_000.0
"""Width of a swath (IW: about 250 km)."""
_SLOT_DAYS = 3
_PLATFORMS = ("sentinel-1a", "sentinel-1a", "sentinel-1b", "sentinel-1b")
_STATES = ("ascending", "descending", "ascending", "descending")
_ORBITS = 175  # relative orbits in a 12-day cycle

# Class code -> (name, gamma0 dB: VV low, VV high, VH low, VH high, wetness gain, phenology).
# "low"/"high" are the ends of the class's phenology: "season" (mid January -> mid July), "crop"
# (bare soil -> full canopy, per cell) or none (low only). The wetness gain multiplies the rain
# index (0-1) into a linear factor 1 + gain * wet.
CLASSES: Mapping[int, tuple[str, float, float, float, float, float, str]] = MappingProxyType({
    10: ("tree cover", -6.5, -6.0, -12.0, -11.0, 0.1, "season"),
    20: ("shrubland", -8.5, -8.0, -15.0, -14.0, 0.4, "season"),
    30: ("grassland", -10.0, -8.5, -17.0, -14.5, 0.7, "season"),
    40: ("cropland", -11.0, -7.5, -19.0, -13.0, 0.9, "crop"),
    50: ("built-up", -2.0, -2.0, -8.0, -8.0, 0.0, "none"),
    60: ("bare / sparse vegetation", -12.5, -12.5, -21.0, -21.0, 0.9, "none"),
    70: ("snow and ice", -11.0, -11.0, -19.0, -19.0, 0.0, "none"),
    80: ("permanent water bodies", -19.5, -19.5, -26.0, -26.0, 0.0, "none"),
    90: ("herbaceous wetland", -9.5, -8.5, -16.5, -15.0, 0.5, "season"),
    95: ("mangroves", -6.0, -6.0, -11.0, -11.0, 0.0, "none"),
    100: ("moss and lichen", -11.0, -10.5, -18.0, -17.5, 0.6, "season"),
})
"""WorldCover code -> the class's backscatter (gamma0, dB) as the module docstring describes."""
_OTHER = ("other land", -10.0, -9.0, -17.0, -16.0, 0.6, "season")
"""Any other non-zero code."""
_BUILT, _WATER, _TREE, _GRASS = 50, 80, 10, 30
_CROP_CELL = 200  # metres of a crop cell (sowing day, season length, vigour)
_STRUCTURE = {_BUILT: (40, 0.35, 1.65), _TREE: (60, 0.8, 1.2), _GRASS: (100, 0.85, 1.15)}
"""Code -> (cell metres, lowest, highest factor): static brightness variation by cell."""
NESZ = 10.0 ** (-22.0 / 10.0)
"""Thermal noise floor in sigma0 (linear): what noise removal takes away (the data have it removed)."""

# Hash-key namespaces.
_K_SHIFT, _K_SWATH, _K_ORBIT, _K_CELL, _K_CROP_A, _K_CROP_B, _K_PIXEL, _K_SPECKLE, _K_RAIN, _K_WIND = range(
    101, 111)


@dataclass(frozen=True)
class Scene:
    """One acquisition and its properties (``sat:orbit_state`` -> `orbit_state`, ...)."""

    date: date
    orbit_state: str
    relative_orbit: int
    platform: str
    instrument_mode: str = "IW"
    polarizations: tuple[str, ...] = POLARIZATIONS
    product_type: str = "GRD"


# ----- hashing -------------------------------------------------------------------------------------

_C1, _C2, _ADD = np.uint64(0xFF51AFD7ED558CCD), np.uint64(0xC4CEB9FE1A85EC53), np.uint64(0x632BE59BD9B4E019)


def _fmix(h: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    """MurmurHash3's 64-bit finaliser (arrays only: numpy warns on overflow of uint64 scalars)."""
    h = (h ^ (h >> np.uint64(33))) * _C1
    h = (h ^ (h >> np.uint64(33))) * _C2
    return h ^ (h >> np.uint64(33))


def _hash(*parts: int | npt.ArrayLike) -> npt.NDArray[np.uint64]:
    """A 64-bit hash of integer parts, broadcast together (scalars first, the full grid last)."""
    h = np.full(1, 0x5EED, dtype=np.uint64)
    for part in parts:
        word = np.atleast_1d(np.asarray(part, dtype=np.int64)).view(np.uint64)
        h = _fmix(h ^ _fmix(word + _ADD))
    return h


def _uniform(h: npt.NDArray[np.uint64]) -> Floats:
    """Hash -> float64 uniform in [0, 1)."""
    return (h >> np.uint64(11)).astype(np.float64) * (1.0 / 2.0**53)


def _u(*parts: int) -> float:
    return float(_uniform(_hash(*parts))[0])


@cache
def _speckle_table() -> Floats:
    """65536 quantiles of the gamma distribution with `LOOKS` looks, scaled to mean exactly 1."""
    p = (np.arange(1 << 16, dtype=np.float64) + 0.5) / float(1 << 16)
    table = special.gammaincinv(LOOKS, p)
    table /= table.mean()
    table.flags.writeable = False
    return table


# ----- orbits --------------------------------------------------------------------------------------


def _zone(epsg: int) -> bool:
    """Validate a UTM EPSG code; True for the southern hemisphere."""
    if not (32601 <= epsg <= 32660 or 32701 <= epsg <= 32760):
        raise ValueError(f"not a WGS 84 / UTM EPSG code: {epsg}")
    return epsg > 32700


def _slot(epsg: int, day: date) -> int | None:
    """Which of the four slots (0 ascending 1A, 1 descending 1A, 2 ascending 1B, 3 descending 1B)
    `day` is in zone `epsg`, or None for a day without a scene."""
    if day < FIRST_DATE:
        return None
    n = (day - EPOCH).days + int(_hash(epsg, _K_SHIFT)[0] % np.uint64(4 * _SLOT_DAYS))
    if n % _SLOT_DAYS:
        return None
    slot = (n // _SLOT_DAYS) % 4
    if slot >= 2 and day > S1B_LAST:
        return None
    return slot


def _require_slot(epsg: int, day: date) -> int:
    slot = _slot(epsg, day)
    if slot is None:
        raise ValueError(f"no SENTINEL1_GRD acquisition on {day.isoformat()} in EPSG:{epsg}: a zone has a "
                         f"scene every {_SLOT_DAYS} days from {FIRST_DATE.isoformat()} (Sentinel-1A only "
                         f"after {S1B_LAST.isoformat()}); see acquisitions()")
    return slot


def orbit_state(epsg: int, day: date) -> str:
    """``ascending`` or ``descending``: the pass of the scene of `day` (ValueError without one)."""
    _zone(epsg)
    return _STATES[_require_slot(epsg, day)]


def platform(epsg: int, day: date) -> str:
    """``sentinel-1a`` or ``sentinel-1b``: the satellite of the scene of `day`."""
    _zone(epsg)
    return _PLATFORMS[_require_slot(epsg, day)]


def _swath(epsg: int, state: str, xs: Floats) -> tuple[Floats, Ints]:
    """(position across the swath in [0, 1) eastwards, swath index) of eastings `xs`."""
    offset = SWATH_METRES * _u(epsg, _K_SWATH, _STATES.index(state))
    g = (xs - offset) / SWATH_METRES
    k = np.floor(g)
    return g - k, k.astype(np.int64)


def _relative_orbit(epsg: int, state: str, x: float) -> int:
    _, k = _swath(epsg, state, np.array([x]))
    return 1 + int(_hash(epsg, _K_ORBIT, _STATES.index(state), k)[0] % np.uint64(_ORBITS))


def _native_centres(xs: npt.ArrayLike) -> Floats:
    """The centres of the 10 m pixels containing `xs` (metres)."""
    return (np.floor(np.asarray(xs, dtype=np.float64) / RESOLUTION) + 0.5) * RESOLUTION


def incidence_angle(epsg: int, xs: npt.ArrayLike, day: date) -> Floats:
    """Incidence angle in degrees of the scene of `day` at eastings `xs` (UTM metres of `epsg`),
    the same for every northing (a flat world: local = ellipsoid incidence). A point takes the
    angle at the centre of its 10 m pixel, as `load` does."""
    _zone(epsg)
    state = _STATES[_require_slot(epsg, day)]
    across, _ = _swath(epsg, state, _native_centres(xs))
    if state == "ascending":
        return NEAR_DEG + (FAR_DEG - NEAR_DEG) * across
    return FAR_DEG - (FAR_DEG - NEAR_DEG) * across






def acquisitions(epsg: int, bounds: Bounds, start: str | date, end: str | date) -> list[Scene]:
    """The scenes of `epsg` over `bounds` from `start` (inclusive) to `end` (exclusive), as in an
    openEO temporal extent; every place of a zone has the same days."""
    _zone(epsg)
    check_bounds(bounds)
    first = max(as_datetime(start), datetime(FIRST_DATE.year, FIRST_DATE.month, FIRST_DATE.day))
    stop = as_datetime(end)
    day = first.date() if first.time() == datetime.min.time() else first.date() + timedelta(days=1)
    centre = (bounds[0] + bounds[2]) / 2.0
    scenes = []
    while datetime(day.year, day.month, day.day) < stop:
        slot = _slot(epsg, day)
        if slot is not None:
            state = _STATES[slot]
            scenes.append(Scene(day, state, _relative_orbit(epsg, state, centre), _PLATFORMS[slot]))
        day += timedelta(days=1)
    return scenes


# ----- backscatter ---------------------------------------------------------------------------------


def _season(epsg: int, day: date) -> tuple[float, float]:
    """(local day of year, season 0 in mid January .. 1 in mid July), shifted south of the equator."""
    doy = float(day.timetuple().tm_yday)
    if _zone(epsg):
        doy = (doy + 182.6) % 365.25
    return doy, 0.5 - 0.5 * math.cos(2.0 * math.pi * (doy - 17.0) / 365.25)


def _wetness(epsg: int, day: date) -> float:
    """A rain index in [0, 1]: showers on a quarter of the days, drying by 30 % a day."""
    wet = 0.0
    for lag in range(15):
        ordinal = day.toordinal() - lag
        if _u(epsg, _K_RAIN, ordinal, 0) < 0.25:
            wet += _u(epsg, _K_RAIN, ordinal, 1) * 0.7**lag
    return min(1.0, wet / 1.2)


def _linear(db: float) -> float:
    return float(10.0 ** (db / 10.0))


@cache
def _class_tables() -> tuple[Ints, Floats, Floats, Floats, npt.NDArray[np.bool_]]:
    """Look-up tables over the codes 0..255: (row of `_ROWS`, linear low per band (2, rows),
    linear high per band, wetness gain per row, crop phenology per row)."""
    rows = [_OTHER, *CLASSES.values()]
    index = np.zeros(256, dtype=np.int64)
    for i, code in enumerate(CLASSES, start=1):
        index[code] = i
    low = np.array([[_linear(r[1]) for r in rows], [_linear(r[3]) for r in rows]])
    high = np.array([[_linear(r[2]) if r[6] != "none" else _linear(r[1]) for r in rows],
                     [_linear(r[4]) if r[6] != "none" else _linear(r[3]) for r in rows]])
    gain = np.array([r[5] for r in rows])
    crop = np.array([r[6] == "crop" for r in rows])
    for table in (index, low, high, gain, crop):
        table.flags.writeable = False
    return index, low, high, gain, crop


@dataclass(frozen=True)
class _Ground:
    """The static layers of a load on its grid (rows descending in northing)."""

    codes: Ints
    row: Ints  # row of the class tables
    structure: Floats
    sow: Floats
    harvest: Floats
    pixel_hash: npt.NDArray[np.uint64]


def _cells(epsg: int, key: int, nx: Ints, ny: Ints, cell: int) -> Floats:
    """A uniform per `cell`-metre cell (anchored at 0) of the 10 m pixels ``ny x nx``."""
    cx, cy = (nx * RESOLUTION) // cell, (ny * RESOLUTION) // cell
    ux, ix = np.unique(cx, return_inverse=True)
    uy, iy = np.unique(cy, return_inverse=True)
    values = _uniform(_hash(epsg, key, cell, uy[:, None], ux[None, :]))
    return values[np.ix_(iy, ix)]


def _ground(epsg: int, codes: Ints, xs: Floats, ys: Floats) -> _Ground:
    nx = np.floor(xs / RESOLUTION).astype(np.int64)
    ny = np.floor(ys / RESOLUTION).astype(np.int64)
    index = _class_tables()[0]
    row = index[np.clip(codes, 0, 255)]
    structure = np.ones(codes.shape)
    for code, (cell, lowest, highest) in _STRUCTURE.items():
        where = codes == code
        if where.any():
            factor = lowest + (highest - lowest) * _cells(epsg, _K_CELL, nx, ny, cell)
            structure = np.where(where, factor, structure)
    sow = 60.0 + 90.0 * _cells(epsg, _K_CROP_A, nx, ny, _CROP_CELL)
    harvest = sow + 100.0 + 50.0 * _cells(epsg, _K_CROP_B, nx, ny, _CROP_CELL)
    pixel_hash = _hash(epsg, _K_PIXEL, ny[:, None], nx[None, :])
    return _Ground(codes=codes, row=row, structure=structure, sow=sow, harvest=harvest, pixel_hash=pixel_hash)


def _gamma0(epsg: int, day: date, ground: _Ground) -> Floats:
    """Noise-free gamma0 (linear) of both bands on `day`: shape (2, y, x), VV then VH."""
    _, low, high, gain, crop = _class_tables()
    doy, season = _season(epsg, day)
    growth = np.clip((doy - ground.sow) / 45.0, 0.0, 1.0) * np.clip((ground.harvest - doy) / 30.0, 0.0, 1.0)
    growth = growth * growth * (3.0 - 2.0 * growth)
    phase = np.where(crop[ground.row], growth, season)
    wet = 1.0 + gain[ground.row] * _wetness(epsg, day)
    wind = 0.6 + 1.0 * _u(epsg, _K_WIND, day.toordinal())
    wet = np.where(ground.codes == _WATER, wind, wet)
    out = np.empty((2, *ground.codes.shape))
    for band in range(2):
        lo, hi = low[band][ground.row], high[band][ground.row]
        out[band] = (lo + (hi - lo) * phase) * wet * ground.structure
    return out


def load(epsg: int, bounds: Bounds, dates: Sequence[date], bands: Sequence[str],
         resolution: float | None = None, *, speckle: bool = True) -> xr.DataArray:
    """Synthetic GRD sigma0 (ellipsoid, linear) over `bounds` (UTM metres in `epsg`) as a cube
    ``(t, bands, y, x)`` of float32, on the grid of `worldcover.load` at `resolution` metres
    (default 10): pixel centres, ``y`` descending; each output pixel takes the 10 m pixel that
    contains its centre. `dates` must be acquisition days (see `acquisitions`). `speckle=False`
    gives the noise-free backscatter (what the speckle multiplies)."""
    _zone(epsg)
    check_bounds(bounds)
    check_bands(bands, BANDS, "SENTINEL1_GRD", " (dual-polarisation IW; HH and HV are not produced)")
    days = [d.date() if isinstance(d, datetime) else d for d in dates]
    for day in days:
        _require_slot(epsg, day)
    res = resolution_of(resolution, RESOLUTION)

    land = worldcover.load(epsg, bounds, [worldcover.DATE], ["MAP"], res)
    xs = np.asarray(land["x"].values, dtype=np.float64)
    ys = np.asarray(land["y"].values, dtype=np.float64)
    codes = np.nan_to_num(np.asarray(land.values[0, 0], dtype=np.float64)).astype(np.int64)
    ground = _ground(epsg, codes, xs, ys)
    nodata = codes == NODATA
    table = _speckle_table()
    out = np.empty((len(days), len(bands), ys.size, xs.size), dtype=np.float32)
    for t, day in enumerate(days):
        theta = incidence_angle(epsg, xs, day)
        cosine = np.array([math.cos(math.radians(float(v))) for v in theta])
        gamma0 = _gamma0(epsg, day, ground)
        for k, band in enumerate(bands):
            b = POLARIZATIONS.index(band)
            sigma0 = gamma0[b] * cosine[None, :]
            if speckle:
                h = _fmix(ground.pixel_hash ^ _hash(epsg, _K_SPECKLE, day.toordinal(), b))
                sigma0 = sigma0 * table[(h >> np.uint64(48)).astype(np.intp)]
            out[t, k] = np.where(nodata, float(NODATA), sigma0)
    return sentinel2.cube(out, days, bands, ys, xs, epsg=epsg, res=res, name="SENTINEL1_GRD", nodata=NODATA)
