"""Processes that combine a cube with a second one: ``merge_cubes`` and ``mask``.

Both first put the second cube on the first one's spatial grid: the same coordinates when the
grids agree, else nearest-neighbour resampling; where it does not reach, it is nodata (and a
mask masks). :mod:`.cubes` imports this module, which registers its processes on import.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

import numpy as np
import xarray as xr

from openeo_upscale.backend.engine._common import broadcast_result, require_cube
from openeo_upscale.backend.engine.context import Args, EvalContext, ProcessArgumentError
from openeo_upscale.backend.engine.cubes_spatial import Grid, regrid, with_meta
from openeo_upscale.backend.engine.registry import PROCESSES


def _fill_for(cube: xr.DataArray) -> Any:
    return False if cube.dtype == bool else np.nan


def _align_spatial(c1: xr.DataArray, c2: xr.DataArray, fill: Any = None) -> xr.DataArray:
    """`c2` on the grid of `c1` (exact coordinates when the grids agree, else resampled); where
    `c2` does not cover `c1`, `fill` (by default nodata: NaN, or False for booleans)."""
    if not all(d in c1.dims and d in c2.dims for d in ("x", "y")):
        return c2
    g1, g2 = Grid.of(c1), Grid.of(c2)
    if g1.same_as(g2):
        return c2.assign_coords(x=c1["x"].values, y=c1["y"].values)
    return regrid(c2, g1, "near", _fill_for(c2) if fill is None else fill)


@PROCESSES.register("merge_cubes")
def merge_cubes(args: Args, ctx: EvalContext) -> xr.DataArray:
    """Union of two cubes' labels; ``overlap_resolver(x, y, context)`` where both have a value.

    A dimension only one cube has is broadcast over the other. Without overlap (for example
    different band labels) the cubes are simply concatenated; overlap without a resolver is an
    error. ``cube2`` is put on ``cube1``'s spatial grid first (nearest neighbour).
    """
    c1, c2 = require_cube(args["cube1"], "cube1"), require_cube(args["cube2"], "cube2")
    resolver = args.get("overlap_resolver")
    c2 = _align_spatial(c1, c2)
    for d in c1.dims:
        if d not in c2.dims:
            c2 = c2.expand_dims({d: c1[d].values})
    for d in c2.dims:
        if d not in c1.dims:
            c1 = c1.expand_dims({d: c2[d].values})
    c2 = c2.transpose(*c1.dims)
    union: dict[Hashable, np.ndarray] = {}
    in1: list[xr.DataArray] = []
    in2: list[xr.DataArray] = []
    for d in c1.dims:
        l1, l2 = c1[d].values, c2[d].values
        if len(l1) == len(l2) and np.array_equal(l1, l2):
            continue
        extra = l2[~np.isin(l2, l1)]
        labels = np.concatenate([l1, extra])
        if d in ("t", "x"):
            labels = np.sort(labels)
        elif d == "y":
            labels = np.sort(labels)[::-1]
        union[d] = labels
        in1.append(xr.DataArray(np.isin(labels, l1), dims=(d,), coords={d: labels}))
        in2.append(xr.DataArray(np.isin(labels, l2), dims=(d,), coords={d: labels}))
    a1 = c1.reindex(union, fill_value=_fill_for(c1)) if union else c1
    a2 = c2.reindex(union, fill_value=_fill_for(c2)) if union else c2
    has1, has2 = _product(in1), _product(in2)
    overlap = None if has1 is None or has2 is None else has1 & has2
    if overlap is None or bool(overlap.any()):
        if resolver is None:
            raise ProcessArgumentError(
                "the cubes overlap: give an overlap_resolver", parameter="overlap_resolver", required=True
            )
        resolved = broadcast_result(resolver(x=a1, y=a2, context=args.get("context")), a1)
        out = resolved if overlap is None else xr.where(overlap, resolved, a1.where(has1, a2))
    else:
        out = xr.where(has1, a1, a2)
    return with_meta(out.transpose(*a1.dims), args["cube1"])


def _product(flags: list[xr.DataArray]) -> xr.DataArray | None:
    if not flags:
        return None
    out = flags[0]
    for f in flags[1:]:
        out = out & f
    return out


def _mask_like(mask: xr.DataArray, data: xr.DataArray) -> xr.DataArray:
    """`mask` aligned to `data`: its grid, its t labels and its bands, as booleans (True = masked)."""
    # Where the mask does not reach (a 20 m mask one pixel short of 10 m data at a tile edge),
    # it masks: no mask value is nodata, and nodata in a mask masks.
    mask = _align_spatial(data, mask, True if mask.dtype == bool else np.nan)
    if "t" in mask.dims and "t" in data.dims and not np.array_equal(mask["t"].values, data["t"].values):
        mask = mask.reindex(t=data["t"].values, fill_value=_fill_for(mask))
    mask_bands = "bands" if "bands" in mask.dims else None
    if mask_bands is not None:
        labels = [str(b) for b in mask[mask_bands].values]
        data_labels = [str(b) for b in data["bands"].values] if "bands" in data.dims else []
        if data_labels and set(labels) == set(data_labels) and len(labels) == len(data_labels):
            mask = mask.sel({mask_bands: data_labels}).rename({mask_bands: "bands"})
            mask = mask.assign_coords(bands=data["bands"].values)
        elif data_labels and len(labels) == len(data_labels):
            mask = mask.rename({mask_bands: "bands"}).assign_coords(bands=data["bands"].values)
        else:
            # One mask band for all data bands; with a different number of bands Copernicus Data
            # Space also uses the first mask band for every data band.
            mask = mask.isel({mask_bands: 0}, drop=True)
    extra = [d for d in mask.dims if d not in data.dims]
    if extra:
        raise ProcessArgumentError(
            f"the mask has dimension(s) {extra} the data does not have", parameter="mask"
        )
    values = mask.values
    # Non-zero masks, and so does nodata in the mask, as on Copernicus Data Space.
    flags = values if values.dtype == bool else values != 0
    return xr.DataArray(flags, dims=mask.dims, coords=mask.coords).broadcast_like(data).transpose(*data.dims)


@PROCESSES.register("mask")
def mask(args: Args, ctx: EvalContext) -> xr.DataArray:
    """Replace the values of ``data`` where ``mask`` is true or non-zero by ``replacement`` (null).

    The mask is put on the data's grid (nearest neighbour), matched by t label, and broadcast
    over dimensions it lacks; a mask with one band (or a different number of bands than the
    data) masks every band by its first band, one with the data's bands masks band by band.
    Nodata in the data stays nodata.
    """
    data = require_cube(args["data"])
    flags = _mask_like(require_cube(args["mask"], "mask"), data)
    replacement = args.get("replacement")
    if replacement is None:
        out = (data if data.dtype.kind == "f" else data.astype(np.float64)).where(~flags)
    else:
        out = data.where(~flags | data.isnull(), replacement)
    return with_meta(out, data)
