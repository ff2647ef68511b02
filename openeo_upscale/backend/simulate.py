"""Simulated execution: how long a job takes, what it uses, and a small valid GeoTIFF.

The duration grows with the tile's area and the number of months asked for, with a seeded
jitter, and is scaled by `Simulation.time_scale` so a ten-minute job can take a second in tests.
The memory a job needs (`memory_needed_mb`) grows with its area, months and bands; the job service
fails a job that needs more than it gets (`memory_failure`), in simulated mode and, as an admission
check before it computes, in real mode.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from affine import Affine
from pyproj import CRS, Transformer
from shapely.geometry import shape

from openeo_upscale.backend.config import Simulation

_GEOJSON_TYPES = {
    "Polygon",
    "MultiPolygon",
    "Point",
    "MultiPoint",
    "LineString",
    "MultiLineString",
    "Feature",
    "FeatureCollection",
    "GeometryCollection",
}


CPUS = 2.0
"""CPUs a simulated job keeps busy while it runs."""

DEFAULT_BANDS = 3
"""Bands a job is taken to load when its process graph does not name them (a UDP that picks its
bands inside its own graph)."""


@cache
def _lonlat_to(epsg: int) -> Transformer:
    """A lon/lat -> EPSG transformer, built once per zone: job start, usage and logs all ask."""
    return Transformer.from_crs(4326, epsg, always_xy=True)


@dataclass(frozen=True)
class Extent:
    """What a job covers: a lon/lat bbox and a time range."""

    west: float = 4.35
    south: float = 51.10
    east: float = 4.45
    north: float = 51.20
    start: str = "2023-05-01"
    end: str = "2023-07-01"
    bands: int | None = None
    """The bands its ``load_collection`` asks for (or the ``bands`` argument of the UDP it calls);
    None when the graph does not say."""

    @property
    def utm_epsg(self) -> int:
        lon = (self.west + self.east) / 2
        lat = (self.south + self.north) / 2
        zone = min(60, max(1, int((lon + 180) // 6) + 1))
        return (32600 if lat >= 0 else 32700) + zone

    def utm_bounds(self) -> tuple[float, float, float, float]:
        tr = _lonlat_to(self.utm_epsg)
        return tr.transform_bounds(self.west, self.south, self.east, self.north)

    @property
    def area_km2(self) -> float:
        w, s, e, n = self.utm_bounds()
        return max(0.0, (e - w) * (n - s) / 1e6)

    @property
    def months(self) -> float:
        try:
            d0, d1 = date.fromisoformat(self.start[:10]), date.fromisoformat(self.end[:10])
        except ValueError:
            return 1.0
        return max(1.0, (d1 - d0).days / 30.44)

    @property
    def band_count(self) -> int:
        """`bands`, or `DEFAULT_BANDS` when the graph does not say."""
        return self.bands if self.bands is not None else DEFAULT_BANDS

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    def place_and_time(self) -> dict[str, Any]:
        """The extent without its bands: what seeds a job's duration jitter (as it always has)."""
        return {key: value for key, value in self.__dict__.items() if key != "bands"}


def _bbox_of(value: Mapping[str, Any]) -> tuple[float, float, float, float] | None:
    try:
        w, s, e, n = (float(value[k]) for k in ("west", "south", "east", "north"))
    except (KeyError, TypeError, ValueError):
        return None
    crs = value.get("crs")
    if crs not in (None, 4326, "EPSG:4326", "4326"):
        try:
            tr = Transformer.from_crs(CRS.from_user_input(crs), 4326, always_xy=True)
            w, s, e, n = tr.transform_bounds(w, s, e, n)
        except Exception:  # an unparseable CRS only costs the simulation its extent
            return None
    return w, s, e, n


def _geometry_bounds(value: Mapping[str, Any]) -> tuple[float, float, float, float] | None:
    try:
        if value.get("type") == "FeatureCollection":
            bounds = [shape(f["geometry"]).bounds for f in value.get("features", [])]
            if not bounds:
                return None
            return (
                min(b[0] for b in bounds),
                min(b[1] for b in bounds),
                max(b[2] for b in bounds),
                max(b[3] for b in bounds),
            )
        geom = value.get("geometry") if value.get("type") == "Feature" else value
        b = shape(geom).bounds
        return (b[0], b[1], b[2], b[3])
    except Exception:  # malformed GeoJSON: the simulation falls back to its default extent
        return None


def extent_of(process: Mapping[str, Any]) -> Extent:
    """The first spatial and temporal extent found among the arguments of a process graph."""
    bbox: tuple[float, float, float, float] | None = None
    period: tuple[str, str] | None = None
    stack: list[Any] = [
        n.get("arguments", {}) for n in process.get("process_graph", {}).values() if isinstance(n, Mapping)
    ]
    while stack and (bbox is None or period is None):
        value = stack.pop(0)
        if isinstance(value, Mapping):
            if "process_graph" in value:
                continue
            if bbox is None and {"west", "south", "east", "north"} <= value.keys():
                bbox = _bbox_of(value)
            elif bbox is None and value.get("type") in _GEOJSON_TYPES:
                bbox = _geometry_bounds(value)
            else:
                stack.extend(value.values())
        elif isinstance(value, list):
            if (
                period is None
                and len(value) == 2
                and all(isinstance(v, str) and len(v) >= 10 and v[4] == "-" for v in value)
            ):
                period = (value[0], value[1])
            else:
                stack.extend(value)
    default = Extent()
    w, s, e, n = bbox or (default.west, default.south, default.east, default.north)
    start, end = period or (default.start, default.end)
    return Extent(w, s, e, n, start, end, bands_of(process))


def bands_of(process: Mapping[str, Any]) -> int | None:
    """How many bands a process graph loads: the ``bands`` of its ``load_collection``, else the
    ``bands`` argument of a process it calls (a UDP that takes them); None when neither says."""
    found: int | None = None
    for node in process.get("process_graph", {}).values():
        if not isinstance(node, Mapping):
            continue
        bands = (node.get("arguments") or {}).get("bands")
        if not (isinstance(bands, list) and bands and all(isinstance(b, str) for b in bands)):
            continue
        if node.get("process_id") == "load_collection":
            return len(bands)
        found = len(bands) if found is None else found
    return found


def seeded_unit(key: str, seed: int) -> float:
    """A deterministic number in [0, 1) from a key and a seed."""
    digest = hashlib.sha256(f"{seed}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def process_key(process: Mapping[str, Any]) -> str:
    """A stable key of a process graph, for seeded decisions."""
    return hashlib.sha256(json.dumps(process, sort_keys=True).encode()).hexdigest()[:16]


def simulated_seconds(extent: Extent, sim: Simulation, attempt: int, seed: int) -> float:
    """Simulated run time of a job (before `time_scale`).

    The jitter is seeded on the job's extent and attempt, not on its id: the same tile takes the
    same time whichever client submits it, so two job managers can be compared on one workload.
    """
    base = sim.base_seconds + sim.seconds_per_km2 * extent.area_km2 + sim.seconds_per_month * extent.months
    key = json.dumps(extent.place_and_time(), sort_keys=True)
    jitter = 1.0 + sim.jitter * (2 * seeded_unit(f"duration:{key}:{attempt}", seed) - 1)
    return base * jitter


def decide(key: str, seed: int, rate: float) -> bool:
    """A seeded coin flip: True with probability `rate`, the same answer for the same key."""
    return rate > 0 and seeded_unit(key, seed) < rate


def cpu_seconds(seconds: float) -> float:
    """The CPU time of a simulated job that runs `seconds`: it keeps `CPUS` busy."""
    return seconds * CPUS


def usage(extent: Extent, seconds: float, bands: int = 3) -> dict[str, dict[str, float | str]]:
    """CDSE-style usage of a finished job."""
    dates = max(1, round(extent.months * 30.44 / 5))
    megapixels = extent.area_km2 * 1e4 * bands * dates / 1e6
    return {
        "cpu": {"value": round(cpu_seconds(seconds), 3), "unit": "cpu-seconds"},
        "memory": {"value": round(seconds * 2048.0, 3), "unit": "mb-seconds"},
        "duration": {"value": round(seconds, 3), "unit": "seconds"},
        "input_pixel": {"value": round(megapixels, 3), "unit": "mega-pixel"},
    }


def write_geotiff(path: Path, extent: Extent, size: int = 64) -> dict[str, Any]:
    """Write a small valid GeoTIFF over the extent, in its UTM zone; returns its `proj:` fields.

    Values are a smooth synthetic field of the absolute UTM position, so neighbouring tiles
    look continuous. Written to a temporary name and renamed, so a reader never sees half a file.
    """
    epsg = extent.utm_epsg
    w, s, e, n = extent.utm_bounds()
    if e - w <= 0 or n - s <= 0:
        e, n = w + 1000.0, s + 1000.0
    # Built directly: rasterio's from_bounds warns under affine 3 (operator deprecation).
    transform = Affine((e - w) / size, 0.0, w, 0.0, -(n - s) / size, n)
    xs = w + (np.arange(size) + 0.5) * (e - w) / size
    ys = n - (np.arange(size) + 0.5) * (n - s) / size
    xx, yy = np.meshgrid(xs, ys)
    ndvi = 0.45 + 0.35 * np.sin(xx / 1700.0) * np.cos(yy / 2300.0)
    data = (ndvi * 10000).astype("int16")[np.newaxis]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".part")
    with rasterio.open(
        tmp,
        "w",
        driver="GTiff",
        width=size,
        height=size,
        count=1,
        dtype="int16",
        crs=f"EPSG:{epsg}",
        transform=transform,
        nodata=-32768,
    ) as dst:
        dst.write(data)
        dst.set_band_description(1, "NDVI")
    tmp.replace(path)
    return {
        "proj:epsg": epsg,
        "proj:shape": [size, size],
        "proj:bbox": [w, s, e, n],
        "raster:bands": [{"name": "NDVI", "data_type": "int16", "nodata": -32768}],
    }


__all__ = [
    "CPUS",
    "DEFAULT_BANDS",
    "Extent",
    "bands_of",
    "cpu_seconds",
    "decide",
    "extent_of",
    "memory_failure",
    "memory_mb",
    "memory_needed_mb",
    "process_key",
    "simulated_seconds",
    "usage",
    "write_geotiff",
]


_MEMORY = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*$", re.IGNORECASE)
_MB_PER = {"k": 1 / 1024, "": 1.0, "m": 1.0, "g": 1024.0, "t": 1024.0**2}


def memory_mb(value: Any) -> float | None:
    """A Spark-style memory size in MB: ``"2g"``, ``"2048m"``, ``"512M"``, or a number of MB; None
    for anything else. (The campaign code has its own, `campaign.settings.memory_mb`: the backend
    shares nothing with it.)"""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value) if value > 0 else None
    match = _MEMORY.match(value) if isinstance(value, str) else None
    return float(match[1]) * _MB_PER[match[2].lower()] if match else None


def memory_needed_mb(extent: Extent, sim: Simulation) -> float:
    """What a job over `extent` needs: a base, plus so much per km², per month and per band."""
    return (sim.memory_base_mb + sim.memory_per_km2_mb * extent.area_km2
            + sim.memory_per_month_mb * extent.months + sim.memory_per_band_mb * extent.band_count)


def memory_failure(extent: Extent, sim: Simulation, job_options: Mapping[str, Any] | None) -> str | None:
    """The error a job ends with when the memory model says it needs more memory than it gets, or None.

    It gets what its ``job_options`` ask (``executor-memory`` plus ``executor-memoryOverhead``,
    as on the geopyspark backends), else `Simulation.memory_default_mb`, at most
    `Simulation.memory_limit_mb`. The model is off while ``memory_default_mb`` is None."""
    if sim.memory_default_mb is None:
        return None
    options = job_options or {}
    asked = memory_mb(options.get("executor-memory"))
    overhead = memory_mb(options.get("executor-memoryOverhead")) or 0.0
    allowed = (asked + overhead) if asked is not None else sim.memory_default_mb
    if sim.memory_limit_mb is not None:
        allowed = min(allowed, sim.memory_limit_mb)
    needed = memory_needed_mb(extent, sim)
    if needed <= allowed:
        return None
    return (f"Job exceeded its memory limit: it needed about {needed:,.0f} MB and had {allowed:,.0f} MB "
            "(container killed, exit code 137). Ask for more executor-memory in the job options, "
            "or use smaller tiles.")
