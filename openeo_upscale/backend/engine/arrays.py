"""Array processes and reducers on lists, numpy arrays and DataArrays.

Array processes take (a) a list or 1-D numpy array, or (b) a DataArray with the dimension
:data:`~openeo_upscale.backend.engine.context.ARRAY_DIM` (a 1-D DataArray without it
counts as an array along its only dimension), or (c) a list whose items include DataArrays,
stacked along ``ARRAY_DIM`` (``array_create([eq1, eq2])`` inside ``apply``). Reducers remove
``ARRAY_DIM``; ``array_apply``, ``array_create`` and ``array_concat`` keep it. Reducers
ignore nodata by default; a position with no valid value gives NaN. A list's null is NaN.
"""

from __future__ import annotations

import itertools
import math
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import xarray as xr

from openeo_upscale.backend.engine._common import (
    is_array,
    nan_mask,
    null_to_nan,
    to_datetime64,
    to_py,
    truthy,
)
from openeo_upscale.backend.engine.context import ARRAY_DIM, Args, EvalContext, ProcessArgumentError
from openeo_upscale.backend.engine.evaluator import Callback
from openeo_upscale.backend.engine.registry import PROCESSES

# -- helpers ------------------------------------------------------------------------------------


def _array(data: Any, name: str = "data") -> xr.DataArray | np.ndarray:
    """An array process's input: a DataArray along ARRAY_DIM or a 1-D numpy array."""
    if isinstance(data, xr.DataArray):
        if ARRAY_DIM in data.dims:
            return data
        if data.ndim == 1:
            return data.rename({data.dims[0]: ARRAY_DIM})
        raise ProcessArgumentError(
            f"argument '{name}' is a data cube with dimensions {list(data.dims)}, not an array; "
            "array processes work on the dimension a reducer or apply_dimension hands over",
            parameter=name,
        )
    if isinstance(data, np.ndarray):
        if data.ndim != 1:
            raise ProcessArgumentError(f"argument '{name}' must be a 1-D array", parameter=name)
        return data
    if isinstance(data, list | tuple):
        if any(is_array(v) for v in data):
            return _stack(list(data))
        if any(isinstance(v, str) for v in data):
            return np.asarray(list(data), dtype=object)
        return np.asarray([null_to_nan(v) for v in data])
    raise ProcessArgumentError(
        f"argument '{name}' must be an array, not {type(data).__name__}", parameter=name
    )


def _stack(items: list[Any]) -> xr.DataArray:
    arrays = [v if isinstance(v, xr.DataArray) else xr.DataArray(null_to_nan(v)) for v in items]
    if any(isinstance(v, np.ndarray) and v.ndim > 0 for v in items):
        raise ProcessArgumentError("an array mixing numpy arrays and data cubes cannot be stacked")
    return xr.concat(xr.broadcast(*arrays), dim=ARRAY_DIM, coords="minimal", compat="override", join="outer")


def _reduce(data: Any, func: Callable[..., np.ndarray], **kwargs: Any) -> Any:
    """Reduce along ARRAY_DIM (DataArray) or the only axis (1-D) with `func(a, **kwargs)` on axis -1."""
    arr = _array(data)
    if isinstance(arr, xr.DataArray):
        return xr.apply_ufunc(func, arr, input_core_dims=[[ARRAY_DIM]], kwargs=kwargs, keep_attrs=True)
    return to_py(func(arr, **kwargs))


def _ignore(args: Args) -> bool:
    value = args.get("ignore_nodata", True)
    if not isinstance(value, bool | np.bool_):
        raise ProcessArgumentError("argument 'ignore_nodata' must be a boolean", parameter="ignore_nodata")
    return bool(value)


def _valid(a: np.ndarray) -> np.ndarray:
    return ~np.asarray(nan_mask(a))


def _no_valid_to_nan(result: np.ndarray, count: np.ndarray) -> np.ndarray:
    result = np.asarray(result, dtype=float) if np.any(count == 0) else np.asarray(result)
    return np.where(count == 0, np.nan, result)


# -- numpy reducers along the last axis ------------------------------------------------------------


def np_max(a: np.ndarray, ignore_nodata: bool = True) -> np.ndarray:
    """Maximum along the last axis; NaN where no valid value (or any NaN without ignore_nodata)."""
    if a.shape[-1] == 0:
        return np.full(a.shape[:-1], np.nan)
    if a.dtype.kind != "f":
        return np.asarray(a.max(axis=-1))
    return np.fmax.reduce(a, axis=-1) if ignore_nodata else np.max(a, axis=-1)


def np_min(a: np.ndarray, ignore_nodata: bool = True) -> np.ndarray:
    """Minimum along the last axis, like :func:`np_max`."""
    if a.shape[-1] == 0:
        return np.full(a.shape[:-1], np.nan)
    if a.dtype.kind != "f":
        return np.asarray(a.min(axis=-1))
    return np.fmin.reduce(a, axis=-1) if ignore_nodata else np.min(a, axis=-1)


def _masked(a: np.ndarray, ignore_nodata: bool, fill: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(values with nodata replaced by `fill`, count of valid values, any-nodata flags)."""
    valid = _valid(a)
    count = valid.sum(axis=-1)
    has_nodata = count < a.shape[-1]
    return np.where(valid, a, fill), count, has_nodata


def np_sum(a: np.ndarray, ignore_nodata: bool = True) -> np.ndarray:
    """Sum along the last axis."""
    filled, count, has_nodata = _masked(a, ignore_nodata, 0)
    out = _no_valid_to_nan(filled.sum(axis=-1), count)
    return out if ignore_nodata else np.where(has_nodata, np.nan, out)


def np_product(a: np.ndarray, ignore_nodata: bool = True) -> np.ndarray:
    """Product along the last axis."""
    filled, count, has_nodata = _masked(a, ignore_nodata, 1)
    out = _no_valid_to_nan(filled.prod(axis=-1), count)
    return out if ignore_nodata else np.where(has_nodata, np.nan, out)


def np_mean(a: np.ndarray, ignore_nodata: bool = True) -> np.ndarray:
    """Mean along the last axis."""
    filled, count, has_nodata = _masked(a, ignore_nodata, 0)
    with np.errstate(all="ignore"):
        out = _no_valid_to_nan(filled.sum(axis=-1) / count, count)
    return out if ignore_nodata else np.where(has_nodata, np.nan, out)


def np_variance(a: np.ndarray, ignore_nodata: bool = True) -> np.ndarray:
    """Sample variance (n - 1) along the last axis; NaN with fewer than two values."""
    filled, count, has_nodata = _masked(a.astype(float), ignore_nodata, 0)
    valid = _valid(a)
    with np.errstate(all="ignore"):
        mean = filled.sum(axis=-1) / count
        dev = np.where(valid, filled - mean[..., None], 0.0)
        out = np.where(count < 2, np.nan, (dev**2).sum(axis=-1) / (count - 1))
    return out if ignore_nodata else np.where(has_nodata, np.nan, out)


def np_sd(a: np.ndarray, ignore_nodata: bool = True) -> np.ndarray:
    """Sample standard deviation along the last axis."""
    return np.sqrt(np_variance(a, ignore_nodata))


def np_median(a: np.ndarray, ignore_nodata: bool = True) -> np.ndarray:
    """Median along the last axis."""
    if a.shape[-1] == 0:
        return np.full(a.shape[:-1], np.nan)
    a = a.astype(float)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slices give NaN, as wanted
        return np.nanmedian(a, axis=-1) if ignore_nodata else np.median(a, axis=-1)


def _np_first(a: np.ndarray, ignore_nodata: bool = True, last: bool = False) -> np.ndarray:
    if last:
        a = a[..., ::-1]
    if a.shape[-1] == 0:
        return np.full(a.shape[:-1], np.nan)
    if not ignore_nodata:
        return a[..., 0]
    valid = _valid(a)
    idx = np.argmax(valid, axis=-1)
    out = np.take_along_axis(a, idx[..., None], axis=-1)[..., 0]
    return _no_valid_to_nan(out, valid.sum(axis=-1))


def np_first(a: np.ndarray, ignore_nodata: bool = True) -> np.ndarray:
    """First (valid) value along the last axis."""
    return _np_first(a, ignore_nodata)


def np_last(a: np.ndarray, ignore_nodata: bool = True) -> np.ndarray:
    """Last (valid) value along the last axis."""
    return _np_first(a, ignore_nodata, last=True)


def _np_any_all(a: np.ndarray, ignore_nodata: bool, want_all: bool) -> np.ndarray:
    if a.dtype == bool:
        return np.asarray(a.all(axis=-1) if want_all else a.any(axis=-1))
    valid = _valid(a)
    with np.errstate(invalid="ignore"):
        truth = valid & (a != 0)
        falsity = valid & (a == 0)
    if want_all:
        decided, result = falsity.any(axis=-1), np.zeros(a.shape[:-1])
    else:
        decided, result = truth.any(axis=-1), np.ones(a.shape[:-1])
    undecided_value = 1.0 if want_all else 0.0
    count = valid.sum(axis=-1)
    complete = count == a.shape[-1]
    rest = np.where(complete | (ignore_nodata & (count > 0)), undecided_value, np.nan)
    return np.where(decided, result, rest)


def np_any(a: np.ndarray, ignore_nodata: bool = True) -> np.ndarray:
    """Any true value along the last axis (three-valued on floats)."""
    return _np_any_all(a, ignore_nodata, want_all=False)


def np_all(a: np.ndarray, ignore_nodata: bool = True) -> np.ndarray:
    """All values true along the last axis (three-valued on floats)."""
    return _np_any_all(a, ignore_nodata, want_all=True)


_REDUCERS = {
    "max": np_max,
    "min": np_min,
    "sum": np_sum,
    "product": np_product,
    "mean": np_mean,
    "median": np_median,
    "sd": np_sd,
    "variance": np_variance,
    "first": np_first,
    "last": np_last,
    "any": np_any,
    "all": np_all,
}


def _register_reducer(process_id: str, func: Callable[..., np.ndarray]) -> None:
    def impl(args: Args, ctx: EvalContext) -> Any:
        return _reduce(args["data"], func, ignore_nodata=_ignore(args))

    impl.__doc__ = f"openEO `{process_id}`."
    PROCESSES.add(process_id, impl)


for _pid, _func in _REDUCERS.items():
    _register_reducer(_pid, _func)


@PROCESSES.register("count")
def count(args: Args, ctx: EvalContext) -> Any:
    """openEO `count`: valid values, all values (condition true) or those a callback accepts."""
    arr = _array(args["data"])
    condition = args.get("condition")
    if condition is True:
        flags: Any = (
            xr.ones_like(arr, dtype=bool) if isinstance(arr, xr.DataArray) else np.ones(arr.shape, bool)
        )
    elif condition is None:
        flags = ~nan_mask(arr) if isinstance(arr, xr.DataArray) else _valid(arr)
    elif isinstance(condition, Callback):
        flags = truthy(condition(x=arr, context=args.get("context")))
    else:
        raise ProcessArgumentError(
            "argument 'condition' must be a process, true or null", parameter="condition"
        )
    if isinstance(flags, xr.DataArray) and isinstance(arr, xr.DataArray):
        flags = flags.broadcast_like(arr)
        return flags.sum(dim=ARRAY_DIM)
    return to_py(np.asarray(flags).sum())


# -- array access and construction -------------------------------------------------------------------


def _nodata_like(arr: xr.DataArray) -> xr.DataArray:
    return xr.full_like(arr.isel({ARRAY_DIM: 0}, drop=True), np.nan, dtype=float)


@PROCESSES.register("array_element")
def array_element(args: Args, ctx: EvalContext) -> Any:
    """openEO `array_element` by index or label."""
    data, index, label = args["data"], args.get("index"), args.get("label")
    return_nodata = bool(args.get("return_nodata", False))
    if (index is None) == (label is None):
        raise ProcessArgumentError("give exactly one of 'index' and 'label'", parameter="index")
    if index is not None and (not isinstance(index, int | np.integer) or isinstance(index, bool)):
        raise ProcessArgumentError("argument 'index' must be an integer", parameter="index")
    position = -1 if index is None else int(index)
    if isinstance(data, list | tuple) and not any(is_array(v) for v in data):
        if label is not None:
            raise ProcessArgumentError("the array has no labels; use 'index'", parameter="label")
        if 0 <= position < len(data):
            return data[position]
        if return_nodata:
            return None
        raise ProcessArgumentError(f"index {index} is out of range (array of {len(data)})", parameter="index")
    arr = _array(data)
    if isinstance(arr, np.ndarray):
        if label is not None:
            raise ProcessArgumentError("the array has no labels; use 'index'", parameter="label")
        if 0 <= position < arr.shape[0]:
            return to_py(arr[position])
        if return_nodata:
            return None
        raise ProcessArgumentError(
            f"index {index} is out of range (array of {arr.shape[0]})", parameter="index"
        )
    size = arr.sizes[ARRAY_DIM]
    if index is not None:
        if 0 <= position < size:
            return arr.isel({ARRAY_DIM: position}, drop=True)
        if return_nodata:
            return _nodata_like(arr)
        raise ProcessArgumentError(f"index {index} is out of range (array of {size})", parameter="index")
    labels = _labels(arr)
    found = _label_position(labels, label)
    if found is not None:
        return arr.isel({ARRAY_DIM: found}, drop=True)
    if return_nodata:
        return _nodata_like(arr)
    raise ProcessArgumentError(
        f"label {label!r} is not in the array (labels: {list(labels)})", parameter="label"
    )


def _labels(arr: xr.DataArray) -> np.ndarray:
    if ARRAY_DIM not in arr.coords:
        raise ProcessArgumentError("the array has no labels; use 'index'", parameter="label")
    return np.asarray(arr.coords[ARRAY_DIM].values)


def _label_position(labels: np.ndarray, label: Any) -> int | None:
    if labels.dtype.kind == "M":
        try:
            wanted: Any = to_datetime64(label)
        except ProcessArgumentError:
            return None
    else:
        wanted = label
    hits = np.nonzero(labels == wanted)[0]
    return int(hits[0]) if hits.size else None


@PROCESSES.register("array_labels")
def array_labels(args: Args, ctx: EvalContext) -> Any:
    """openEO `array_labels` of a labelled array (a DataArray along ARRAY_DIM)."""
    arr = _array(args["data"])
    if not isinstance(arr, xr.DataArray):
        raise ProcessArgumentError("the array has no labels", parameter="data")
    return [to_py(v) for v in _labels(arr)]


@PROCESSES.register("array_apply")
def array_apply(args: Args, ctx: EvalContext) -> Any:
    """openEO `array_apply`: the callback gets `x`, `index`, `label` and `context`.

    On a DataArray the callback is called once with the whole array and 1-D `index` and
    `label` arrays along ARRAY_DIM; its result is broadcast to the input's shape.
    """
    process, context = args["process"], args.get("context")
    if not isinstance(process, Callback):
        raise ProcessArgumentError("argument 'process' must be a process", parameter="process")
    data = args["data"]
    if isinstance(data, list | tuple) and not any(is_array(v) for v in data):
        return [process(x=v, index=i, label=None, context=context) for i, v in enumerate(data)]
    arr = _array(data)
    if isinstance(arr, np.ndarray):
        return np.asarray(
            [process(x=to_py(v), index=i, label=None, context=context) for i, v in enumerate(arr)]
        )
    size = arr.sizes[ARRAY_DIM]
    index = xr.DataArray(np.arange(size), dims=ARRAY_DIM)
    label = xr.DataArray(arr.coords[ARRAY_DIM].values, dims=ARRAY_DIM) if ARRAY_DIM in arr.coords else None
    result = process(x=arr, index=index, label=label, context=context)
    return _like(result, arr)


def _like(result: Any, arr: xr.DataArray) -> xr.DataArray:
    """`result` broadcast to the dimensions of `arr`, with its coordinates."""
    if not isinstance(result, xr.DataArray):
        if is_array(result):
            raise ProcessArgumentError("the process returned an array without dimension names")
        return xr.full_like(arr, null_to_nan(result), dtype=np.result_type(np.asarray(null_to_nan(result))))
    if ARRAY_DIM in result.coords and ARRAY_DIM in arr.coords:
        result = result.drop_vars(ARRAY_DIM)
    out = result.broadcast_like(arr)
    out = out.transpose(*arr.dims, ...)
    return out.assign_coords({k: v for k, v in arr.coords.items() if k in out.dims or not v.dims})


@PROCESSES.register("array_create")
def array_create(args: Args, ctx: EvalContext) -> Any:
    """openEO `array_create`; items that are DataArrays are stacked along ARRAY_DIM."""
    data = args.get("data")
    data = [] if data is None else data
    repeat = args.get("repeat", 1)
    if isinstance(data, xr.DataArray) and ARRAY_DIM in data.dims and repeat == 1:
        return data  # already an array per pixel (e.g. a colour chosen by `if`)
    if not isinstance(data, list | tuple):
        raise ProcessArgumentError("argument 'data' must be an array", parameter="data")
    if not isinstance(repeat, int) or repeat < 1:
        raise ProcessArgumentError("argument 'repeat' must be a positive integer", parameter="repeat")
    # Items may be child processes (the client writes `[data == 10, data == 20, ...]` so): they
    # are evaluated in the scope they were written in, as the other items are.
    items = [v() if isinstance(v, Callback) else v for v in data] * repeat
    return _stack(items) if any(is_array(v) for v in items) else items


@PROCESSES.register("array_concat")
def array_concat(args: Args, ctx: EvalContext) -> Any:
    """openEO `array_concat`."""
    a, b = args["array1"], args["array2"]
    if isinstance(a, list | tuple) and isinstance(b, list | tuple) and not any(is_array(v) for v in [*a, *b]):
        return [*a, *b]
    arrays = []
    for name, value in (("array1", a), ("array2", b)):
        arr = _array(value, name)
        arrays.append(arr if isinstance(arr, xr.DataArray) else xr.DataArray(arr, dims=ARRAY_DIM))
    if sum(ARRAY_DIM in x.coords for x in arrays) == 1:
        arrays = [x.drop_vars(ARRAY_DIM) if ARRAY_DIM in x.coords else x for x in arrays]
    return xr.concat(arrays, dim=ARRAY_DIM, coords="minimal", compat="override", join="outer")


@PROCESSES.register("array_contains")
def array_contains(args: Args, ctx: EvalContext) -> Any:
    """openEO `array_contains` (numbers, strings; null is never contained)."""
    value = args.get("value")
    if value is None:
        return False
    arr = _array(args["data"])
    if isinstance(arr, xr.DataArray):
        return (arr == value).any(dim=ARRAY_DIM)
    return bool(any(v == value for v in arr.tolist()))


@PROCESSES.register("array_find")
def array_find(args: Args, ctx: EvalContext) -> Any:
    """openEO `array_find`: index of the first (or last, `reverse`) element equal to `value`."""
    value, reverse = args.get("value"), bool(args.get("reverse", False))
    arr = _array(args["data"])
    if value is None:
        return None if isinstance(arr, np.ndarray) else _nodata_like(arr)

    def find(a: np.ndarray) -> np.ndarray:
        hits = a == value
        if reverse:
            hits = hits[..., ::-1]
        idx = np.argmax(hits, axis=-1).astype(float)
        if reverse:
            idx = a.shape[-1] - 1 - idx
        return np.where(hits.any(axis=-1), idx, np.nan)

    result = _reduce(arr, find)
    if isinstance(result, float):
        return None if math.isnan(result) else int(result)
    return result


# -- quantiles, interpolation and text ------------------------------------------------------------------


def _probabilities(args: Args) -> list[float]:
    """The probabilities of ``quantiles``: a list, or ``q`` equal intervals (``probabilities`` as an
    integer, or the deprecated ``q``)."""
    probabilities, q = args.get("probabilities"), args.get("q")
    if probabilities is not None and q is not None:
        raise ProcessArgumentError("give only one of 'probabilities' and 'q' (QuantilesParameterConflict)",
                                   parameter="q")
    if probabilities is None and q is None:
        raise ProcessArgumentError("give 'probabilities' or 'q' (QuantilesParameterMissing)",
                                   parameter="probabilities", required=True)
    intervals = probabilities if q is None else q
    if isinstance(intervals, int | np.integer) and not isinstance(intervals, bool):
        if intervals < 2:
            raise ProcessArgumentError("the number of intervals must be at least 2",
                                       parameter="probabilities")
        return [i / int(intervals) for i in range(1, int(intervals))]
    if not isinstance(intervals, list | tuple) or not all(
        isinstance(p, int | float) and not isinstance(p, bool) for p in intervals
    ):
        raise ProcessArgumentError("'probabilities' must be a list of numbers or an integer",
                                   parameter="probabilities")
    values = [float(p) for p in intervals]
    if any(p < 0 or p > 1 for p in values):
        raise ProcessArgumentError("probabilities must be between 0 and 1", parameter="probabilities")
    if any(b < a for a, b in itertools.pairwise(values)):
        raise ProcessArgumentError("probabilities must be sorted ascending (AscendingProbabilitiesRequired)",
                                   parameter="probabilities")
    return values


def np_quantiles(a: np.ndarray, probabilities: list[float], ignore_nodata: bool = True) -> np.ndarray:
    """Quantiles along the last axis, the new axis last: sample quantiles of type 7 (linear
    interpolation between order statistics, R's and numpy's default, as openEO specifies). NaN
    where no value is valid, or (without `ignore_nodata`) where any value is nodata."""
    a = np.asarray(a, dtype=np.float64)
    out = np.full((*a.shape[:-1], len(probabilities)), np.nan)
    if a.shape[-1] == 0 or not probabilities:
        return out
    valid = ~np.isnan(a)
    usable = valid.any(axis=-1) if ignore_nodata else valid.all(axis=-1)
    if usable.any():
        rows = a[usable]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            found = np.nanquantile(rows, probabilities, axis=-1, method="linear")
        out[usable] = np.moveaxis(found, 0, -1)
    return out


@PROCESSES.register("quantiles")
def quantiles(args: Args, ctx: EvalContext) -> Any:
    """openEO `quantiles`: an array with one value per probability (NaN for no valid value)."""
    probabilities = _probabilities(args)
    arr = _array(args["data"])
    ignore = _ignore(args)
    if isinstance(arr, xr.DataArray):
        if arr.dtype == object:
            raise ProcessArgumentError("quantiles need numbers", parameter="data")
        return xr.apply_ufunc(
            np_quantiles, arr, input_core_dims=[[ARRAY_DIM]], output_core_dims=[[ARRAY_DIM]],
            exclude_dims={ARRAY_DIM}, kwargs={"probabilities": probabilities, "ignore_nodata": ignore},
        )
    if arr.dtype == object:
        raise ProcessArgumentError("quantiles need numbers", parameter="data")
    found = np_quantiles(arr, probabilities, ignore)
    return [None if math.isnan(v) else float(v) for v in found.tolist()]


def _positions(arr: xr.DataArray) -> np.ndarray:
    """Where the elements of a labelled array lie: their labels when these are dates or numbers,
    else their indices."""
    if ARRAY_DIM in arr.coords:
        labels = np.asarray(arr.coords[ARRAY_DIM].values)
        if labels.dtype.kind == "M":
            return labels.astype("datetime64[ns]").astype(np.int64).astype(np.float64)
        if labels.dtype.kind in "iuf":
            return labels.astype(np.float64)
    return np.arange(arr.sizes[ARRAY_DIM], dtype=np.float64)


def np_interpolate_linear(a: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """Interior NaNs along the last axis replaced by linear interpolation between the nearest
    valid neighbours at `positions`; leading and trailing NaNs stay (and so does an array with
    fewer than two valid values, which has no interior gap)."""
    a = np.asarray(a, dtype=np.float64)
    n = a.shape[-1]
    if n == 0:
        return a.copy()
    valid = ~np.isnan(a)
    index = np.arange(n)
    before = np.maximum.accumulate(np.where(valid, index, -1), axis=-1)
    after = np.minimum.accumulate(np.where(valid, index, n)[..., ::-1], axis=-1)[..., ::-1]
    gap = ~valid & (before >= 0) & (after < n)
    lo, hi = np.clip(before, 0, n - 1), np.clip(after, 0, n - 1)
    v_lo, v_hi = np.take_along_axis(a, lo, axis=-1), np.take_along_axis(a, hi, axis=-1)
    p_lo, p_hi = positions[lo], positions[hi]
    with np.errstate(invalid="ignore", divide="ignore"):
        filled = v_lo + (v_hi - v_lo) * (positions - p_lo) / (p_hi - p_lo)
    return np.where(gap, filled, a)


@PROCESSES.register("array_interpolate_linear")
def array_interpolate_linear(args: Args, ctx: EvalContext) -> Any:
    """openEO `array_interpolate_linear`: no-data values between two valid values are interpolated
    linearly, by label for dates and numbers (a temporal gap of irregular scenes is weighted by
    time), else by index; leading and trailing no-data values stay."""
    data = args["data"]
    arr = _array(data)
    if isinstance(arr, xr.DataArray):
        positions = _positions(arr)
        out = xr.apply_ufunc(np_interpolate_linear, arr, kwargs={"positions": positions},
                             input_core_dims=[[ARRAY_DIM]], output_core_dims=[[ARRAY_DIM]], keep_attrs=True)
        return out.transpose(*arr.dims)
    if arr.dtype == object:
        raise ProcessArgumentError("array_interpolate_linear needs numbers", parameter="data")
    found = np_interpolate_linear(arr, np.arange(arr.shape[0], dtype=np.float64))
    return [None if math.isnan(v) else to_py(v) for v in found.tolist()]


def _text(value: Any) -> str:
    """A value as text for ``text_concat``: booleans and null in lower case, integral numbers
    without a fraction (JSON does not tell 1 from 1.0)."""
    value = to_py(value)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, int | float | str):
        return str(value)
    raise ProcessArgumentError(f"text_concat cannot convert {type(value).__name__} to text", parameter="data")


@PROCESSES.register("text_concat")
def text_concat(args: Args, ctx: EvalContext) -> str:
    """openEO `text_concat`: the elements as text, joined by ``separator`` (default empty)."""
    data = args["data"]
    if not isinstance(data, list | tuple):
        raise ProcessArgumentError("argument 'data' must be an array of texts, numbers, booleans or nulls",
                                   parameter="data")
    separator = args.get("separator", "")
    return _text(separator).join(_text(v) for v in data)
