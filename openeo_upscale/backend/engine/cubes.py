"""Data cube processes on ``xarray.DataArray`` cubes: dimensions, callbacks, masks and merging.

Raster cubes have dimensions from ``("t", "bands", "y", "x")`` plus any added with
``add_dimension``; ``t`` labels are ``datetime64``, ``bands`` labels strings, ``x``/``y``
pixel centres. Attributes ``crs``, ``resolution`` and ``nodata`` travel with every result;
NaN is nodata inside the engine. A dimension added with ``add_dimension(type="bands")`` on a
cube without bands *is* the bands dimension, under its canonical name ``bands``; its given
name stays usable through ``attrs["dimension_aliases"]``.

Callbacks are vectorised, as :mod:`.evaluator` describes: one call per cube (``apply``), per
group of labels (``aggregate_temporal_period``, ``apply_neighborhood`` by period) or per chunk,
never per pixel. Spatial processes live in :mod:`.cubes_spatial`, collection loading in
:mod:`.cubes_load`, ``load_stac`` in :mod:`.cubes_stac` (``load_url`` in its :mod:`.cubes_url`),
``merge_cubes`` and ``mask`` in :mod:`.cubes_merge`, the SCL cloud mask
``to_scl_dilation_mask`` in :mod:`.cubes_scl`, ``aggregate_temporal`` in :mod:`.cubes_temporal`,
``apply_polygon`` in :mod:`.cubes_polygon`, ``sar_backscatter`` in :mod:`.cubes_sar`; importing
this module registers them all.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from openeo_upscale.backend.engine import cubes_load as cubes_load
from openeo_upscale.backend.engine import cubes_merge as cubes_merge
from openeo_upscale.backend.engine import cubes_polygon as cubes_polygon
from openeo_upscale.backend.engine import cubes_sar as cubes_sar
from openeo_upscale.backend.engine import cubes_scl as cubes_scl
from openeo_upscale.backend.engine import cubes_stac as cubes_stac
from openeo_upscale.backend.engine import cubes_temporal as cubes_temporal
from openeo_upscale.backend.engine._common import broadcast_result, require_cube
from openeo_upscale.backend.engine.context import ARRAY_DIM, Args, EvalContext, ProcessArgumentError
from openeo_upscale.backend.engine.cubes_spatial import Grid, VectorCube, with_meta
from openeo_upscale.backend.engine.registry import PROCESSES

__all__ = ["COMMON_NAMES", "PERIODS", "VectorCube", "period_starts"]

PERIODS = (
    "hour",
    "day",
    "week",
    "dekad",
    "month",
    "season",
    "tropical-season",
    "year",
    "decade",
    "decade-ad",
)
"""Periods of ``aggregate_temporal_period`` (and of ``apply_neighborhood`` sizes along t)."""

COMMON_NAMES = {
    "coastal": "B01",
    "blue": "B02",
    "green": "B03",
    "red": "B04",
    "nir": "B08",
    "nir08": "B8A",
    "nir09": "B09",
    "swir16": "B11",
    "swir22": "B12",
}
"""Sentinel-2 common band names -> band names, for ``ndvi`` and ``filter_bands``."""


# -- helpers ---------------------------------------------------------------------------------------


def _dim(cube: xr.DataArray, name: Any, parameter: str = "dimension") -> str:
    """The cube's dimension called `name` (directly or through an alias)."""
    if name in cube.dims:
        return str(name)
    alias = cube.attrs.get("dimension_aliases", {}).get(name)
    if alias in cube.dims:
        return str(alias)
    raise ProcessArgumentError(
        f"the data cube has no dimension '{name}' (it has {[str(d) for d in cube.dims]})", parameter=parameter
    )


def _temporal_dim(cube: xr.DataArray, name: Any) -> str:
    if name is not None:
        return _dim(cube, name)
    temporal = [str(d) for d in cube.dims if np.issubdtype(cube[d].dtype, np.datetime64)]
    if len(temporal) != 1:
        raise ProcessArgumentError(f"the data cube has {len(temporal)} temporal dimensions; name one")
    return temporal[0]


def _as_label(cube: xr.DataArray, dim: str, label: Any) -> Any:
    """A label given in a process graph, in the dtype of the dimension's labels."""
    if dim in cube.coords and np.issubdtype(cube[dim].dtype, np.datetime64):
        return _datetime64(label)
    return label


def _datetime64(value: Any) -> np.datetime64:
    try:
        stamp = pd.Timestamp(value)
    except (TypeError, ValueError) as exc:
        raise ProcessArgumentError(f"'{value}' is not a date or date-time") from exc
    if stamp.tzinfo is not None:
        stamp = stamp.tz_convert("UTC").tz_localize(None)
    return np.datetime64(stamp.to_datetime64(), "ns")


def _reduced(value: Any, like: xr.DataArray, what: str) -> xr.DataArray:
    """A reducer's result: no ARRAY_DIM, broadcast to `like` (the cube without the dimension)."""
    if isinstance(value, xr.DataArray) and ARRAY_DIM in value.dims:
        raise ProcessArgumentError(
            f"the {what} must reduce the dimension to one value, but it returned an array"
        )
    out = broadcast_result(value, like)
    return out.transpose(*like.dims)


def _strip(cube: xr.DataArray, dim: str) -> xr.DataArray:
    """`cube` without dimension `dim`, as a template for a reducer's result."""
    return cube.isel({dim: 0}, drop=True)


def _canonical(cube: xr.DataArray) -> xr.DataArray:
    first = [d for d in ("t", "bands") if d in cube.dims]
    last = [d for d in ("y", "x") if d in cube.dims]
    middle = [d for d in cube.dims if d not in first and d not in last]
    return cube.transpose(*first, *middle, *last)


# -- filter_bands / filter_temporal ----------------------------------------------------------------


def _band_name(cube: xr.DataArray, name: str) -> str:
    labels = [str(b) for b in cube["bands"].values]
    if name in labels:
        return name
    common = COMMON_NAMES.get(name)
    if common in labels:
        return str(common)
    raise ProcessArgumentError(f"the data cube has no band '{name}' (it has {labels})")


@PROCESSES.register("filter_bands")
def filter_bands(args: Args, ctx: EvalContext) -> xr.DataArray:
    """The given bands (names or common names), in the order given."""
    cube = require_cube(args["data"])
    dim = _dim(cube, "bands")
    bands = args.get("bands") or []
    if args.get("wavelengths"):
        raise ProcessArgumentError("filtering bands by wavelength is not supported", parameter="wavelengths")
    if not bands:
        raise ProcessArgumentError("give at least one band", parameter="bands")
    return cube.sel({dim: [_band_name(cube, b) for b in bands]})


def _in_interval(times: np.ndarray, extent: Any) -> np.ndarray:
    if not isinstance(extent, list | tuple) or len(extent) != 2:
        raise ProcessArgumentError("the temporal extent must be [start, end]", parameter="extent")
    keep = np.ones(times.shape, dtype=bool)
    if extent[0] is not None:
        keep &= times >= _datetime64(extent[0])
    if extent[1] is not None:
        keep &= times < _datetime64(extent[1])
    return keep


@PROCESSES.register("filter_temporal")
def filter_temporal(args: Args, ctx: EvalContext) -> xr.DataArray:
    """The labels in ``[start, end)`` of the temporal dimension; a null end is open."""
    cube = require_cube(args["data"])
    dim = _temporal_dim(cube, args.get("dimension"))
    return cube.isel({dim: np.nonzero(_in_interval(cube[dim].values, args["extent"]))[0]})


# -- apply / reduce_dimension / apply_dimension ----------------------------------------------------


@PROCESSES.register("apply")
def apply(args: Args, ctx: EvalContext) -> xr.DataArray:
    """``process(x=cube, context)``, once, over the whole cube."""
    cube = require_cube(args["data"])
    result = args["process"](x=cube, context=args.get("context"))
    return with_meta(broadcast_result(result, cube).transpose(*cube.dims), cube)


@PROCESSES.register("reduce_dimension")
def reduce_dimension(args: Args, ctx: EvalContext) -> xr.DataArray:
    """``reducer(data=cube with dimension as ARRAY_DIM, context)``; the dimension is gone."""
    cube = require_cube(args["data"])
    dim = _dim(cube, args["dimension"])
    result = args["reducer"](data=cube.rename({dim: ARRAY_DIM}), context=args.get("context"))
    return with_meta(_reduced(result, _strip(cube, dim), "reducer"), cube)


def _applied(result: Any, cube: xr.DataArray, dim: str) -> xr.DataArray:
    """A callback's result along ARRAY_DIM as the cube's dimension `dim` again."""
    if not isinstance(result, xr.DataArray) or ARRAY_DIM not in result.dims:
        # One value per pixel: the dimension keeps one label (0), as the spec has it when the
        # number of values changes (the catalogue's FAPAR and LAI networks return one value).
        one = broadcast_result(result, _strip(cube, dim)).expand_dims({dim: [0]})
        return one.transpose(*cube.dims) if cube.sizes[dim] != 1 else _one_label(one, cube, dim)
    result = result.rename({ARRAY_DIM: dim})
    n = result.sizes[dim]
    labels = cube[dim].values if n == cube.sizes[dim] else np.arange(n)
    result = result.drop_vars([dim], errors="ignore").assign_coords({dim: labels})
    template = _strip(cube, dim)
    missing = [d for d in template.dims if d not in result.dims]
    if missing:
        result = result.broadcast_like(template)
    return result.transpose(*cube.dims)


def _one_label(one: xr.DataArray, cube: xr.DataArray, dim: str) -> xr.DataArray:
    """A one-value result of a one-label dimension keeps that label."""
    return one.assign_coords({dim: cube[dim].values}).transpose(*cube.dims)


@PROCESSES.register("apply_dimension")
def apply_dimension(args: Args, ctx: EvalContext) -> xr.DataArray:
    """``process(data=cube with dimension as ARRAY_DIM, context)``, values along it replaced.

    The labels stay when the process returns as many values as it got, else they become
    0, 1, ...; with ``target_dimension`` the values go to that dimension (replacing the source
    dimension, filling an existing single-label target dimension, or, for a target with several
    labels, following each of them).
    """
    cube = require_cube(args["data"])
    dim = _dim(cube, args["dimension"])
    target = args.get("target_dimension")
    result = args["process"](data=cube.rename({dim: ARRAY_DIM}), context=args.get("context"))
    out = _applied(result, cube, dim)
    if target is not None and target != dim:
        if target in cube.dims and cube.sizes[target] > 1:
            return with_meta(_flattened(out, target, dim), cube)
        if target in cube.dims:
            out = out.isel({target: 0}, drop=True)
        out = out.rename({dim: target})
        out = out.assign_coords({target: np.arange(out.sizes[target])})
    return with_meta(out, cube)


def _flattened(out: xr.DataArray, target: str, dim: str) -> xr.DataArray:
    """Values along `dim` moved into a `target` that has several labels already, as Copernicus
    Data Space does (sentinel1_stats: VH and VV times 7 statistics): label by label of `target`,
    each followed by its values, labelled ``<label>_<index>``."""
    labels = [f"{label}_{index}" for label in out[target].values for index in range(out.sizes[dim])]
    values = out.drop_vars([target, dim], errors="ignore")
    values = values.stack({"__flat__": (target, dim)}, create_index=False)
    values = values.rename({"__flat__": target}).assign_coords({target: labels})
    return values.transpose(*[d for d in out.dims if d != dim])


# -- periods: aggregate_temporal_period and apply_neighborhood along t ------------------------------


def period_starts(times: np.ndarray, period: str) -> np.ndarray:
    """The start of the period each of `times` falls in (``datetime64[ns]``).

    Weeks start on Monday; dekads on the 1st, 11th and 21st; seasons on 1 December, March,
    June and September; tropical seasons on 1 November and 1 May; decades in years ending in 0
    (``decade-ad``: in 1).
    """
    index = pd.DatetimeIndex(times)
    year, month, day = index.year.to_numpy(), index.month.to_numpy(), index.day.to_numpy()
    if period == "hour":
        return np.asarray(index.floor("h").to_numpy(), dtype="datetime64[ns]")
    if period == "day":
        return np.asarray(index.normalize().to_numpy(), dtype="datetime64[ns]")
    if period == "week":
        starts = index.normalize() - pd.to_timedelta(index.dayofweek, unit="D")
        return np.asarray(starts.to_numpy(), dtype="datetime64[ns]")
    if period == "dekad":
        day = np.where(day <= 10, 1, np.where(day <= 20, 11, 21))
    elif period == "month":
        day = np.ones_like(day)
    elif period == "season":
        start_month = np.array([12, 3, 6, 9])[(month % 12) // 3]
        year = np.where(month < 3, year - 1, year)
        month, day = start_month, np.ones_like(day)
    elif period == "tropical-season":
        year = np.where(month < 5, year - 1, year)
        month = np.where((month >= 5) & (month < 11), 5, 11)
        day = np.ones_like(day)
    elif period == "year":
        month, day = np.ones_like(month), np.ones_like(day)
    elif period in ("decade", "decade-ad"):
        year = (year // 10) * 10 if period == "decade" else ((year - 1) // 10) * 10 + 1
        month, day = np.ones_like(month), np.ones_like(day)
    else:
        raise ProcessArgumentError(
            f"unknown period '{period}'; use one of {', '.join(PERIODS)}", parameter="period"
        )
    frame = pd.DataFrame({"year": year, "month": month, "day": day})
    return np.asarray(pd.to_datetime(frame).to_numpy(), dtype="datetime64[ns]")


def _groups(labels: np.ndarray, keys: np.ndarray) -> list[tuple[Any, np.ndarray]]:
    """(key, positions) per distinct key, in order of first appearance."""
    seen: dict[Any, list[int]] = {}
    for i, key in enumerate(keys):
        seen.setdefault(key, []).append(i)
    return [(key, np.asarray(pos)) for key, pos in seen.items()]


@PROCESSES.register("aggregate_temporal_period")
def aggregate_temporal_period(args: Args, ctx: EvalContext) -> xr.DataArray:
    """Reduce the labels of each period with ``reducer``; a period is labelled by its start.

    The reducer is called once per period that has data (``data`` along ARRAY_DIM holds that
    period's labels); periods without data are left out, as Copernicus Data Space does.
    """
    cube = require_cube(args["data"])
    dim = _temporal_dim(cube, args.get("dimension"))
    period = args["period"]
    reducer = args["reducer"]
    context = args.get("context")
    template = _strip(cube, dim)
    starts = period_starts(cube[dim].values, period)
    results, labels = [], []
    for start, positions in _groups(cube[dim].values, starts):
        group = cube.isel({dim: positions}).rename({dim: ARRAY_DIM})
        results.append(_reduced(reducer(data=group, context=context), template, "reducer"))
        labels.append(start)
    if not results:
        empty = cube.isel({dim: slice(0, 0)})
        return with_meta(empty, cube)
    out = xr.concat(results, dim=dim, coords="minimal", compat="override", join="override")
    out = out.assign_coords({dim: np.asarray(labels, dtype="datetime64[ns]")})
    return with_meta(out.transpose(*cube.dims), cube)


def _size_entries(value: Any, name: str) -> dict[str, dict[str, Any]]:
    if value is None:
        return {}
    if not isinstance(value, list):
        raise ProcessArgumentError(f"'{name}' must be a list of {{dimension, value, unit}}", parameter=name)
    entries = {}
    for item in value:
        if not isinstance(item, Mapping) or "dimension" not in item:
            raise ProcessArgumentError(f"every '{name}' entry needs a dimension", parameter=name)
        entries[str(item["dimension"])] = dict(item)
    return entries


def _pixels(entry: Mapping[str, Any] | None, resolution: float, full: int) -> int:
    """A neighbourhood size or overlap along x/y in pixels (`full` when not given)."""
    if entry is None or entry.get("value") is None:
        return full
    value = float(entry["value"])
    if entry.get("unit") == "m":
        value = value / resolution
    return max(0, round(value))


def _t_chunks(cube: xr.DataArray, entry: Mapping[str, Any] | None) -> list[np.ndarray]:
    """Positions along t of each neighbourhood: all at once, by period, or n labels at a time."""
    n = cube.sizes["t"]
    value = None if entry is None else entry.get("value")
    if value is None:
        return [np.arange(n)]
    if isinstance(value, str):
        if value in PERIODS:
            return [pos for _, pos in _groups(cube["t"].values, period_starts(cube["t"].values, value))]
        raise ProcessArgumentError(f"unknown size '{value}' along t", parameter="size")
    step = max(1, int(value))
    return [np.arange(i, min(i + step, n)) for i in range(0, n, step)]


@PROCESSES.register("apply_neighborhood")
def apply_neighborhood(args: Args, ctx: EvalContext) -> xr.DataArray:
    """Run ``process`` on neighbourhoods of ``size`` (+ ``overlap`` on each side), results tiled back.

    Dimensions not in ``size`` are given whole. Sizes along x/y are pixels or metres; along t a
    number of labels, a period name (``"month"``, as Copernicus Data Space accepts) or null.

    - x and y of one pixel: each pixel's time series, so t becomes ARRAY_DIM and the process
      is called once per t chunk for all pixels at once (array processes such as
      ``array_apply`` then see one series per pixel).
    - otherwise: the cube is padded with NaN to whole chunks plus overlap and the process gets
      each chunk as a cube (dimensions unchanged) and must return it with the same shape; the
      overlap is cut off again. A chunk covering the whole cube means a single call.
    """
    cube = require_cube(args["data"])
    process = args["process"]
    context = args.get("context")
    size = _size_entries(args["size"], "size")
    overlap = _size_entries(args.get("overlap"), "overlap")
    for name in (*size, *overlap):
        if name not in ("x", "y", "t") and name not in cube.dims:
            raise ProcessArgumentError(f"the data cube has no dimension '{name}'", parameter="size")
    spatial = "x" in cube.dims and "y" in cube.dims
    res = float(cube.attrs.get("resolution") or 1.0)
    sx = _pixels(size.get("x"), res, cube.sizes.get("x", 1)) if spatial else 0
    sy = _pixels(size.get("y"), res, cube.sizes.get("y", 1)) if spatial else 0
    ox = _pixels(overlap.get("x"), res, 0) if spatial else 0
    oy = _pixels(overlap.get("y"), res, 0) if spatial else 0
    has_t = "t" in cube.dims
    chunks = _t_chunks(cube, size.get("t")) if has_t else [np.arange(0)]
    if spatial and sx == 1 and sy == 1 and ox == 0 and oy == 0 and has_t:
        parts = []
        for positions in chunks:
            part = cube.isel(t=positions)
            result = process(data=part.rename({"t": ARRAY_DIM}), context=context)
            parts.append(_applied(result, part, "t"))
        out = xr.concat(parts, dim="t", coords="minimal", compat="override", join="override")
        return with_meta(out.transpose(*cube.dims), cube)
    if not spatial:
        raise ProcessArgumentError("apply_neighborhood needs a cube with x and y")
    outputs = []
    for positions in chunks:
        part = cube.isel(t=positions) if has_t else cube
        outputs.append(_spatial_chunks(part, process, context, (sy, sx), (oy, ox)))
    out = (
        outputs[0] if len(outputs) == 1 else xr.concat(outputs, dim="t", coords="minimal", compat="override")
    )
    return with_meta(out.transpose(*cube.dims), cube)


def _spatial_chunks(
    cube: xr.DataArray, process: Any, context: Any, size: tuple[int, int], overlap: tuple[int, int]
) -> xr.DataArray:
    ny, nx = cube.sizes["y"], cube.sizes["x"]
    (sy, sx), (oy, ox) = size, overlap
    sy, sx = max(1, sy), max(1, sx)
    if sy >= ny and sx >= nx and oy == 0 and ox == 0:
        return _applied_same(process(data=cube, context=context), cube)
    ordered = cube.transpose(*[d for d in cube.dims if d not in ("y", "x")], "y", "x")
    arr = np.asarray(ordered.values, dtype=np.float64)
    py, px = (-ny) % sy, (-nx) % sx
    padded = np.pad(arr, [(0, 0)] * (arr.ndim - 2) + [(oy, oy + py), (ox, ox + px)], constant_values=np.nan)
    grid = Grid.of(cube)
    xres, yres = grid.resolution
    out = np.empty((*arr.shape[:-2], ny + py, nx + px), dtype=np.float64)
    for y0 in range(0, ny + py, sy):
        for x0 in range(0, nx + px, sx):
            window = padded[..., y0 : y0 + sy + 2 * oy, x0 : x0 + sx + 2 * ox]
            ys = grid.transform.f - (np.arange(y0 - oy, y0 + sy + oy) + 0.5) * yres
            xs = grid.transform.c + (np.arange(x0 - ox, x0 + sx + ox) + 0.5) * xres
            coords = {
                d: ordered[d].values for d in ordered.dims if d not in ("y", "x") and d in ordered.coords
            }
            chunk = with_meta(
                xr.DataArray(window, dims=ordered.dims, coords={**coords, "y": ys, "x": xs}), cube
            )
            result = _applied_same(process(data=chunk, context=context), chunk)
            out[..., y0 : y0 + sy, x0 : x0 + sx] = np.asarray(
                result.transpose(*ordered.dims).values[..., oy : oy + sy, ox : ox + sx], dtype=np.float64
            )
    return ordered.copy(data=out[..., :ny, :nx])


def _applied_same(result: Any, chunk: xr.DataArray) -> xr.DataArray:
    result = broadcast_result(result, chunk)
    if dict(result.sizes) != dict(chunk.sizes):
        raise ProcessArgumentError(
            f"the process of apply_neighborhood must keep the neighbourhood's shape {dict(chunk.sizes)}, "
            f"got {dict(result.sizes)}"
        )
    return result.transpose(*chunk.dims)


# -- labels and dimensions -----------------------------------------------------------------------------


@PROCESSES.register("rename_labels")
def rename_labels(args: Args, ctx: EvalContext) -> xr.DataArray:
    """Relabel ``dimension``: ``source`` labels to ``target`` labels, or all labels in order."""
    cube = require_cube(args["data"])
    dim = _dim(cube, args["dimension"])
    target = list(args["target"])
    source = list(args.get("source") or [])
    labels = list(cube[dim].values)
    if not source:
        if len(target) != len(labels):
            raise ProcessArgumentError(
                f"{len(target)} target labels for {len(labels)} labels of '{dim}'; give 'source'",
                parameter="target",
            )
        new = [_as_label(cube, dim, t) for t in target]
    else:
        if len(source) != len(target):
            raise ProcessArgumentError("'source' and 'target' must have the same length", parameter="source")
        mapping = {
            _as_label(cube, dim, s): _as_label(cube, dim, t) for s, t in zip(source, target, strict=True)
        }
        unknown = [s for s in mapping if s not in labels]
        if unknown:
            raise ProcessArgumentError(f"labels {unknown} are not in dimension '{dim}'", parameter="source")
        new = [mapping.get(label, label) for label in labels]
    if len(set(map(str, new))) != len(new):
        raise ProcessArgumentError(f"renaming would give duplicate labels in '{dim}'", parameter="target")
    return cube.assign_coords({dim: np.asarray(new)})


def _has(cube: xr.DataArray, name: Hashable) -> bool:
    return name in cube.attrs.get("dimension_aliases", {})


@PROCESSES.register("add_dimension")
def add_dimension(args: Args, ctx: EvalContext) -> xr.DataArray:
    """A new dimension of one ``label``; ``type`` bands makes it the cube's bands dimension."""
    cube = require_cube(args["data"])
    name = str(args["name"])
    kind = args.get("type", "other")
    if name in cube.dims or _has(cube, name):
        raise ProcessArgumentError(f"the data cube already has a dimension '{name}'", parameter="name")
    label = args["label"]
    aliases = dict(cube.attrs.get("dimension_aliases", {}))
    if kind == "bands" and "bands" not in cube.dims:
        if name != "bands":
            aliases[name] = "bands"
        name = "bands"
    elif kind == "temporal":
        label = _datetime64(label)
    out = _canonical(cube.expand_dims({name: [label]}))
    return with_meta(out, cube, dimension_aliases=aliases) if aliases else with_meta(out, cube)


@PROCESSES.register("drop_dimension")
def drop_dimension(args: Args, ctx: EvalContext) -> xr.DataArray:
    """Remove a dimension that has at most one label."""
    cube = require_cube(args["data"])
    dim = _dim(cube, args["name"], "name")
    if cube.sizes[dim] > 1:
        raise ProcessArgumentError(
            f"dimension '{dim}' has {cube.sizes[dim]} labels; reduce it first", parameter="name"
        )
    return with_meta(cube.squeeze(dim, drop=True), cube)


@PROCESSES.register("dimension_labels")
def dimension_labels(args: Args, ctx: EvalContext) -> list[Any]:
    """The labels of a dimension; dates as ISO 8601 strings (``2023-05-01T00:00:00Z``)."""
    cube = require_cube(args["data"])
    dim = _dim(cube, args["dimension"])
    values = cube[dim].values
    if np.issubdtype(values.dtype, np.datetime64):
        return [pd.Timestamp(v).strftime("%Y-%m-%dT%H:%M:%SZ") for v in values]
    return [v.item() if isinstance(v, np.generic) else v for v in values]


# -- ndvi and save_result -------------------------------------------------------------------------------


@PROCESSES.register("ndvi")
def ndvi(args: Args, ctx: EvalContext) -> xr.DataArray:
    """(nir - red) / (nir + red); bands by name or common name; ``target_band`` appends it."""
    cube = require_cube(args["data"])
    dim = _dim(cube, "bands")
    nir = _band_name(cube, args.get("nir") or "nir")
    red = _band_name(cube, args.get("red") or "red")
    n = cube.sel({dim: nir}, drop=True).astype(np.float64)
    r = cube.sel({dim: red}, drop=True).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        index = (n - r) / (n + r)
    target = args.get("target_band")
    if target is None:
        return with_meta(index, cube)
    if target in [str(b) for b in cube[dim].values]:
        raise ProcessArgumentError(f"the data cube already has a band '{target}'", parameter="target_band")
    band = index.expand_dims({dim: [target]}).transpose(*cube.dims)
    return with_meta(xr.concat([cube.astype(np.float64), band], dim=dim), cube)


@PROCESSES.register("save_result")
def save_result(args: Args, ctx: EvalContext) -> Saved:
    """Hand the cube to the job's result writer (``services["results"]``).

    Returns a true `Saved`, not a bare ``True``, so that a graph saving the result of a UDP that
    saves its own (the client adds a ``save_result`` to every batch job) still has the cube: as on
    Copernicus Data Space, the outer ``save_result`` sets the format, replacing the inner files
    (but a vector cube saved as CSV stays so when the outer format is a raster one).
    """
    writer = ctx.services.get("results")
    if writer is None:
        raise ProcessArgumentError("this evaluation has no result writer: save_result is not available")
    data = args["data"]
    if isinstance(data, Saved):
        if not isinstance(data.cube, xr.DataArray) and str(args["format"]).lower() in _RASTER_FORMATS:
            return data  # a vector result keeps the format its UDP chose: no raster can hold it
        writer.discard(data.assets)
        data = data.cube
    return Saved(data, tuple(writer.save(data, args["format"], args.get("options") or {})))


_RASTER_FORMATS = frozenset({"gtiff", "geotiff", "tiff", "netcdf", "nc", "png"})


@dataclass(frozen=True)
class Saved:
    """What ``save_result`` returns: true, with the cube saved and the names of its files."""

    cube: Any
    assets: tuple[str, ...]

    def __bool__(self) -> bool:
        return True
