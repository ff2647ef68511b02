"""``apply_polygon``: run a process on the part of a raster cube each polygon covers.

A polygon's pixels are those whose centre it contains (one too small to hold any pixel centre
takes the pixels it touches, as everywhere in :mod:`.cubes_spatial`). For each polygon, in the
order given, the process gets ``data``: the cube cropped to the smallest grid-aligned box around
the polygon's pixels, every other pixel of that box set to ``mask_value`` (null: nodata, NaN),
and ``context``. What it returns is written back to the polygon's pixels only. As the openEO
specification (2.0) says:

- The process must return a cube of the same dimensions and sizes (labels may change; the
  result keeps the input's labels). A scalar fills the polygon.
- A pixel in two polygons raises ``GeometriesOverlap`` (before any process runs): no pixel is
  processed twice.
- The result has the input's dimensions and labels.

The specification does not say what a pixel in no polygon holds; here it is nodata, as the
result is made of the polygons' processed values and no process saw that pixel.

A polygon without pixels in the cube is skipped (its process is not called). ``geometries``
is GeoJSON (Polygon, MultiPolygon, Feature, FeatureCollection) or a vector cube, in any CRS;
``polygons``, its name before openEO processes 2.0.0-rc.1, is accepted too.
:mod:`.cubes` imports this module, which registers its process on import.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import xarray as xr
from affine import Affine
from shapely.geometry.base import BaseGeometry

from openeo_upscale.backend.engine._common import broadcast_result, require_cube
from openeo_upscale.backend.engine.context import Args, EvalContext, ProcessArgumentError
from openeo_upscale.backend.engine.cubes_spatial import (
    Grid,
    as_vector_cube,
    centre_mask,
    transform_geometries,
    with_meta,
)
from openeo_upscale.backend.engine.registry import PROCESSES
from openeo_upscale.backend.errors import ApiError

__all__ = ["polygon_window"]

_POLYGON_TYPES = ("Polygon", "MultiPolygon")


def _polygons(value: Any, crs: int) -> list[BaseGeometry]:
    """The non-empty polygons of GeoJSON or a vector cube, in EPSG `crs`."""
    vector = as_vector_cube(value, "geometries")
    shapes = [g for g in vector.geometries if not g.is_empty]
    others = sorted({g.geom_type for g in shapes} - set(_POLYGON_TYPES))
    if others:
        raise ProcessArgumentError(
            f"apply_polygon takes polygons and multipolygons only, not {', '.join(others)}",
            parameter="geometries",
        )
    if not shapes:
        raise ProcessArgumentError("give at least one non-empty polygon", parameter="geometries")
    return transform_geometries(shapes, vector.crs, crs)


def polygon_window(grid: Grid, polygon: BaseGeometry) -> tuple[slice, slice, np.ndarray] | None:
    """Rows, columns and inside-flags of the smallest box of `grid` around the pixels of `polygon`.

    None when no pixel of the grid belongs to the polygon.
    """
    w, s, e, n = polygon.bounds
    xres, yres = grid.resolution
    # Every pixel the polygon's bounds overlap: a superset of its pixels, shrunk below.
    c0 = max(0, math.floor((w - grid.transform.c) / xres))
    c1 = min(grid.width, math.ceil((e - grid.transform.c) / xres))
    r0 = max(0, math.floor((grid.transform.f - n) / yres))
    r1 = min(grid.height, math.ceil((grid.transform.f - s) / yres))
    if c1 <= c0 or r1 <= r0:
        return None
    corner = Affine(xres, 0.0, grid.transform.c + c0 * xres, 0.0, -yres, grid.transform.f - r0 * yres)
    box = Grid(grid.crs, corner, c1 - c0, r1 - r0)
    flags = centre_mask([polygon], box)
    rows, cols = np.nonzero(flags.any(axis=1))[0], np.nonzero(flags.any(axis=0))[0]
    if rows.size == 0:
        return None
    inside = flags[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    return slice(r0 + rows[0], r0 + rows[-1] + 1), slice(c0 + cols[0], c0 + cols[-1] + 1), inside


def _masked(part: xr.DataArray, inside: np.ndarray, mask_value: Any) -> xr.DataArray:
    flags = xr.DataArray(inside, dims=("y", "x"))
    if mask_value is None:
        if part.dtype.kind != "f":
            part = part.astype(np.float32 if part.dtype.itemsize <= 2 else np.float64)
        return part.where(flags)
    return part.where(flags, mask_value)


def _mask_value(args: Args) -> Any:
    value = args.get("mask_value")
    if value is not None and not isinstance(value, bool | int | float):
        raise ProcessArgumentError(
            f"mask_value must be a number, a boolean or null, not {type(value).__name__}",
            parameter="mask_value",
        )
    return value


def _returned(result: Any, part: xr.DataArray, order: tuple[str, ...]) -> np.ndarray:
    """The process's result for `part` as an array in `order` (dimensions checked, labels dropped).

    A scalar fills the polygon; a cube must have the dimensions and sizes of `part`.
    """
    if not isinstance(result, xr.DataArray) or result.ndim == 0:
        return np.asarray(broadcast_result(result, part).transpose(*order).values)
    if set(result.dims) != set(part.dims) or any(result.sizes[d] != part.sizes[d] for d in part.dims):
        raise ProcessArgumentError(
            f"the process of apply_polygon must return a cube of the dimensions and sizes it got "
            f"{dict(part.sizes)}, not {dict(result.sizes)}"
        )
    return np.asarray(result.transpose(*order).values)


@PROCESSES.register("apply_polygon")
def apply_polygon(args: Args, ctx: EvalContext) -> xr.DataArray:
    """``process(data=the cube within one polygon, context)`` per polygon, written back inside it.

    The cube keeps its dimensions and labels; pixels in no polygon become nodata.
    """
    cube = require_cube(args["data"])
    if "x" not in cube.dims or "y" not in cube.dims or "crs" not in cube.attrs:
        raise ProcessArgumentError("apply_polygon needs a data cube with x, y and a CRS", parameter="data")
    geometries = args["polygons"] if "geometries" not in args and "polygons" in args else args["geometries"]
    process = args["process"]
    mask_value = _mask_value(args)
    context = args.get("context")
    grid = Grid.of(cube)
    order = (*(str(d) for d in cube.dims if d not in ("y", "x")), "y", "x")
    owner = np.full((grid.height, grid.width), -1, dtype=np.int64)
    windows = []
    for index, polygon in enumerate(_polygons(geometries, grid.crs)):
        window = polygon_window(grid, polygon)
        if window is None:
            continue
        rows, cols, inside = window
        taken = owner[rows, cols]
        if (taken[inside] >= 0).any():
            other = int(taken[inside][taken[inside] >= 0][0])
            raise ApiError(
                f"polygons {other} and {index} share pixels; apply_polygon's polygons must not overlap",
                code="GeometriesOverlap",
                status=400,
            )
        taken[inside] = index
        windows.append(window)
    pieces = []
    for rows, cols, inside in windows:
        part = with_meta(_masked(cube.isel(y=rows, x=cols), inside, mask_value), cube)
        result = process(data=part, context=context)
        pieces.append((rows, cols, inside, _returned(result, part, order)))
    dtype = np.result_type(np.float32, *(values.dtype for *_, values in pieces))
    out = np.full([cube.sizes[d] for d in order], np.nan, dtype=dtype)
    for rows, cols, inside, values in pieces:
        out[..., rows, cols][..., inside] = values[..., inside]
    result = xr.DataArray(out, dims=order, coords=cube.coords)
    return with_meta(result.transpose(*cube.dims), cube)
