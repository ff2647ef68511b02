"""The demo's picture: the composite beside one raw cloudy scene of the same area, and how much of
each is cloud or cloud shadow.

The raw scene is a batch job of its own on the demo's local backend (``load_collection`` of the
whole mosaic's extent on one date, B04, B03, B02 and SCL). The share of cloud or shadow in it is
read from its SCL band. The composite has no SCL: each of its pixels is one observation the BAP
UDP chose, so the share is measured by finding, at sample points, the scene whose values the
composite holds there, and reading that scene's SCL from the synthetic collection. Both pictures
are stretched with the composite's 2-98 % limits, so the clouds show as the white they are.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import openeo
import rasterio
from rasterio.enums import Resampling
from rasterio.errors import NotGeoreferencedWarning

from openeo_upscale.backend.data import sentinel2

__all__ = ["CLOUD_OR_SHADOW", "Shares", "cloud_shares", "cloudy_scene", "raw_scene", "side_by_side"]

CLOUD_OR_SHADOW = frozenset({3, 8, 9, 10})
"""SCL classes counted as cloud or cloud shadow: shadows, medium and high probability, cirrus."""
RGB = ("B04", "B03", "B02")
SAMPLE_SPACING = 150.0
"""Metres between the sample points at which the composite's observations are identified."""
PICTURE_SIZE = 800
"""Longest side of each half of the picture, in pixels."""
_GAP = 12


@dataclass(frozen=True)
class Shares:
    """Shares (0-1) of cloud or shadow in the composite and in the raw scene."""

    composite: float
    scene: float
    unidentified: float
    """Share of the composite's sample points matching no scene (no data, or not an observation)."""


Bounds = tuple[float, float, float, float]


def cloudy_scene(epsg: int, bounds: Bounds, month: str, target: float = 40.0) -> date:
    """The scene of `month` (``YYYY-MM``) whose ``eo:cloud_cover`` is nearest `target` percent."""
    first = date.fromisoformat(f"{month}-01")
    end = (first + timedelta(days=32)).replace(day=1)
    scenes = sentinel2.acquisitions(epsg, bounds, first, end)
    return min(scenes, key=lambda s: abs(s.cloud_cover - target)).date


def raw_scene(connection: openeo.Connection, epsg: int, bounds: Bounds, day: date, folder: Path) -> Path:
    """Run a batch job loading the scene of `day` over `bounds` (B04, B03, B02, SCL); the GeoTIFF."""
    west, south, east, north = bounds
    extent = {"west": west, "south": south, "east": east, "north": north, "crs": epsg}
    cube = connection.load_collection(
        "SENTINEL2_L2A", spatial_extent=extent,
        temporal_extent=[day.isoformat(), (day + timedelta(days=1)).isoformat()], bands=[*RGB, "SCL"])
    job = cube.save_result("GTiff").create_job(title=f"raw scene {day}")
    job.start_and_wait(max_poll_interval=0.5, print=lambda *_: None)
    (asset,) = job.get_results().get_assets()
    return Path(asset.download(folder / f"scene_{day.isoformat()}.tif"))


def cloud_shares(composite: Sequence[Path], scene: Path, month: str) -> Shares:
    """How much of the composite (its B04, B03, B02 files) and of the raw scene is cloud or shadow.

    At sample points `SAMPLE_SPACING` apart, the composite's values are looked up among the
    month's scenes; a point counts as cloud or shadow when every scene holding those values has
    SCL cloud or shadow there.
    """
    with rasterio.open(composite[0]) as ds:
        epsg, bounds, res = ds.crs.to_epsg(), tuple(ds.bounds), ds.res[0]
        transform = ds.transform
    values = []
    for path in composite:
        with rasterio.open(path) as ds:
            values.append(ds.read(1, masked=True).astype("float64").filled(np.nan))
    first = date.fromisoformat(f"{month}-01")
    end = (first + timedelta(days=32)).replace(day=1)
    days = [s.date for s in sentinel2.acquisitions(epsg, bounds, first, end)]
    # Points inside the mosaic, on a coarse grid whose pixel centres the loader samples exactly.
    inner = (bounds[0] + res, bounds[1] + res, bounds[2] - res, bounds[3] - res)
    scenes = sentinel2.load(epsg, inner, days, [*RGB, "SCL"], resolution=SAMPLE_SPACING)
    xs, ys = scenes["x"].values, scenes["y"].values
    cols = np.floor((xs - transform.c) / res).astype(int)
    rows = np.floor((transform.f - ys) / res).astype(int)
    keep_x, keep_y = (cols >= 0) & (cols < values[0].shape[1]), (rows >= 0) & (rows < values[0].shape[0])
    picked = np.stack([v[np.ix_(rows[keep_y], cols[keep_x])] for v in values])  # (band, y, x)
    data = scenes.values[:, :, keep_y][:, :, :, keep_x]  # (t, band, y, x)
    same = np.all(data[:, :3] == picked[None], axis=1)  # (t, y, x)
    cloudy = np.isin(data[:, 3], list(CLOUD_OR_SHADOW))
    matched = same.any(axis=0)
    clear = (same & ~cloudy).any(axis=0)
    with rasterio.open(scene) as ds:
        scl = ds.read(4)
    return Shares(composite=float((matched & ~clear).mean()),
                  scene=float(np.isin(scl, list(CLOUD_OR_SHADOW)).mean()),
                  unidentified=float((~matched).mean()))


def side_by_side(composite: Sequence[Path], scene: Path, out: Path) -> Path:
    """A PNG of the composite (left) and the raw scene (right), true colour, both stretched with
    the composite's 2-98 % limits per band."""
    left = _read_rgb(list(composite), [1, 1, 1])
    right = _read_rgb([scene] * 3, [1, 2, 3])
    limits = [np.nanpercentile(band, (2, 98)) for band in left]
    pictures = [np.stack([_stretch(band, *limit) for band, limit in zip(layers, limits, strict=True)])
                for layers in (left, right)]
    height = max(p.shape[1] for p in pictures)
    width = sum(p.shape[2] for p in pictures) + _GAP
    canvas = np.full((3, height, width), 255, dtype="uint8")
    canvas[:, :pictures[0].shape[1], :pictures[0].shape[2]] = pictures[0]
    canvas[:, :pictures[1].shape[1], pictures[0].shape[2] + _GAP:] = pictures[1]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)  # a picture: none intended
        with rasterio.Env(GDAL_PAM_ENABLED="NO"), rasterio.open(
                out, "w", driver="PNG", width=width, height=height, count=3, dtype="uint8") as ds:
            ds.write(canvas)
    return out


def _read_rgb(paths: list[Path], bands: list[int]) -> list[np.ndarray]:
    layers = []
    for path, band in zip(paths, bands, strict=True):
        with rasterio.open(path) as ds:
            scale = max(1.0, max(ds.width, ds.height) / PICTURE_SIZE)
            shape = (max(1, round(ds.height / scale)), max(1, round(ds.width / scale)))
            data = ds.read(band, out_shape=shape, resampling=Resampling.nearest, masked=True)
        layers.append(np.asarray(data.astype("float64").filled(np.nan)))
    return layers


def _stretch(band: np.ndarray, low: float, high: float) -> np.ndarray:
    span = high - low if high > low and math.isfinite(high - low) else 1.0
    scaled = np.clip((np.nan_to_num(band, nan=low) - low) / span, 0.0, 1.0) * 255.0
    return np.round(scaled).astype("uint8")
