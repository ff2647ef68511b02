"""``aggregate_temporal``: reduce a cube's temporal dimension over intervals the user gives.

Each interval ``[start, end)`` is a pair of dates (``2023-06-01``, midnight UTC) or date-times
(converted to UTC); intervals may overlap and leave gaps. The reducer is called once per
interval, with that interval's labels along ARRAY_DIM (as the evaluator's docstring describes),
also for an interval without labels: the openEO specification runs reducers on empty intervals,
which gives nodata for ``mean``, ``max``, ``first``... and 0 for ``count``.

Errors named by the specification carry its codes: ``TemporalExtentEmpty`` (an end not after its
start), ``DistinctDimensionLabelsRequired``, ``TooManyDimensions`` and ``DimensionNotAvailable``.
Time-of-day intervals (``["06:00:00", "18:00:00"]``) and open (null) bounds are refused: this
backend's temporal labels are instants, and an open bound has no default label.

``aggregate_temporal_period`` stays in :mod:`.cubes`, which shares its period helpers with
``apply_neighborhood``; :mod:`.cubes` imports this module, which registers its process on import.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import xarray as xr

from openeo_upscale.backend.engine._common import broadcast_result, require_cube, to_datetime64
from openeo_upscale.backend.engine.context import ARRAY_DIM, Args, EvalContext, ProcessArgumentError
from openeo_upscale.backend.engine.cubes_spatial import with_meta
from openeo_upscale.backend.engine.registry import PROCESSES
from openeo_upscale.backend.errors import ApiError

__all__ = ["interval_bounds", "temporal_dimension"]

_DATE_PREFIX = re.compile(r"^\d{4}-\d{2}-\d{2}")


def _spec_error(code: str, message: str) -> ApiError:
    """An error the process specification names, with its code (the evaluator adds the node)."""
    return ApiError(message, code=code, status=400)


def temporal_dimension(cube: xr.DataArray, name: Any) -> str:
    """The temporal dimension `name`, or the cube's only temporal dimension when `name` is null."""
    temporal = [str(d) for d in cube.dims if np.issubdtype(cube[d].dtype, np.datetime64)]
    if name is not None:
        if name not in cube.dims:
            raise _spec_error(
                "DimensionNotAvailable",
                f"the data cube has no dimension '{name}' (it has {[str(d) for d in cube.dims]})",
            )
        if str(name) not in temporal:
            raise _spec_error("DimensionNotAvailable", f"dimension '{name}' is not temporal")
        return str(name)
    if not temporal:
        raise _spec_error("DimensionNotAvailable", "the data cube has no temporal dimension")
    if len(temporal) > 1:
        raise _spec_error(
            "TooManyDimensions", f"the data cube has {len(temporal)} temporal dimensions {temporal}; name one"
        )
    return temporal[0]


def _instant(value: Any) -> np.datetime64:
    if not isinstance(value, str) or not _DATE_PREFIX.match(value):
        raise ProcessArgumentError(
            f"interval bounds must be dates or date-times (such as '2023-06-01'), not {value!r}",
            parameter="intervals",
        )
    return to_datetime64(value)


def interval_bounds(intervals: Any) -> list[tuple[np.datetime64, np.datetime64]]:
    """``[[start, end], ...]`` as (start, end) instants (UTC ``datetime64[ns]``), end excluded."""
    if not isinstance(intervals, list | tuple) or not intervals:
        raise ProcessArgumentError(
            "'intervals' must be a non-empty list of [start, end]", parameter="intervals"
        )
    bounds = []
    for interval in intervals:
        if not isinstance(interval, list | tuple) or len(interval) != 2:
            raise ProcessArgumentError(
                f"every interval must be [start, end], not {interval!r}", parameter="intervals"
            )
        start, end = _instant(interval[0]), _instant(interval[1])
        if end <= start:
            raise _spec_error(
                "TemporalExtentEmpty",
                f"the interval {list(interval)} is empty: its end must be after its start",
            )
        bounds.append((start, end))
    return bounds


def _labels(labels: Any, bounds: list[tuple[np.datetime64, np.datetime64]]) -> np.ndarray:
    if not labels:
        values = np.asarray([start for start, _ in bounds], dtype="datetime64[ns]")
        if len(set(values.tolist())) != len(values):
            raise _spec_error(
                "DistinctDimensionLabelsRequired",
                "the intervals' starts are not distinct; give distinct 'labels', one per interval",
            )
        return values
    if not isinstance(labels, list | tuple) or len(labels) != len(bounds):
        count = len(labels) if isinstance(labels, list | tuple) else "no list of"
        raise ProcessArgumentError(f"{count} labels for {len(bounds)} intervals", parameter="labels")
    values = np.asarray([_label(label) for label in labels], dtype="datetime64[ns]")
    if len(set(values.tolist())) != len(values):
        raise _spec_error("DistinctDimensionLabelsRequired", f"the labels {list(labels)} are not distinct")
    return values


def _label(label: Any) -> np.datetime64:
    # The temporal dimension's labels are instants everywhere in the engine, so labels must be too.
    if not isinstance(label, str) or not _DATE_PREFIX.match(label):
        raise ProcessArgumentError(
            f"labels must be dates or date-times in this backend, not {label!r}", parameter="labels"
        )
    return to_datetime64(label)


def _without(cube: xr.DataArray, dim: str) -> xr.DataArray:
    """A template of `cube` without `dim` (also when `dim` has no labels)."""
    dims = [d for d in cube.dims if d != dim]
    coords = {k: v for k, v in cube.coords.items() if dim not in v.dims}
    return xr.DataArray(np.empty([cube.sizes[d] for d in dims]), dims=dims, coords=coords)


@PROCESSES.register("aggregate_temporal")
def aggregate_temporal(args: Args, ctx: EvalContext) -> xr.DataArray:
    """Reduce the labels of each interval with ``reducer``; one label per interval, in their order.

    Labels are ``labels`` or, by default, the intervals' starts. The reducer gets ``data`` with
    the interval's labels along ARRAY_DIM (none for an empty interval) and ``context``.
    """
    cube = require_cube(args["data"])
    dim = temporal_dimension(cube, args.get("dimension"))
    bounds = interval_bounds(args["intervals"])
    labels = _labels(args.get("labels"), bounds)
    reducer = args["reducer"]
    context = args.get("context")
    times = cube[dim].values
    template = _without(cube, dim)
    results = []
    for start, end in bounds:
        positions = np.nonzero((times >= start) & (times < end))[0]
        value = reducer(data=cube.isel({dim: positions}).rename({dim: ARRAY_DIM}), context=context)
        if isinstance(value, xr.DataArray) and ARRAY_DIM in value.dims:
            raise ProcessArgumentError(
                "the reducer must reduce each interval to one value, but it returned an array"
            )
        results.append(broadcast_result(value, template).transpose(*template.dims))
    out = xr.concat(results, dim=dim, coords="minimal", compat="override", join="override")
    out = out.assign_coords({dim: labels})
    return with_meta(out.transpose(*cube.dims), cube)
