"""``load_stac``: a static STAC catalogue, collection or item of GeoTIFF / COG assets as a raster cube.

``url`` names a catalogue, a collection or an item (a JSON file, read with pystac); which URLs a
job may read, and every link followed from it, is :class:`~.cubes_url.UrlPolicy`'s to say (local
files outside the backend's own folders; http(s) only when the backend allows remote URLs).
STAC APIs (``/search``, ``rel="items"`` pages) are not followed: only ``item`` and ``child``
links are.

The cube is built as ``load_collection`` builds its own (:mod:`.cubes_load`):

- **Extent and grid**: the UTM zone of the spatial extent's centre, the finest native
  resolution of the bands' assets (converted to metres when an asset is in another CRS), the
  pixel grid of the first asset already on that CRS and resolution (else multiples of the
  resolution), pixels whose centre lies in the extent (GeoJSON extents also set pixels outside
  their polygons to NaN). A null extent takes the graph's spatial filters, as for
  ``load_collection``, or else the union of the matching items' footprints: the whole
  catalogue. Files on the grid are read window by window, others reprojected (nearest
  neighbour); see :func:`~.cubes_url.read_band`.
- **Items**: those whose ``bbox`` meets the extent, whose ``datetime`` (or
  ``start_datetime``..``end_datetime``) meets ``temporal_extent`` (end excluded; a null end,
  or a null extent, sets no limit), and that every ``properties`` callback keeps
  (``{"eo:cloud_cover": process}`` gets ``value``; an item without the property is an error,
  as a scene is).
- **Bands**: asset keys, or the ``eo:bands`` names of an asset's bands (the only way to pick a
  band of a multi-band asset); by default every GeoTIFF asset but thumbnails, overviews and
  visual (RGB preview) assets. A band some items lack is nodata for them.
- **Time**: ``t`` holds the items' UTC days (the start of an interval); the items of one day
  are mosaicked, the first in catalogue order winning where they overlap.
- **Values**: float (float32 up to 16-bit integer assets, else float64), NaN where nodata
  (``raster:bands`` nodata of the asset, else the file's); attrs ``crs``, ``resolution``,
  ``nodata`` (NaN).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterable, Mapping, MutableMapping
from dataclasses import dataclass
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import rasterio
import rasterio.warp
import xarray as xr
from affine import Affine
from pyproj import CRS

from openeo_upscale.backend.engine._common import to_datetime64
from openeo_upscale.backend.engine._extents import (
    extent_from_graph,
    keep_scene,
    lonlat_bounds,
    scene_filter,
    temporal_range,
    union_bounds,
    utm_bounds,
    utm_epsg,
)
from openeo_upscale.backend.engine.context import Args, EvalContext, ProcessArgumentError
from openeo_upscale.backend.engine.cubes_spatial import (
    Grid,
    as_vector_cube,
    bbox_bounds,
    clip_to_geometries,
    crop_to_bounds,
)
from openeo_upscale.backend.engine.cubes_url import (
    UrlPolicy,
    epsg_of,
    float_type,
    is_remote,
    open_raster,
    read_band,
)
from openeo_upscale.backend.engine.registry import PROCESSES

if TYPE_CHECKING:
    import pystac
    from rasterio.io import DatasetReader

__all__ = ["load_stac"]

Bounds = tuple[float, float, float, float]
_SKIPPED_ROLES = frozenset({"thumbnail", "overview", "visual"})


@dataclass(frozen=True)
class _Band:
    """Where one band of one item is: the asset's absolute href, its band index (1-based) and nodata."""

    href: str
    index: int
    nodata: float | None


def _stac_io(policy: UrlPolicy) -> pystac.StacIO:
    """A pystac StacIO that reads every href through `policy` (links of a local file included)."""
    # Imported here, as pystac below: it costs every real job's start 0.1 s, and few graphs need it.
    from pystac.stac_io import DefaultStacIO

    class PolicedStacIO(DefaultStacIO):
        def read_text_from_href(self, href: str) -> str:
            located = policy.locate(href, "load_stac")
            if is_remote(located):
                return policy.fetch(located, "load_stac").decode("utf-8")
            return str(super().read_text_from_href(located))

    return PolicedStacIO()


def _items(url: Any, policy: UrlPolicy) -> list[pystac.Item]:
    import pystac

    href = policy.locate(url, "load_stac")
    stac_io = _stac_io(policy)
    try:
        root = pystac.read_file(href, stac_io=stac_io)
        if isinstance(root, pystac.Item):
            return [root]
        if isinstance(root, pystac.Catalog):
            return list(root.get_items(recursive=True))
    except ProcessArgumentError:
        raise
    except (pystac.STACError, pystac.STACTypeError, ValueError, KeyError, TypeError, OSError) as exc:
        refused = _refusal_in(exc)
        if refused is not None:  # pystac wraps what our StacIO raised for a link it followed
            raise refused from None
        raise ProcessArgumentError(
            f"load_stac: '{url}' is not a readable STAC catalogue, collection or item: {exc}", parameter="url"
        ) from exc
    raise ProcessArgumentError(f"load_stac: '{url}' is not a STAC catalogue, collection or item",
                               parameter="url")


def _refusal_in(exc: BaseException) -> ProcessArgumentError | None:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, ProcessArgumentError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


# -- items: time, properties, bands --------------------------------------------------------------


def _utc(value: Any) -> np.datetime64:
    stamp = pd.Timestamp(value)
    if stamp.tzinfo is not None:
        stamp = stamp.tz_convert("UTC").tz_localize(None)
    return stamp.to_datetime64().astype("datetime64[ns]")


def _interval(item: pystac.Item) -> tuple[np.datetime64, np.datetime64]:
    meta = item.common_metadata
    start = meta.start_datetime or item.datetime
    end = meta.end_datetime or item.datetime or start
    if start is None or end is None:
        raise ProcessArgumentError(f"load_stac: item '{item.id}' has no datetime")
    return _utc(start), _utc(end)


_Period = tuple[np.datetime64 | None, np.datetime64 | None]


def _period(extent: Any) -> _Period:
    """``temporal_extent`` as (start, end), None where open (checked as load_collection checks it)."""
    if extent is None:
        return None, None
    temporal_range(extent)
    start, end = extent
    return (None if start is None else to_datetime64(str(start)),
            None if end is None else to_datetime64(str(end)))


def _in_period(item: pystac.Item, period: _Period) -> bool:
    start, end = period
    first, last = _interval(item)
    if first == last:
        return bool((start is None or start <= first) and (end is None or first < end))
    return bool((end is None or first < end) and (start is None or last >= start))


def _properties(item: pystac.Item) -> SimpleNamespace:
    """An item's properties as `keep_scene` reads a scene: ``eo:cloud_cover`` as ``cloud_cover``."""
    return SimpleNamespace(**{str(k).split(":")[-1]: v for k, v in item.properties.items()})


def _is_raster(asset: pystac.Asset) -> bool:
    media = (asset.media_type or "").lower()
    if media:
        return "tiff" in media
    return asset.href.lower().split("?")[0].endswith((".tif", ".tiff"))


def _number(value: Any) -> float | None:
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None


def _bands_of(item: pystac.Item) -> dict[str, _Band]:
    """Band name -> where it is, for an item's GeoTIFF assets: asset keys, then eo:bands names."""
    keys: dict[str, _Band] = {}
    names: dict[str, _Band] = {}
    for key, asset in item.assets.items():
        if not _is_raster(asset) or _SKIPPED_ROLES & set(asset.roles or ()):
            continue
        href = asset.get_absolute_href() or asset.href
        described = asset.extra_fields.get("eo:bands") or asset.extra_fields.get("bands") or []
        raster = asset.extra_fields.get("raster:bands") or []
        nodata = [_number(b.get("nodata")) if isinstance(b, Mapping) else None for b in raster]
        if len(described) <= 1:
            keys[key] = _Band(href, 1, nodata[0] if nodata else None)
        for i, band in enumerate(described):
            name = band.get("name") if isinstance(band, Mapping) else None
            if name:
                names.setdefault(str(name), _Band(href, i + 1, nodata[i] if i < len(nodata) else None))
    for name, band in names.items():
        keys.setdefault(name, band)
    return keys


def _default_bands(found: Iterable[Mapping[str, _Band]]) -> list[str]:
    """Every band of the items, in order of appearance, each asset once (by key, else by band names)."""
    bands: list[str] = []
    seen: set[tuple[str, int]] = set()
    for sources in found:
        for name, band in sources.items():
            if (band.href, band.index) not in seen:
                seen.add((band.href, band.index))
                if name not in bands:
                    bands.append(name)
    return bands


# -- extent and grid -------------------------------------------------------------------------------


def _footprint(item: pystac.Item, sources: Mapping[str, _Band], datasets: Mapping[str, DatasetReader]
               ) -> Bounds:
    """An item's lon/lat bounds: its bbox, else the bounds of its first band's file."""
    box = item.bbox
    if box and len(box) in (4, 6):
        w, s, e, n = (float(box[i]) for i in ((0, 1, 3, 4) if len(box) == 6 else (0, 1, 2, 3)))
        return w, s, e, n
    src = datasets[next(iter(sources.values())).href]
    w, s, e, n = rasterio.warp.transform_bounds(src.crs, "EPSG:4326", *src.bounds)
    return float(w), float(s), float(e), float(n)


def _meets(a: Bounds, b: Bounds) -> bool:
    return a[0] <= b[2] and b[0] <= a[2] and a[1] <= b[3] and b[1] <= a[3]


def _resolution(src: DatasetReader, epsg: int) -> float:
    """The pixel size of `src` in the units of EPSG `epsg` (metres for a UTM zone)."""
    if epsg_of(src, "an asset") == epsg:
        return float(min(abs(src.transform.a), abs(src.transform.e)))
    # The pixel count across the file's footprint in the target CRS (rasterio's
    # calculate_default_transform does about the same, but warns under affine 3).
    w, s, e, n = rasterio.warp.transform_bounds(src.crs, CRS.from_epsg(epsg).to_wkt(), *src.bounds,
                                                densify_pts=21)
    return float(min((e - w) / src.width, (n - s) / src.height))


def _grid(epsg: int, bounds: Bounds, datasets: Iterable[DatasetReader]) -> Grid:
    """The grid over `bounds`: the finest resolution, aligned on the first file already on it."""
    sources = list(datasets)
    res = min(_resolution(src, epsg) for src in sources)
    ox = oy = 0.0
    for src in sources:
        t = src.transform
        if (epsg_of(src, "an asset") == epsg and not (t.b or t.d)
                and math.isclose(abs(t.a), res) and math.isclose(abs(t.e), res)):
            ox, oy = t.c % res, t.f % res
            break
    w, s, e, n = bounds
    first, stop = math.floor((w - ox) / res), math.ceil((e - ox) / res)
    low, high = math.floor((s - oy) / res), math.ceil((n - oy) / res)
    width, height = max(1, stop - first), max(1, high - low)
    return Grid(epsg, Affine(res, 0.0, ox + first * res, 0.0, -res, oy + high * res), width, height)


def _extent(args: Args, ctx: EvalContext) -> Any:
    extent = args.get("spatial_extent")
    if extent is None:
        found = extent_from_graph(ctx)
        if found:
            extent = list(union_bounds([lonlat_bounds(v) for v in found]))
    return extent


def _target(extent: Any) -> tuple[int, Bounds]:
    """The UTM zone of the extent's centre and the extent's bounds in it."""
    west, south, east, north = lonlat_bounds(extent)
    epsg = utm_epsg((west + east) / 2, (south + north) / 2)
    if isinstance(extent, list | tuple):
        return epsg, bbox_bounds({"west": west, "south": south, "east": east, "north": north}, epsg)
    return epsg, utm_bounds(extent, epsg)


# -- load_stac -------------------------------------------------------------------------------------


def _select(items: list[pystac.Item], args: Args, lonlat: Bounds | None) -> list[pystac.Item]:
    period = _period(args.get("temporal_extent"))
    filters = scene_filter(args.get("properties"))
    return [item for item in items
            if _in_period(item, period)
            and (lonlat is None or not item.bbox or _meets(_footprint(item, {}, {}), lonlat))
            and keep_scene(_properties(item), filters)]


def _mosaic(days: Mapping[np.datetime64, list[int]], bands: list[str], sources: list[dict[str, _Band]],
            datasets: Mapping[str, DatasetReader], grid: Grid) -> np.ndarray:
    dtype = float_type([d for src in datasets.values() for d in src.dtypes])
    out = np.full((len(days), len(bands), grid.height, grid.width), np.nan, dtype=dtype)
    for t, members in enumerate(days.values()):
        for k, name in enumerate(bands):
            target = out[t, k]
            for i in members:
                band = sources[i].get(name)
                if band is None:
                    continue
                if not np.isnan(target).any():  # the day's first items covered the whole grid
                    break
                src = datasets[band.href]
                nodata = band.nodata if band.nodata is not None else src.nodatavals[band.index - 1]
                values = read_band(src, band.index, grid, nodata, dtype)
                empty = np.isnan(target)
                target[empty] = values[empty]
    return out


def _open_assets(stack: contextlib.ExitStack, items: list[pystac.Item], sources: list[dict[str, _Band]],
                 policy: UrlPolicy) -> dict[str, DatasetReader]:
    """Every file the bands are in, opened (once each) for as long as `stack` lives."""
    datasets: dict[str, DatasetReader] = {}
    for item, found in zip(items, sources, strict=True):
        for name, band in found.items():
            if band.href in datasets:
                continue
            what = f"asset '{name}' of item '{item.id}'"
            try:
                href = policy.locate(band.href, "load_stac")
            except ProcessArgumentError as exc:
                reason = exc.message.removeprefix("load_stac: ")
                raise ProcessArgumentError(f"load_stac: {what}: {reason}") from exc
            datasets[band.href] = stack.enter_context(open_raster(href, what, "load_stac"))
    return datasets


def _days(items: list[pystac.Item]) -> dict[np.datetime64, list[int]]:
    """UTC day -> the indices of its items (in catalogue order), by day."""
    days: dict[np.datetime64, list[int]] = {}
    for i, item in enumerate(items):
        days.setdefault(_interval(item)[0].astype("datetime64[D]").astype("datetime64[ns]"), []).append(i)
    return dict(sorted(days.items()))


@PROCESSES.register("load_stac")
def load_stac(args: Args, ctx: EvalContext) -> xr.DataArray:
    """Load a local STAC catalogue, collection or item as a raster cube (see the module docstring)."""
    policy = UrlPolicy.of(ctx.services)
    url = args["url"]
    extent = _extent(args, ctx)
    lonlat = lonlat_bounds(extent) if extent is not None else None
    items = _select(_items(url, policy), args, lonlat)
    if not items:
        raise ProcessArgumentError(f"load_stac: no items of '{url}' match the spatial and temporal extent "
                                   "and the properties")
    sources = [_bands_of(item) for item in items]
    bands = [str(b) for b in args.get("bands") or _default_bands(sources)]
    available = dict.fromkeys(n for s in sources for n in s)
    for name in bands:
        if name not in available:
            raise ProcessArgumentError(
                f"load_stac: band '{name}' is not among the assets of the matching items "
                f"({', '.join(available) or 'no GeoTIFF assets'})", parameter="bands")
    sources = [{name: s[name] for name in bands if name in s} for s in sources]
    with contextlib.ExitStack() as stack:
        stack.enter_context(rasterio.Env(**policy.gdal_options()))
        datasets = _open_assets(stack, items, sources, policy)
        if extent is None:
            footprints = [_footprint(item, found, datasets)
                          for item, found in zip(items, sources, strict=True)]
            extent = list(union_bounds(footprints))
        epsg, bounds = _target(extent)
        grid = _grid(epsg, bounds, datasets.values())
        days = _days(items)
        data = _mosaic(days, bands, sources, datasets, grid)
    ys, xs = grid.centres()
    cube = xr.DataArray(
        data, dims=("t", "bands", "y", "x"),
        coords={"t": np.array(list(days), dtype="datetime64[ns]"), "bands": bands, "y": ys, "x": xs},
        attrs={"crs": epsg, "resolution": float(grid.resolution[0]), "nodata": np.nan},
    )
    usage = ctx.services.get("usage")
    if isinstance(usage, MutableMapping):
        usage["input_pixels"] = usage.get("input_pixels", 0) + int(cube.size)
    cube = crop_to_bounds(cube, bounds)
    if not (isinstance(extent, list | tuple) or (isinstance(extent, Mapping) and "west" in extent)):
        cube = clip_to_geometries(cube, as_vector_cube(extent, "spatial_extent"))
    return cube
