"""Synthetic ESA WorldCover 10 m 2021 (v200): the land cover under the synthetic Sentinel-2.

The map is `landscape`, the one land-cover map of the Earth that the synthetic `SENTINEL2_L2A`
computes its reflectances and SCL from, written as WorldCover class codes, so that the two
collections agree: where this map says 80 (water) a clear Sentinel-2 pixel has SCL 6, and nowhere
else. The map is sampled on the 20 m classification grid of the UTM zone; a 10 m WorldCover pixel
takes the class of the 20 m pixel that contains its centre, and loading at another resolution
takes, for each output pixel, the 10 m pixel that contains its centre (the nearest rule of
`sentinel2.load`). Values are a pure function of (UTM zone, absolute pixel index), so tiles mosaic
seamlessly and reruns are bit-identical; and since the map is a function of geographic place, the
same place has the same class in the grids of two neighbouring zones.

There is one layer, dated 2021-01-01, and one band, ``MAP``, delivered as float32 holding the
uint8 class codes; 0 is nodata and never produced. The map produces `PRODUCED`: tree cover (10),
grassland (30), cropland (40), built-up (50, towns and roads), bare / sparse vegetation (60),
permanent water (80) and herbaceous wetland (90); never shrubland (20), snow and ice (70),
mangroves (95) or moss and lichen (100).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from types import MappingProxyType

import numpy as np
import xarray as xr

from openeo_upscale.backend.data import landscape, sentinel2
from openeo_upscale.backend.data._common import Bounds, as_datetime, check_bands, check_bounds, resolution_of

__all__ = ["BANDS", "CLASSES", "DATE", "NODATA", "PRODUCED", "RESOLUTION", "Scene", "acquisitions", "load"]


RESOLUTION = 10
"""Native resolution in metres."""
BANDS: Mapping[str, int] = MappingProxyType({"MAP": RESOLUTION})
"""Band name -> native resolution in metres."""
DATE = date(2021, 1, 1)
"""The date of the only layer (the 2021 map)."""
NODATA = 0
"""Nodata value of the map; never produced."""

CLASSES: Mapping[int, str] = MappingProxyType({
    10: "Tree cover", 20: "Shrubland", 30: "Grassland", 40: "Cropland", 50: "Built-up",
    60: "Bare / sparse vegetation", 70: "Snow and ice", 80: "Permanent water bodies",
    90: "Herbaceous wetland", 95: "Mangroves", 100: "Moss and lichen",
})
"""ESA WorldCover class code -> name, all classes of the product."""
PRODUCED: frozenset[int] = frozenset(landscape.WORLDCOVER.values())
"""The class codes the synthetic map produces (no shrubland, snow and ice, mangroves, moss)."""


@dataclass(frozen=True)
class Scene:
    """The one layer of the collection."""

    date: date






def acquisitions(epsg: int, bounds: Bounds, start: str | date, end: str | date) -> list[Scene]:
    """The layer if its date is in [`start`, `end`) (an openEO temporal extent), else nothing."""
    check_bounds(bounds)
    moment = datetime(DATE.year, DATE.month, DATE.day)
    return [Scene(DATE)] if as_datetime(start) <= moment < as_datetime(end) else []


def load(epsg: int, bounds: Bounds, dates: Sequence[date], bands: Sequence[str],
         resolution: float | None = None) -> xr.DataArray:
    """The map over `bounds` (UTM metres in `epsg`) as a cube ``(t, bands, y, x)``.

    The grid has `resolution` metres (default 10), snapped to multiples of it and covering
    `bounds`; ``x``/``y`` are pixel centres, ``y`` descending. Values are float32 class codes;
    `dates` may only hold `DATE`.
    """
    check_bounds(bounds)
    check_bands(bands, BANDS, "ESA_WORLDCOVER_10M_2021_V2")
    days = [d.date() if isinstance(d, datetime) else d for d in dates]
    other = [d.isoformat() for d in days if d != DATE]
    if other:
        raise ValueError(f"ESA_WORLDCOVER_10M_2021_V2 has one layer, on {DATE.isoformat()}, not {other}")
    res = resolution_of(resolution, RESOLUTION)

    west, south, east, north = bounds
    xs = sentinel2.pixel_axis(west, east, res, False)
    ys = sentinel2.pixel_axis(south, north, res, True)
    # Output pixel -> 10 m pixel containing its centre -> 20 m land pixel containing that centre.
    cx = landscape.pixel(np.floor(xs / RESOLUTION).astype(np.int64), RESOLUTION)
    cy = landscape.pixel(np.floor(ys / RESOLUTION).astype(np.int64), RESOLUTION)
    ux, ix = np.unique(cx, return_inverse=True)
    uy, iy = np.unique(cy, return_inverse=True)
    codes = landscape.classes(epsg, ux, uy).astype(np.float32)[np.ix_(iy, ix)]
    out = np.broadcast_to(codes, (len(days), len(bands), ys.size, xs.size)).copy()
    return sentinel2.cube(out, days, bands, ys, xs, epsg=epsg, res=res, name="ESA_WORLDCOVER_10M_2021_V2",
                          nodata=NODATA)
