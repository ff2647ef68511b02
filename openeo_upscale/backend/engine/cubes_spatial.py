"""Spatial data cube processes: grids, geometries, vector cubes, kernels and resampling.

A raster cube is an ``xarray.DataArray`` whose ``x``/``y`` coordinates are pixel centres in the
CRS ``attrs["crs"]`` (an EPSG code), ``y`` descending, ``attrs["resolution"]`` its pixel size.
A vector cube is a :class:`VectorCube`: shapely geometries in EPSG:4326 and optional values
with a leading ``geometry`` dimension.

Conventions shared by every process here:

- A pixel belongs to a geometry or bounding box when its *centre* lies inside (openEO's rule
  for raster data); bounding boxes are half-open (``west <= x < east``, ``south < y <= north``)
  so adjacent tiles never share a pixel.
- A point or a polygon too small to contain any pixel centre takes the pixels it touches.
- Pixels set to nodata become NaN (integer cubes become float).

:mod:`.cubes` imports this module, which registers its processes on import.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import rasterio.features
import rasterio.warp
import scipy.ndimage
import shapely
import shapely.geometry
import xarray as xr
from affine import Affine
from pyproj import CRS, Transformer
from rasterio.enums import Resampling
from shapely.geometry.base import BaseGeometry

from openeo_upscale.backend.engine._common import require_cube
from openeo_upscale.backend.engine.context import ARRAY_DIM, Args, EvalContext, ProcessArgumentError
from openeo_upscale.backend.engine.registry import PROCESSES

__all__ = [
    "FFT_KERNEL_SIZE",
    "META_KEYS",
    "Grid",
    "VectorCube",
    "as_vector_cube",
    "bbox_bounds",
    "centre_mask",
    "convolve2d",
    "crop_to_bounds",
    "regrid",
    "transform_geometries",
    "with_meta",
]

META_KEYS = ("crs", "resolution", "nodata", "dimension_aliases")
"""Cube attributes that processes carry from their input to their output."""

FFT_KERNEL_SIZE = 121
"""Kernels with at least this many cells (11 x 11) are convolved by FFT, smaller ones directly."""

_WGS84 = 4326


# -- cube metadata ---------------------------------------------------------------------------


def with_meta(result: Any, source: xr.DataArray, **overrides: Any) -> Any:
    """`result` (a DataArray) carrying the cube attributes of `source`; other values as they are.

    A float result has nodata NaN, the engine's nodata (a source's nodata such as 0 DN may be
    a valid value after processing).
    """
    if not isinstance(result, xr.DataArray):
        return result
    attrs = {k: source.attrs[k] for k in META_KEYS if k in source.attrs}
    if result.dtype.kind == "f" and "nodata" in attrs:
        attrs["nodata"] = np.nan
    attrs.update(overrides)
    return result.assign_attrs(attrs)


def _require_spatial(cube: xr.DataArray, name: str = "data") -> xr.DataArray:
    cube = require_cube(cube, name)
    if "x" not in cube.dims or "y" not in cube.dims:
        raise ProcessArgumentError(
            f"the data cube '{name}' has no spatial dimensions x and y", parameter=name
        )
    if "crs" not in cube.attrs:
        raise ProcessArgumentError(f"the data cube '{name}' has no CRS", parameter=name)
    return cube


def _epsg(crs: Any) -> int:
    """An EPSG code from an int, ``"EPSG:xxxx"`` or a WKT/PROJ string."""
    if isinstance(crs, int | np.integer):
        return int(crs)
    try:
        code = CRS.from_user_input(crs).to_epsg()
    except Exception as exc:
        raise ProcessArgumentError(f"unknown coordinate reference system {crs!r}") from exc
    if code is None:
        raise ProcessArgumentError(f"coordinate reference system {crs!r} has no EPSG code")
    return int(code)


def _to_float(cube: xr.DataArray) -> xr.DataArray:
    """`cube` as floats so NaN can mark nodata (float cubes unchanged)."""
    if cube.dtype.kind == "f":
        return cube
    dtype = np.float32 if cube.dtype.itemsize <= 2 else np.float64
    return cube.astype(dtype)


# -- grids -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Grid:
    """The pixel grid of a raster cube: CRS, affine transform (north up) and shape."""

    crs: int
    transform: Affine
    width: int
    height: int

    @classmethod
    def of(cls, cube: xr.DataArray) -> Grid:
        """The grid of `cube`, from its x/y centres and resolution."""
        xs, ys = cube["x"].values, cube["y"].values
        res = float(cube.attrs.get("resolution") or 0)
        xres = float(xs[1] - xs[0]) if xs.size > 1 else res
        yres = float(ys[0] - ys[1]) if ys.size > 1 else res
        if not (xres > 0 and yres > 0):
            raise ProcessArgumentError(
                "cannot tell the pixel size of the data cube (x/y labels or resolution)"
            )
        transform = Affine(xres, 0.0, float(xs[0]) - xres / 2, 0.0, -yres, float(ys[0]) + yres / 2)
        return cls(_epsg(cube.attrs["crs"]), transform, int(xs.size), int(ys.size))

    @property
    def resolution(self) -> tuple[float, float]:
        """Pixel size (x, y), positive."""
        return self.transform.a, -self.transform.e

    def centres(self) -> tuple[np.ndarray, np.ndarray]:
        """Pixel centre coordinates ``(y, x)``; y descending."""
        xres, yres = self.resolution
        xs = self.transform.c + (np.arange(self.width) + 0.5) * xres
        ys = self.transform.f - (np.arange(self.height) + 0.5) * yres
        return ys, xs

    def same_as(self, other: Grid) -> bool:
        """Whether both grids have the same CRS, shape and (almost) the same transform."""
        if (self.crs, self.width, self.height) != (other.crs, other.width, other.height):
            return False
        tol = 1e-6 * max(abs(self.transform.a), 1e-9)
        return all(abs(a - b) <= tol for a, b in zip(self.transform[:6], other.transform[:6], strict=True))


def _spatial_last(cube: xr.DataArray) -> tuple[xr.DataArray, tuple[str, ...]]:
    lead = tuple(str(d) for d in cube.dims if d not in ("y", "x"))
    return cube.transpose(*lead, "y", "x"), lead


_RESAMPLING = {
    "near": Resampling.nearest,
    "bilinear": Resampling.bilinear,
    "cubic": Resampling.cubic,
    "cubicspline": Resampling.cubic_spline,
    "lanczos": Resampling.lanczos,
    "average": Resampling.average,
    "mode": Resampling.mode,
    "max": Resampling.max,
    "min": Resampling.min,
    "med": Resampling.med,
    "q1": Resampling.q1,
    "q3": Resampling.q3,
    "sum": Resampling.sum,
    "rms": Resampling.rms,
}


def regrid(cube: xr.DataArray, grid: Grid, method: str = "near", fill: Any = np.nan) -> xr.DataArray:
    """`cube` on `grid`: every other dimension kept, pixels outside the source get `fill`.

    Nearest neighbour within one CRS is exact index arithmetic (each target pixel takes the
    source pixel containing its centre); everything else goes through GDAL's warper.
    """
    source = Grid.of(cube)
    if source.same_as(grid):
        return cube
    if method not in _RESAMPLING:
        raise ProcessArgumentError(f"unknown resampling method '{method}'; use one of {sorted(_RESAMPLING)}")
    ordered, lead = _spatial_last(cube)
    ys, xs = grid.centres()
    if method == "near" and source.crs == grid.crs:
        sxres, syres = source.resolution
        cols = np.floor((xs - source.transform.c) / sxres).astype(np.int64)
        rows = np.floor((source.transform.f - ys) / syres).astype(np.int64)
        valid_c = (cols >= 0) & (cols < source.width)
        valid_r = (rows >= 0) & (rows < source.height)
        data = ordered.values[..., np.clip(rows, 0, source.height - 1), :][
            ..., np.clip(cols, 0, source.width - 1)
        ]
        if not (valid_c.all() and valid_r.all()):
            if data.dtype == bool and fill is not False:
                data = data.astype(np.float32)
            elif data.dtype.kind in "iu" and isinstance(fill, float) and math.isnan(fill):
                data = data.astype(np.float64)
            data = data.copy()
            data[..., ~valid_r, :] = fill
            data[..., :, ~valid_c] = fill
    else:
        arr = ordered.values
        flat = arr.reshape((-1, source.height, source.width))
        is_bool = flat.dtype == bool
        work = flat.astype(np.float32 if is_bool or flat.dtype.itemsize <= 2 else np.float64)
        out = np.full((flat.shape[0], grid.height, grid.width), np.nan, dtype=work.dtype)
        rasterio.warp.reproject(
            source=work,
            destination=out,
            src_transform=source.transform,
            src_crs=CRS.from_epsg(source.crs).to_wkt(),
            dst_transform=grid.transform,
            dst_crs=CRS.from_epsg(grid.crs).to_wkt(),
            resampling=_RESAMPLING[method],
            src_nodata=np.nan,
            dst_nodata=np.nan,
        )
        data = out.reshape((*arr.shape[:-2], grid.height, grid.width))
        if is_bool and method in ("near", "mode", "max", "min"):
            data = np.where(np.isnan(data), fill, data)
            if fill is False or fill == 0:
                data = data.astype(bool)
    coords: dict[str, Any] = {d: ordered[d].values for d in lead if d in ordered.coords}
    coords.update({"y": ys, "x": xs})
    result = xr.DataArray(data, dims=(*lead, "y", "x"), coords=coords)
    return with_meta(result.transpose(*cube.dims), cube, crs=grid.crs, resolution=float(grid.resolution[0]))


# -- geometries ------------------------------------------------------------------------------


@dataclass
class VectorCube:
    """Geometries with optional values: ``values`` has dimension ``geometry`` first, then others."""

    geometries: list[BaseGeometry]
    crs: int = _WGS84
    values: xr.DataArray | None = None

    def in_crs(self, crs: int) -> list[BaseGeometry]:
        """The geometries transformed to EPSG `crs`."""
        return transform_geometries(self.geometries, self.crs, crs)


def _geojson_crs(value: Mapping[str, Any]) -> int:
    crs = value.get("crs")
    if isinstance(crs, Mapping):
        name = crs.get("properties", {}).get("name")
        if name:
            return _epsg(name)
    return _WGS84


def _shapes(value: Any) -> list[BaseGeometry]:
    kind = value.get("type")
    if kind == "FeatureCollection":
        return [g for f in value.get("features", []) for g in _shapes(f)]
    if kind == "Feature":
        return _shapes(value["geometry"]) if value.get("geometry") else []
    if kind == "GeometryCollection":
        return [g for member in value.get("geometries", []) for g in _shapes(member)]
    try:
        return [shapely.geometry.shape(value)]
    except Exception as exc:
        raise ProcessArgumentError(f"invalid GeoJSON geometry: {exc}") from exc


def as_vector_cube(value: Any, name: str = "geometries") -> VectorCube:
    """A VectorCube from a VectorCube, a GeoJSON object or a bounding box."""
    if isinstance(value, VectorCube):
        return value
    if isinstance(value, Mapping) and {"west", "south", "east", "north"} <= set(value):
        w, s, e, n = (float(value[k]) for k in ("west", "south", "east", "north"))
        return VectorCube([shapely.geometry.box(w, s, e, n)], _epsg(value.get("crs") or _WGS84))
    if isinstance(value, Mapping) and isinstance(value.get("type"), str):
        geometries = [g for g in _shapes(value) if not g.is_empty]
        return VectorCube(geometries, _geojson_crs(value))
    raise ProcessArgumentError(
        f"argument '{name}' must be GeoJSON or a vector data cube, not {type(value).__name__}", parameter=name
    )


def transform_geometries(geometries: Sequence[BaseGeometry], src: int, dst: int) -> list[BaseGeometry]:
    """`geometries` from EPSG `src` to EPSG `dst` (x = easting/longitude)."""
    if src == dst:
        return list(geometries)
    transformer = Transformer.from_crs(src, dst, always_xy=True)

    def project(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return transformer.transform(x, y)

    return [shapely.transform(g, project, interleaved=False) for g in geometries]


def bbox_bounds(extent: Mapping[str, Any], crs: int) -> tuple[float, float, float, float]:
    """A bounding box ``{west, south, east, north, crs?}`` as (west, south, east, north) in `crs`."""
    try:
        w, s, e, n = (float(extent[k]) for k in ("west", "south", "east", "north"))
    except (KeyError, TypeError, ValueError) as exc:
        raise ProcessArgumentError(
            f"a bounding box needs numbers west, south, east and north: {exc}"
        ) from exc
    src = _epsg(extent.get("crs") or _WGS84)
    if src == crs:
        return w, s, e, n
    transformer = Transformer.from_crs(src, crs, always_xy=True)
    return tuple(float(v) for v in transformer.transform_bounds(w, s, e, n, densify_pts=21))  # type: ignore[return-value]


def crop_to_bounds(cube: xr.DataArray, bounds: tuple[float, float, float, float]) -> xr.DataArray:
    """The pixels of `cube` whose centres lie in `bounds` (half-open, see the module docstring)."""
    w, s, e, n = bounds
    xs, ys = cube["x"].values, cube["y"].values
    ix = np.nonzero((xs >= w) & (xs < e))[0]
    iy = np.nonzero((ys > s) & (ys <= n))[0]
    return cube.isel(
        x=slice(ix[0], ix[-1] + 1) if ix.size else slice(0, 0),
        y=slice(iy[0], iy[-1] + 1) if iy.size else slice(0, 0),
    )


def centre_mask(geometries: Sequence[BaseGeometry], grid: Grid) -> np.ndarray:
    """Boolean (y, x) array: True where a pixel belongs to any of `geometries` (in the grid's CRS)."""
    shape = (grid.height, grid.width)
    if not geometries or 0 in shape:
        return np.zeros(shape, dtype=bool)
    inside = rasterio.features.geometry_mask(geometries, shape, grid.transform, invert=True)
    if not inside.any():
        inside = rasterio.features.geometry_mask(
            geometries, shape, grid.transform, invert=True, all_touched=True
        )
    return inside


# -- filter_bbox / filter_spatial ----------------------------------------------------------------


@PROCESSES.register("filter_bbox")
def filter_bbox(args: Args, ctx: EvalContext) -> xr.DataArray:
    """The pixels whose centres lie in the bounding box ``extent`` (its CRS, default 4326)."""
    cube = _require_spatial(args["data"])
    extent = args["extent"]
    if not isinstance(extent, Mapping):
        raise ProcessArgumentError("'extent' must be a bounding box object", parameter="extent")
    return crop_to_bounds(cube, bbox_bounds(extent, _epsg(cube.attrs["crs"])))


def clip_to_geometries(cube: xr.DataArray, vector: VectorCube) -> xr.DataArray:
    """`cube` cropped to the geometries' bounding box, NaN outside the geometries."""
    crs = _epsg(cube.attrs["crs"])
    shapes = vector.in_crs(crs)
    if not shapes:
        raise ProcessArgumentError("no geometries given", parameter="geometries")
    w, s, e, n = shapely.union_all(shapes).bounds
    xres, yres = Grid.of(cube).resolution
    # Grow the box by half a pixel so pixels touched by a point or thin line stay in.
    cropped = crop_to_bounds(cube, (w - xres / 2, s - yres / 2, e + xres / 2, n + yres / 2))
    if cropped.sizes["x"] == 0 or cropped.sizes["y"] == 0:
        return cropped
    flags = centre_mask(shapes, Grid.of(cropped))
    rows, cols = np.nonzero(flags.any(axis=1))[0], np.nonzero(flags.any(axis=0))[0]
    if rows.size == 0:
        return cropped.isel(x=slice(0, 0), y=slice(0, 0))
    window = {"y": slice(rows[0], rows[-1] + 1), "x": slice(cols[0], cols[-1] + 1)}
    inside = xr.DataArray(flags[window["y"], window["x"]], dims=("y", "x"))
    return with_meta(_to_float(cropped.isel(window)).where(inside), cube)


@PROCESSES.register("filter_spatial")
def filter_spatial(args: Args, ctx: EvalContext) -> xr.DataArray:
    """Crop to the geometries' bounding box and set pixels outside the geometries to nodata."""
    cube = _require_spatial(args["data"])
    return clip_to_geometries(cube, as_vector_cube(args["geometries"]))


# -- aggregate_spatial / vector_to_raster -----------------------------------------------------------


@PROCESSES.register("aggregate_spatial")
def aggregate_spatial(args: Args, ctx: EvalContext) -> VectorCube:
    """Reduce the pixels of each geometry with ``reducer`` (called once per geometry).

    The reducer gets ``data`` with the pixels along ARRAY_DIM and every other non-spatial
    dimension kept; the result is a VectorCube with values ``(geometry, *other dims)``.
    """
    cube = _require_spatial(args["data"])
    vector = as_vector_cube(args["geometries"])
    reducer = args["reducer"]
    context = args.get("context")
    grid = Grid.of(cube)
    ordered, lead = _spatial_last(cube)
    results = []
    for geometry in vector.in_crs(grid.crs):
        rows, cols = np.nonzero(centre_mask([geometry], grid))
        if rows.size == 0:
            empty = ordered.isel(y=0, x=0, drop=True) if grid.width and grid.height else None
            results.append(
                xr.full_like(_to_float(empty), np.nan) if empty is not None else xr.DataArray(np.nan)
            )
            continue
        pixels = ordered.isel(
            y=xr.DataArray(rows, dims=ARRAY_DIM), x=xr.DataArray(cols, dims=ARRAY_DIM)
        ).drop_vars(["x", "y"])
        value = reducer(data=pixels, context=context)
        if not isinstance(value, xr.DataArray):
            value = xr.DataArray(value)
        if ARRAY_DIM in value.dims:
            raise ProcessArgumentError(
                "the reducer must return one value per geometry (it kept the pixel dimension)"
            )
        value = value.drop_vars([ARRAY_DIM], errors="ignore")
        if lead:
            value = value.broadcast_like(ordered.isel(y=0, x=0, drop=True)).transpose(*lead)
        results.append(value)
    values = xr.concat(results, dim="geometry", coords="minimal", compat="override", join="outer")
    values = values.assign_coords(geometry=np.arange(len(results)))
    return VectorCube(list(vector.geometries), vector.crs, values)


@PROCESSES.register("vector_to_raster")
def vector_to_raster(args: Args, ctx: EvalContext) -> xr.DataArray:
    """Burn a VectorCube's values into the grid of ``target``; NaN where no geometry covers a pixel.

    Every pixel whose centre a geometry contains takes that geometry's values (the last geometry
    wins where they overlap); the result has the vector cube's other dimensions, then y, x.
    """
    vector = args["data"]
    if not isinstance(vector, VectorCube):
        vector = as_vector_cube(vector, "data")
    target = _require_spatial(args["target"], "target")
    grid = Grid.of(target)
    shapes = vector.in_crs(grid.crs)
    index = np.zeros((grid.height, grid.width), dtype=np.int32)
    if shapes and grid.width and grid.height:
        index = rasterio.features.rasterize(
            [(g, i + 1) for i, g in enumerate(shapes)],
            out_shape=(grid.height, grid.width),
            transform=grid.transform,
            fill=0,
            dtype="int32",
        )
    values = vector.values
    if values is None:
        values = xr.DataArray(np.ones(len(shapes)), dims=("geometry",))
    others = [str(d) for d in values.dims if d != "geometry"]
    table = np.asarray(values.transpose(*others, "geometry").values, dtype=np.float64)
    table = np.concatenate([np.full((*table.shape[:-1], 1), np.nan), table], axis=-1)
    burnt = table[..., index]
    ys, xs = grid.centres()
    coords: dict[str, Any] = {d: values[d].values for d in others if d in values.coords}
    coords.update({"y": ys, "x": xs})
    raster = xr.DataArray(burnt, dims=(*others, "y", "x"), coords=coords)
    order = [d for d in ("t", "bands") if d in others] + [d for d in others if d not in ("t", "bands")]
    return with_meta(raster.transpose(*order, "y", "x"), target, nodata=np.nan)


# -- apply_kernel ----------------------------------------------------------------------------------

_BORDER_MODES = {
    # openEO border -> (numpy pad mode)
    "replicate": "edge",
    "reflect": "symmetric",
    "reflect_pixel": "reflect",
    "wrap": "wrap",
}


def convolve2d(
    arr: np.ndarray, kernel: np.ndarray, border: float | str = 0, method: str | None = None
) -> np.ndarray:
    """True 2-D convolution of the last two axes of `arr` with `kernel`, output the size of `arr`.

    `border` is a constant or one of openEO's modes; `method` "direct" or "fft" (default: by
    kernel size, see :data:`FFT_KERNEL_SIZE`).
    """
    kh, kw = kernel.shape
    pad = [(0, 0)] * (arr.ndim - 2) + [(kh // 2, kh // 2), (kw // 2, kw // 2)]
    if isinstance(border, str):
        padded = np.pad(arr, pad, mode=_BORDER_MODES[border])  # type: ignore[call-overload]
    else:
        padded = np.pad(arr, pad, mode="constant", constant_values=border)
    method = method or ("fft" if kernel.size >= FFT_KERNEL_SIZE else "direct")
    full_kernel = kernel.reshape((1,) * (arr.ndim - 2) + kernel.shape)
    if method == "fft":
        # Imported here: scipy.signal is almost half a second of every real job's start, and only
        # large kernels need it.
        from scipy.signal import fftconvolve

        out = fftconvolve(padded, full_kernel, mode="valid", axes=(-2, -1))
    else:
        out = scipy.ndimage.convolve(padded, full_kernel, mode="constant", cval=0.0)
        out = out[..., kh // 2 : kh // 2 + arr.shape[-2], kw // 2 : kw // 2 + arr.shape[-1]]
    return np.asarray(out)


@PROCESSES.register("apply_kernel")
def apply_kernel(args: Args, ctx: EvalContext) -> xr.DataArray:
    """2-D convolution over x/y of every other index, times ``factor``.

    The kernel's rows run along y (north to south, as the cube stores it) and its columns along
    x; odd sizes only. Non-finite input values become ``replace_invalid`` first; ``border`` is
    a number (constant padding) or replicate, reflect, reflect_pixel, wrap. The kernel is
    flipped as in a true convolution, which symmetric kernels do not notice.
    """
    cube = _require_spatial(args["data"])
    try:
        kernel = np.asarray(args["kernel"], dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ProcessArgumentError("'kernel' must be a 2-D array of numbers", parameter="kernel") from exc
    if kernel.ndim != 2 or kernel.shape[0] % 2 == 0 or kernel.shape[1] % 2 == 0:
        raise ProcessArgumentError(
            f"the kernel must be 2-D with odd sizes, got shape {kernel.shape}", parameter="kernel"
        )
    factor = float(args.get("factor", 1))
    border = args.get("border", 0)
    if isinstance(border, str) and border not in _BORDER_MODES:
        raise ProcessArgumentError(f"unknown border mode '{border}'", parameter="border")
    if border is None:
        border = 0
    replace = float(args.get("replace_invalid", 0))
    ordered, _ = _spatial_last(cube)
    arr = np.asarray(ordered.values, dtype=np.float64)
    arr = np.where(np.isfinite(arr), arr, replace)
    out = convolve2d(arr, kernel, border) * factor
    result = ordered.copy(data=out)
    return with_meta(result.transpose(*cube.dims), cube)


# -- resample_spatial ------------------------------------------------------------------------------


def _target_grid(source: Grid, resolution: Any, projection: Any, align: str) -> Grid:
    crs = source.crs if projection in (None, "", 0) else _epsg(projection)
    if isinstance(resolution, list | tuple):
        xres, yres = (float(v) for v in resolution)
    else:
        xres = yres = float(resolution or 0)
    west = source.transform.c
    north = source.transform.f
    east = west + source.width * source.resolution[0]
    south = north - source.height * source.resolution[1]
    if crs != source.crs:
        transformer = Transformer.from_crs(source.crs, crs, always_xy=True)
        west, south, east, north = transformer.transform_bounds(west, south, east, north, densify_pts=21)
        if not xres:
            # Keep about the same number of pixels across.
            xres = (east - west) / max(source.width, 1)
            yres = (north - south) / max(source.height, 1)
    if not xres:
        xres, yres = source.resolution
    width = max(1, math.ceil((east - west) / xres - 1e-9))
    height = max(1, math.ceil((north - south) / yres - 1e-9))
    if align == "lower-right":
        west, north = east - width * xres, south + height * yres
    return Grid(crs, Affine(xres, 0.0, west, 0.0, -yres, north), width, height)


@PROCESSES.register("resample_spatial")
def resample_spatial(args: Args, ctx: EvalContext) -> xr.DataArray:
    """Resample to ``resolution`` (one number, [x, y], or 0 to keep it) and/or ``projection``.

    The new grid starts at the upper-left corner of the old one (``align`` "upper-left", the
    default) or ends at its lower-right corner. ``method``: near, bilinear, cubic, average,
    mode, max, min, med, q1, q3, sum, lanczos, cubicspline, rms.
    """
    cube = _require_spatial(args["data"])
    method = args.get("method") or "near"
    source = Grid.of(cube)
    grid = _target_grid(
        source, args.get("resolution", 0), args.get("projection"), args.get("align") or "upper-left"
    )
    if grid.same_as(source):
        return cube
    return regrid(cube, grid, method)


@PROCESSES.register("resample_cube_spatial")
def resample_cube_spatial(args: Args, ctx: EvalContext) -> xr.DataArray:
    """Resample ``data`` onto the spatial grid of ``target`` (its CRS, resolution and pixels).

    ``method`` as for ``resample_spatial`` (default near: each target pixel takes the source
    pixel containing its centre); target pixels the source does not cover become nodata. Only
    the spatial grid of ``target`` is used, never its values or other dimensions.
    """
    cube = _require_spatial(args["data"])
    target = _require_spatial(args["target"], "target")
    method = args.get("method") or "near"
    if method not in _RESAMPLING:
        raise ProcessArgumentError(
            f"unknown resampling method '{method}'; use one of {sorted(_RESAMPLING)}", parameter="method"
        )
    grid = Grid.of(target)
    if grid.same_as(Grid.of(cube)):
        return cube.assign_coords(x=target["x"].values, y=target["y"].values)
    return regrid(cube, grid, method)


# -- mask_polygon ------------------------------------------------------------------------------------


@PROCESSES.register("mask_polygon")
def mask_polygon(args: Args, ctx: EvalContext) -> xr.DataArray:
    """Replace the pixels outside the polygons (``inside``: inside them) by ``replacement`` (null).

    A pixel is inside when its centre is (a polygon too small to hold any pixel centre takes
    the pixels it touches, as everywhere in this module). ``mask`` is GeoJSON or a vector cube
    of polygons. Nodata in the data stays nodata; the cube keeps its shape.
    """
    cube = _require_spatial(args["data"])
    vector = as_vector_cube(args["mask"], "mask")
    shapes = [g for g in vector.in_crs(_epsg(cube.attrs["crs"]))
              if g.geom_type in ("Polygon", "MultiPolygon")]
    if not shapes:
        raise ProcessArgumentError("the mask has no polygons", parameter="mask")
    inside = args.get("inside", False)
    if not isinstance(inside, bool):
        raise ProcessArgumentError("argument 'inside' must be a boolean", parameter="inside")
    grid = Grid.of(cube)
    within = xr.DataArray(centre_mask(shapes, grid), dims=("y", "x"),
                          coords={"y": cube["y"].values, "x": cube["x"].values})
    replaced = within if inside else ~within
    replacement = args.get("replacement")
    if replacement is None:
        out = _to_float(cube).where(~replaced)
    else:
        out = cube.where(~replaced | cube.isnull(), replacement)
    masked: xr.DataArray = with_meta(out.transpose(*cube.dims), cube)
    return masked
