"""Independent numpy/scipy references for the APEx UDPs ``max_ndvi_composite`` and ``bap_composite``.

Each function recomputes what the UDP's process graph specifies, straight from the synthetic
inputs (`sentinel2.acquisitions` / `sentinel2.load`), without any of the engine's process
implementations. Where the openEO specification leaves room, the references take the choices
the engine documents and Copernicus Data Space makes: a pixel belongs to a geometry when its
centre does; a mask with another number of bands than the data masks every band by its first
band; a resolution change by nearest neighbour takes the source pixel containing the target
pixel's centre; ``aggregate_temporal_period`` labels a period by its start.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import numpy.typing as npt
import scipy.ndimage
import shapely
from pyproj import Transformer
from shapely.geometry import Polygon, shape

from openeo_upscale.backend.data import sentinel2

Floats = npt.NDArray[np.float64]
Bounds = tuple[float, float, float, float]

MAX_NDVI_INVALID_SCL = (3, 8, 9, 10, 1, 6, 11, 0)
"""SCL classes ``max_ndvi_composite`` masks (``apply1``: shadow, clouds, cirrus, defective,
water, snow, nodata)."""
BAP_CLOUD_SCL = (3, 8, 9, 10)
"""SCL classes ``bap_composite`` counts as cloud (``reducedimension1``)."""
BAP_SCL_RESOLUTION = 20.0
"""``bap_composite`` scores pixels on a 20 m grid (``resamplespatial1``)."""


def scenes(epsg: int, bounds: Bounds, period: Sequence[str], max_cloud_cover: float) -> list[date]:
    """The acquisition days in `period` whose ``eo:cloud_cover`` passes ``lte(value, max_cloud_cover)``."""
    found = sentinel2.acquisitions(epsg, bounds, period[0], period[1])
    return [s.date for s in found if s.cloud_cover <= max_cloud_cover]


def max_ndvi_composite(epsg: int, bounds: Bounds, days: Sequence[date], bands: Sequence[str]) -> Floats:
    """``max_ndvi_composite`` on the 10 m grid `bounds`: ``(band, y, x)``, NaN where no date is valid.

    1. SCL in :data:`MAX_NDVI_INVALID_SCL` invalidates a pixel (SCL at 10 m, as CDSE loads every
       band of the collection on one grid: the native 20 m pixel containing the centre);
    2. NDVI ``(B08 - B04) / (B08 + B04)`` of the valid observations;
    3. an observation is kept where its NDVI equals the pixel's maximum over time (``neq`` with
       null is null, and a null mask masks, so invalid observations are never kept);
    4. each band is the maximum over the kept observations (one observation unless NDVI ties).
    """
    red_nir = sentinel2.load(epsg, bounds, days, ["B04", "B08"]).values.astype(np.float64)
    scl = sentinel2.load(epsg, bounds, days, ["SCL"], resolution=10).values[:, 0]
    invalid = np.isin(scl, MAX_NDVI_INVALID_SCL)
    red, nir = red_nir[:, 0], red_nir[:, 1]
    ndvi = np.where(invalid, np.nan, (nir - red) / (nir + red))
    best = np.full(ndvi.shape[1:], -np.inf)
    for layer in ndvi:
        best = np.where(layer > best, layer, best)
    kept = ndvi == best[None]
    data = sentinel2.load(epsg, bounds, days, bands).values.astype(np.float64)
    out = np.full(data.shape[1:], -np.inf)
    for t in range(len(days)):
        out = np.where(kept[t][None] & (data[t] > out), data[t], out)
    return np.where(np.isinf(out), np.nan, out)


def utm_polygon(geometry: dict[str, object], epsg: int) -> Polygon:
    """A GeoJSON polygon in lon/lat with its vertices projected to UTM `epsg`."""
    polygon = shape(geometry)
    transformer = Transformer.from_crs(4326, epsg, always_xy=True)
    xs, ys = transformer.transform(*np.asarray(polygon.exterior.coords).T)
    return Polygon(np.column_stack([xs, ys]))


def centre_grid(polygon: Polygon, res: float) -> tuple[Bounds, npt.NDArray[np.bool_]]:
    """The smallest grid of `res` metres (snapped to multiples of it) holding every pixel whose
    centre lies in `polygon`, and which of its pixels those are (``(y, x)``, y descending)."""
    west, south, east, north = polygon.bounds
    cols = np.arange(np.floor(west / res), np.ceil(east / res))
    rows = np.arange(np.ceil(north / res) - 1, np.floor(south / res) - 1, -1)
    xs, ys = (cols + 0.5) * res, (rows + 0.5) * res
    inside = shapely.contains_xy(polygon, xs[None, :], ys[:, None])
    keep_rows, keep_cols = np.nonzero(inside.any(axis=1))[0], np.nonzero(inside.any(axis=0))[0]
    r0, r1, c0, c1 = keep_rows[0], keep_rows[-1] + 1, keep_cols[0], keep_cols[-1] + 1
    bounds = (cols[c0] * res, rows[r1 - 1] * res, (cols[c1 - 1] + 1) * res, (rows[r0] + 1) * res)
    return bounds, inside[r0:r1, c0:c1]


def bap_kernel(udp: Path) -> Floats:
    """The 151 x 151 kernel of ``applykernel1``, read from the UDP file."""
    graph = json.loads(udp.read_text())["process_graph"]
    return np.asarray(graph["applykernel1"]["arguments"]["kernel"], dtype=np.float64)


def _separable_convolve(values: Floats, kernel: Floats) -> Floats:
    """Zero-padded 2-D convolution of the last two axes with a rank-one kernel, as two direct 1-D
    convolutions: exact zeros where no non-zero input is within reach (an FFT smears round-off)."""
    centre = kernel.shape[0] // 2, kernel.shape[1] // 2
    column = kernel[:, centre[1]]
    row = kernel[centre[0], :] / kernel[centre]
    if not np.allclose(np.outer(column, row), kernel, rtol=0, atol=1e-15):
        raise ValueError("the kernel is not separable")
    along_y = scipy.ndimage.convolve1d(values, column, axis=-2, mode="constant", cval=0.0)
    return scipy.ndimage.convolve1d(along_y, row, axis=-1, mode="constant", cval=0.0)


def _month_groups(days: Sequence[date]) -> list[tuple[date, list[int]]]:
    groups: dict[date, list[int]] = {}
    for i, day in enumerate(days):
        groups.setdefault(day.replace(day=1), []).append(i)
    return sorted(groups.items())


@dataclass(frozen=True)
class BapScores:
    """``bap_composite``'s scores ``(t, y, x)`` on its 20 m grid `bounds`, and the cloud flags."""

    bounds: Bounds
    score: Floats
    cloud: npt.NDArray[np.bool_]


def bap_scores(epsg: int, polygon: Polygon, days: Sequence[date], kernel: Floats) -> BapScores:
    """The best-available-pixel scores of ``bap_composite`` on its 20 m grid.

    ``score = (distance + 0.1 * day + 0.5 * coverage) / 1.6``, NaN outside `polygon`, with
    ``distance = 1 - kernel * cloud`` (zero padding), ``day = exp(-((dom - 15) / 5)**2 / 2)`` for
    the day of the month ``dom`` of the observation, and ``coverage`` the share of the polygon's
    pixels that are not cloud on that date.
    """
    bounds, inside = centre_grid(polygon, BAP_SCL_RESOLUTION)
    scl = sentinel2.load(epsg, bounds, days, ["SCL"], resolution=BAP_SCL_RESOLUTION).values[:, 0]
    scl = np.where(inside[None], scl, 0.0)  # filter_spatial, then apply1 turns nodata into 0
    cloud = np.isin(scl, BAP_CLOUD_SCL).astype(np.float64)
    distance = 1.0 - _separable_convolve(cloud, kernel)
    day_of_month = np.array([d.day for d in days], dtype=np.float64)
    day_score = np.exp(-0.5 * ((day_of_month - 15.0) * 0.2) ** 2)
    coverage = np.array([1.0 - layer[inside].mean() for layer in cloud])
    score = (distance + 0.1 * day_score[:, None, None] + 0.5 * coverage[:, None, None]) / 1.6
    score = np.where(scl == 0, np.nan, score)
    return BapScores(bounds, score, cloud.astype(bool))


def bap_composite(epsg: int, polygon: Polygon, grid: Bounds, days: Sequence[date], bands: Sequence[str],
                  kernel: Floats) -> dict[date, Floats]:
    """``bap_composite`` on the 10 m grid `grid`: per month start, ``(band, y, x)`` in DN.

    Per month and 20 m pixel the observations whose score equals the month's maximum are kept;
    cloud (20 m) is removed; every 10 m pixel takes the flags of the 20 m pixel containing its
    centre (outside the 20 m grid it is masked, as nodata in a mask masks) and the first kept
    observation of the month, NaN if there is none or its centre is outside `polygon`.
    """
    scored = bap_scores(epsg, polygon, days, kernel)
    score, cloud = scored.score, scored.cloud
    west20, _, _, north20 = scored.bounds
    data = sentinel2.load(epsg, grid, days, bands).values.astype(np.float64)
    xs = grid[0] + 5.0 + 10.0 * np.arange(data.shape[-1])
    ys = grid[3] - 5.0 - 10.0 * np.arange(data.shape[-2])
    inside = shapely.contains_xy(polygon, xs[None, :], ys[:, None])
    cols = np.floor((xs - west20) / BAP_SCL_RESOLUTION).astype(np.int64)
    rows = np.floor((north20 - ys) / BAP_SCL_RESOLUTION).astype(np.int64)
    on_grid = ((rows >= 0) & (rows < score.shape[1]))[:, None] & ((cols >= 0) & (cols < score.shape[2]))[None]
    rows, cols = np.clip(rows, 0, score.shape[1] - 1), np.clip(cols, 0, score.shape[2] - 1)
    composites = {}
    for month, members in _month_groups(days):
        month_scores = score[members]
        best = np.nanmax(np.where(np.isnan(month_scores), -np.inf, month_scores), axis=0)
        out = np.full(data.shape[1:], np.nan)
        for t in members:
            usable = (score[t] == best) & ~cloud[t]
            usable10 = usable[np.ix_(rows, cols)] & on_grid & inside
            empty = np.isnan(out[0])
            out = np.where((usable10 & empty)[None], data[t], out)
        composites[month] = out
    return composites
