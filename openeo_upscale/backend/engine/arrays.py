"""Math, comparison, logic, array and date processes on scalars, numpy arrays and DataArrays.

Elementwise processes broadcast scalars, numpy arrays and ``xarray.DataArray`` (by dimension
name). openEO's null is ``None`` for scalars and NaN inside arrays (NaN is the engine's
nodata); a scalar null gives null.

Array processes take (a) a list or 1-D numpy array, or (b) a DataArray with the dimension
:data:`~openeo_upscale.backend.engine.evaluator.ARRAY_DIM` (a 1-D DataArray without it
counts as an array along its only dimension), or (c) a list whose items include DataArrays,
stacked along ``ARRAY_DIM`` (``array_create([eq1, eq2])`` inside ``apply``). Reducers remove
``ARRAY_DIM``; ``array_apply``, ``array_create`` and ``array_concat`` keep it. Reducers
ignore nodata by default; a position with no valid value gives NaN.

Deviations, deliberately: comparisons on arrays give False (not null) where an operand is NaN;
logic on float arrays is three-valued (NaN is null) and gives floats, on booleans booleans;
``date_difference`` in months or years uses their average lengths (30.436875 and 365.2425
days).
"""

from __future__ import annotations

import math
import operator
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from openeo_upscale.backend.engine.evaluator import ARRAY_DIM, Callback, EvalContext
from openeo_upscale.backend.engine.registry import PROCESSES, Args, ProcessArgumentError

_NUMERIC = (bool, int, float, np.number, np.bool_, np.ndarray, xr.DataArray)

# -- helpers ------------------------------------------------------------------------------------


def _is_array(x: Any) -> bool:
    return isinstance(x, xr.DataArray) or (isinstance(x, np.ndarray) and x.ndim > 0)


def _py(x: Any) -> Any:
    """numpy scalars as Python values, so results serialise as JSON."""
    if isinstance(x, np.ndarray) and x.ndim == 0:
        x = x[()]
    if isinstance(x, np.generic) and not isinstance(x, np.datetime64 | np.timedelta64):
        return x.item()
    return x


def _number(args: Args, name: str, default: Any = ...) -> Any:
    value = args[name] if default is ... else args.get(name, default)
    if value is None or isinstance(value, _NUMERIC):
        return value
    raise ProcessArgumentError(
        f"argument '{name}' must be a number or an array of numbers, not {type(value).__name__}",
        parameter=name,
    )


def _nan(x: Any) -> Any:
    return np.nan if x is None else x


def _elementwise(func: Callable[..., Any], *values: Any) -> Any:
    """Apply a numpy function; null scalars give null, null in arrays is NaN."""
    if not any(_is_array(v) for v in values) and any(v is None for v in values):
        return None
    with np.errstate(all="ignore"):
        return _py(func(*(_nan(v) for v in values)))


def _truthy(x: Any) -> Any:
    """A boolean condition; NaN and null are false."""
    if isinstance(x, xr.DataArray | np.ndarray):
        if x.dtype == bool:
            return x
        with np.errstate(invalid="ignore"):
            return (x != 0) & ~_isnan(x)
    return bool(x) and not (isinstance(x, float) and math.isnan(x))


def _isnan(x: Any) -> Any:
    if isinstance(x, xr.DataArray):
        return xr.apply_ufunc(_isnan, x)
    a = np.asarray(x)
    if a.dtype.kind in "fc":
        return np.isnan(a)
    if a.dtype.kind == "M":
        return np.isnat(a)
    if a.dtype == object:
        return np.vectorize(lambda v: v is None or (isinstance(v, float) and math.isnan(v)), otypes=[bool])(a)
    return np.zeros(a.shape, dtype=bool)


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
        if any(_is_array(v) for v in data):
            return _stack(list(data))
        if any(isinstance(v, str) for v in data):
            return np.asarray(list(data), dtype=object)
        return np.asarray([_nan(v) for v in data])
    raise ProcessArgumentError(
        f"argument '{name}' must be an array, not {type(data).__name__}", parameter=name
    )


def _stack(items: list[Any]) -> xr.DataArray:
    arrays = [v if isinstance(v, xr.DataArray) else xr.DataArray(_nan(v)) for v in items]
    if any(isinstance(v, np.ndarray) and v.ndim > 0 for v in items):
        raise ProcessArgumentError("an array mixing numpy arrays and data cubes cannot be stacked")
    return xr.concat(xr.broadcast(*arrays), dim=ARRAY_DIM, coords="minimal", compat="override", join="outer")


def _reduce(data: Any, func: Callable[..., np.ndarray], **kwargs: Any) -> Any:
    """Reduce along ARRAY_DIM (DataArray) or the only axis (1-D) with `func(a, **kwargs)` on axis -1."""
    arr = _array(data)
    if isinstance(arr, xr.DataArray):
        return xr.apply_ufunc(func, arr, input_core_dims=[[ARRAY_DIM]], kwargs=kwargs, keep_attrs=True)
    return _py(func(arr, **kwargs))


def _ignore(args: Args) -> bool:
    value = args.get("ignore_nodata", True)
    if not isinstance(value, bool | np.bool_):
        raise ProcessArgumentError("argument 'ignore_nodata' must be a boolean", parameter="ignore_nodata")
    return bool(value)


def _valid(a: np.ndarray) -> np.ndarray:
    return ~np.asarray(_isnan(a))


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
        flags = ~_isnan(arr) if isinstance(arr, xr.DataArray) else _valid(arr)
    elif isinstance(condition, Callback):
        flags = _truthy(condition(x=arr, context=args.get("context")))
    else:
        raise ProcessArgumentError(
            "argument 'condition' must be a process, true or null", parameter="condition"
        )
    if isinstance(flags, xr.DataArray) and isinstance(arr, xr.DataArray):
        flags = flags.broadcast_like(arr)
        return flags.sum(dim=ARRAY_DIM)
    return _py(np.asarray(flags).sum())


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
    if isinstance(data, list | tuple) and not any(_is_array(v) for v in data):
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
            return _py(arr[position])
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
            wanted: Any = _to_datetime64(label)
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
    return [_py(v) for v in _labels(arr)]


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
    if isinstance(data, list | tuple) and not any(_is_array(v) for v in data):
        return [process(x=v, index=i, label=None, context=context) for i, v in enumerate(data)]
    arr = _array(data)
    if isinstance(arr, np.ndarray):
        return np.asarray(
            [process(x=_py(v), index=i, label=None, context=context) for i, v in enumerate(arr)]
        )
    size = arr.sizes[ARRAY_DIM]
    index = xr.DataArray(np.arange(size), dims=ARRAY_DIM)
    label = xr.DataArray(arr.coords[ARRAY_DIM].values, dims=ARRAY_DIM) if ARRAY_DIM in arr.coords else None
    result = process(x=arr, index=index, label=label, context=context)
    return _like(result, arr)


def _like(result: Any, arr: xr.DataArray) -> xr.DataArray:
    """`result` broadcast to the dimensions of `arr`, with its coordinates."""
    if not isinstance(result, xr.DataArray):
        if _is_array(result):
            raise ProcessArgumentError("the process returned an array without dimension names")
        return xr.full_like(arr, _nan(result), dtype=np.result_type(np.asarray(_nan(result))))
    if ARRAY_DIM in result.coords and ARRAY_DIM in arr.coords:
        result = result.drop_vars(ARRAY_DIM)
    out = result.broadcast_like(arr)
    out = out.transpose(*arr.dims, ...)
    return out.assign_coords({k: v for k, v in arr.coords.items() if k in out.dims or not v.dims})


@PROCESSES.register("array_create")
def array_create(args: Args, ctx: EvalContext) -> Any:
    """openEO `array_create`; items that are DataArrays are stacked along ARRAY_DIM."""
    data = args.get("data") or []
    repeat = args.get("repeat", 1)
    if not isinstance(data, list | tuple):
        raise ProcessArgumentError("argument 'data' must be an array", parameter="data")
    if not isinstance(repeat, int) or repeat < 1:
        raise ProcessArgumentError("argument 'repeat' must be a positive integer", parameter="repeat")
    items = list(data) * repeat
    return _stack(items) if any(_is_array(v) for v in items) else items


@PROCESSES.register("array_concat")
def array_concat(args: Args, ctx: EvalContext) -> Any:
    """openEO `array_concat`."""
    a, b = args["array1"], args["array2"]
    if (
        isinstance(a, list | tuple)
        and isinstance(b, list | tuple)
        and not any(_is_array(v) for v in [*a, *b])
    ):
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


# -- math --------------------------------------------------------------------------------------------


def _register_elementwise(process_id: str, params: tuple[str, ...], func: Callable[..., Any]) -> None:
    def impl(args: Args, ctx: EvalContext) -> Any:
        return _elementwise(func, *(_number(args, p) for p in params))

    impl.__doc__ = f"openEO `{process_id}`, elementwise."
    PROCESSES.add(process_id, impl)


def _divide(x: Any, y: Any) -> Any:
    if not (_is_array(x) or _is_array(y)):
        return np.float64(x) / np.float64(y)
    return x / y


def _int(x: Any) -> Any:
    if isinstance(x, xr.DataArray | np.ndarray):
        return np.trunc(x)
    return int(x) if math.isfinite(x) else x


_ELEMENTWISE: dict[str, tuple[tuple[str, ...], Callable[..., Any]]] = {
    "add": (("x", "y"), operator.add),
    "subtract": (("x", "y"), operator.sub),
    "multiply": (("x", "y"), operator.mul),
    "divide": (("x", "y"), _divide),
    "power": (("base", "p"), lambda b, p: np.power(np.float64(b) if not _is_array(b) else b, p)),
    "mod": (("x", "y"), np.mod),
    "absolute": (("x",), np.abs),
    "sgn": (("x",), np.sign),
    "sqrt": (("x",), np.sqrt),
    "exp": (("p",), np.exp),
    "ln": (("x",), np.log),
    "log": (("x", "base"), lambda x, base: np.log(x) / np.log(base)),
    "floor": (("x",), np.floor),
    "ceil": (("x",), np.ceil),
    "int": (("x",), _int),
    "sin": (("x",), np.sin),
    "cos": (("x",), np.cos),
    "tan": (("x",), np.tan),
    "arcsin": (("x",), np.arcsin),
    "arccos": (("x",), np.arccos),
    "arctan": (("x",), np.arctan),
    "arctan2": (("y", "x"), np.arctan2),
    "sinh": (("x",), np.sinh),
    "cosh": (("x",), np.cosh),
    "tanh": (("x",), np.tanh),
    "normalized_difference": (("x", "y"), lambda x, y: _divide(x - y, x + y)),
    "clip": (("x", "min", "max"), lambda x, lo, hi: np.minimum(np.maximum(x, lo), hi)),
    "is_infinite": (("x",), np.isinf),
}

for _pid, (_params, _fn) in _ELEMENTWISE.items():
    _register_elementwise(_pid, _params, _fn)


@PROCESSES.register("round")
def round_(args: Args, ctx: EvalContext) -> Any:
    """openEO `round` to `p` decimals, half to even."""
    p = args.get("p", 0)
    if not isinstance(p, int):
        raise ProcessArgumentError("argument 'p' must be an integer", parameter="p")
    return _elementwise(lambda x: np.round(x, p), _number(args, "x"))


@PROCESSES.register("linear_scale_range")
def linear_scale_range(args: Args, ctx: EvalContext) -> Any:
    """openEO `linear_scale_range`: clip `x` to the input range, then map it linearly."""
    x = _number(args, "x")
    lo, hi = _number(args, "inputMin"), _number(args, "inputMax")
    out_lo, out_hi = _number(args, "outputMin", 0), _number(args, "outputMax", 1)

    def scale(x: Any) -> Any:
        clipped = np.minimum(np.maximum(x, lo), hi)
        return (clipped - lo) / (hi - lo) * (out_hi - out_lo) + out_lo

    return _elementwise(scale, x)


@PROCESSES.register("constant")
def constant(args: Args, ctx: EvalContext) -> Any:
    """openEO `constant`."""
    return args["x"]


# -- comparison and logic -------------------------------------------------------------------------


def _compare(op: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    def compare(x: Any, y: Any) -> Any:
        if not (_is_array(x) or _is_array(y)):
            if x is None or y is None:
                return None
            if isinstance(x, str) or isinstance(y, str):
                return False
            return bool(op(x, y))
        with np.errstate(invalid="ignore"):
            return op(_nan(x), _nan(y))

    return compare


def _register_comparison(process_id: str, op: Callable[[Any, Any], Any]) -> None:
    compare = _compare(op)

    def impl(args: Args, ctx: EvalContext) -> Any:
        x, y = args["x"], args["y"]
        if op in (operator.eq, operator.ne):
            return _equality(x, y, args, negate=op is operator.ne)
        for name, value in (("x", x), ("y", y)):
            if isinstance(value, list | dict):
                raise ProcessArgumentError(f"argument '{name}' cannot be compared", parameter=name)
        return compare(x, y)

    impl.__doc__ = f"openEO `{process_id}`."
    PROCESSES.add(process_id, impl)


def _equality(x: Any, y: Any, args: Args, negate: bool) -> Any:
    delta, case_sensitive = args.get("delta"), args.get("case_sensitive", True)
    if not (_is_array(x) or _is_array(y)):
        if x is None or y is None:
            return None
        if isinstance(x, str) and isinstance(y, str):
            same = x == y if case_sensitive else x.lower() == y.lower()
        elif isinstance(x, str) != isinstance(y, str):
            same = False
        elif delta is not None:
            same = abs(x - y) <= delta
        else:
            same = x == y
        return bool(same) != negate
    with np.errstate(invalid="ignore"):
        x, y = _nan(x), _nan(y)
        same = abs(x - y) <= delta if delta is not None else x == y
    return ~same if negate else same


for _pid, _op in {
    "eq": operator.eq,
    "neq": operator.ne,
    "lt": operator.lt,
    "lte": operator.le,
    "gt": operator.gt,
    "gte": operator.ge,
}.items():
    _register_comparison(_pid, _op)


@PROCESSES.register("between")
def between(args: Args, ctx: EvalContext) -> Any:
    """openEO `between` (numbers), inclusive unless `exclude_max`."""
    x, lo, hi = _number(args, "x"), _number(args, "min"), _number(args, "max")
    upper = operator.lt if args.get("exclude_max", False) else operator.le
    if not _is_array(x):
        return None if x is None else bool(lo <= x and upper(x, hi))
    with np.errstate(invalid="ignore"):
        return (x >= lo) & upper(x, hi)


def _logic_scalar(x: Any, name: str) -> bool | None:
    if x is None or isinstance(x, bool | np.bool_):
        return None if x is None else bool(x)
    if isinstance(x, int | float | np.number):
        return None if isinstance(x, float) and math.isnan(x) else bool(x)
    raise ProcessArgumentError(f"argument '{name}' must be a boolean", parameter=name)


def _logic(x: Any, y: Any, kind: str) -> Any:
    if not (_is_array(x) or _is_array(y)):
        a, b = _logic_scalar(x, "x"), _logic_scalar(y, "y")
        if kind == "and":
            return False if a is False or b is False else (None if a is None or b is None else True)
        if kind == "or":
            return True if a is True or b is True else (None if a is None or b is None else False)
        return None if a is None or b is None else a != b
    x, y = _nan(x), _nan(y)
    if all(
        np.asarray(v).dtype.kind in "biu" if not isinstance(v, xr.DataArray) else v.dtype.kind in "biu"
        for v in (x, y)
    ):
        ops = {"and": np.logical_and, "or": np.logical_or, "xor": np.logical_xor}
        return ops[kind](x, y)
    xn, yn = _isnan(x), _isnan(y)
    xt, yt = _truthy(x), _truthy(y)
    with np.errstate(invalid="ignore"):
        if kind == "and":
            false = (~xn & ~xt) | (~yn & ~yt)
            decided = xt & yt
            return (
                xr.where(false, 0.0, xr.where(decided, 1.0, np.nan))
                if _any_da(x, y)
                else np.where(false, 0.0, np.where(decided, 1.0, np.nan))
            )
        if kind == "or":
            true = xt | yt
            decided_false = ~xn & ~yn
            where = xr.where if _any_da(x, y) else np.where
            return where(true, 1.0, where(decided_false, 0.0, np.nan))
        where = xr.where if _any_da(x, y) else np.where
        return where(xn | yn, np.nan, where(xt != yt, 1.0, 0.0))


def _any_da(*values: Any) -> bool:
    return any(isinstance(v, xr.DataArray) for v in values)


for _kind in ("and", "or", "xor"):

    def _make(kind: str) -> Callable[[Args, EvalContext], Any]:
        def impl(args: Args, ctx: EvalContext) -> Any:
            return _logic(args["x"], args["y"], kind)

        impl.__doc__ = f"openEO `{kind}`, three-valued."
        return impl

    PROCESSES.add(_kind, _make(_kind))


@PROCESSES.register("not")
def not_(args: Args, ctx: EvalContext) -> Any:
    """openEO `not`."""
    x = args["x"]
    if not _is_array(x):
        value = _logic_scalar(x, "x")
        return None if value is None else not value
    if x.dtype == bool:
        return ~x
    where = xr.where if isinstance(x, xr.DataArray) else np.where
    return where(_isnan(x), np.nan, where(_truthy(x), 0.0, 1.0))


@PROCESSES.register("if")
def if_(args: Args, ctx: EvalContext) -> Any:
    """openEO `if`: `accept` where `value` is true, else `reject` (null when not given)."""
    value, accept, reject = args["value"], args.get("accept"), args.get("reject")
    if not _is_array(value):
        return accept if _truthy(_nan(value)) else reject
    where = xr.where if _any_da(value, accept, reject) else np.where
    return where(_truthy(value), _nan(accept), _nan(reject))


@PROCESSES.register("is_nan")
def is_nan(args: Args, ctx: EvalContext) -> Any:
    """openEO `is_nan`: true for NaN and for anything that is not a number."""
    x = args["x"]
    if _is_array(x):
        return _isnan(x)
    if isinstance(x, bool | np.bool_) or not isinstance(x, int | float | np.number):
        return True
    return bool(math.isnan(x))


@PROCESSES.register("is_nodata")
def is_nodata(args: Args, ctx: EvalContext) -> Any:
    """openEO `is_nodata`: null, and NaN inside arrays (the engine's nodata)."""
    x = args["x"]
    return _isnan(x) if _is_array(x) else x is None


@PROCESSES.register("is_valid")
def is_valid(args: Args, ctx: EvalContext) -> Any:
    """openEO `is_valid`: not null, not NaN, not infinite."""
    x = args["x"]
    if _is_array(x):
        if x.dtype.kind == "f":
            return np.isfinite(x)
        return ~_isnan(x)
    if x is None:
        return False
    return not (isinstance(x, float | np.floating) and not math.isfinite(x))


# -- dates ---------------------------------------------------------------------------------------------

_COMPONENTS = ("year", "month", "day", "hour", "minute", "second")
_DIFFERENCE_UNITS = {
    "millisecond": np.timedelta64(1, "ms"),
    "second": np.timedelta64(1, "s"),
    "minute": np.timedelta64(1, "m"),
    "hour": np.timedelta64(1, "h"),
    "day": np.timedelta64(1, "D"),
    "week": np.timedelta64(7, "D"),
    "month": np.timedelta64(2_629_746, "s"),  # 30.436875 days
    "year": np.timedelta64(31_556_952, "s"),  # 365.2425 days
}


def _to_datetime64(value: Any) -> np.datetime64:
    """An ISO date or date-time string (or datetime64) as a UTC datetime64[ns]."""
    if isinstance(value, np.datetime64):
        return value.astype("datetime64[ns]")
    if not isinstance(value, str):
        raise ProcessArgumentError(f"{value!r} is not a date")
    try:
        ts = pd.Timestamp(value)
    except ValueError as exc:
        raise ProcessArgumentError(f"{value!r} is not an ISO 8601 date or date-time") from exc
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    return ts.to_datetime64().astype("datetime64[ns]")


def _format(value: np.datetime64, date_only: bool) -> str:
    ts = pd.Timestamp(value)
    if date_only and ts == ts.normalize():
        return ts.strftime("%Y-%m-%d")
    text = ts.strftime("%Y-%m-%dT%H:%M:%S")
    if ts.microsecond:
        text += f".{ts.microsecond // 1000:03d}"
    return text + "Z"


def _is_date_only(value: Any) -> bool:
    return isinstance(value, str) and len(value) == 10


def _dates(value: Any, name: str) -> Any:
    """Dates as datetime64[ns] values: scalar, numpy array or DataArray."""
    if isinstance(value, xr.DataArray | np.ndarray):
        if value.dtype.kind == "M":
            return value.astype("datetime64[ns]")
        if value.dtype == object or value.dtype.kind == "U":
            converted = np.vectorize(_to_datetime64, otypes=["datetime64[ns]"])(np.asarray(value))
            return value.copy(data=converted) if isinstance(value, xr.DataArray) else converted
        raise ProcessArgumentError(f"argument '{name}' must hold dates", parameter=name)
    try:
        return _to_datetime64(value)
    except ProcessArgumentError as exc:
        raise ProcessArgumentError(f"argument '{name}': {exc.message}", parameter=name) from exc


def _on_values(value: Any, func: Callable[[np.ndarray], np.ndarray]) -> Any:
    """Apply `func` to the flat datetime64 values of a scalar, array or DataArray."""
    if isinstance(value, xr.DataArray):
        return value.copy(data=func(value.values.ravel()).reshape(value.shape))
    if isinstance(value, np.ndarray):
        return func(value.ravel()).reshape(value.shape)
    return func(np.asarray([value]))[0]


@PROCESSES.register("date_difference")
def date_difference(args: Args, ctx: EvalContext) -> Any:
    """openEO `date_difference`: ``date2 - date1`` in `unit` (default seconds)."""
    unit = args.get("unit", "second")
    if unit not in _DIFFERENCE_UNITS:
        raise ProcessArgumentError(f"unit must be one of {sorted(_DIFFERENCE_UNITS)}", parameter="unit")
    d1, d2 = _dates(args["date1"], "date1"), _dates(args["date2"], "date2")
    diff = (d2 - d1) / _DIFFERENCE_UNITS[unit]
    return _py(diff)


@PROCESSES.register("date_replace_component")
def date_replace_component(args: Args, ctx: EvalContext) -> Any:
    """openEO `date_replace_component`: set the year, month, day, hour, minute or second."""
    component, value = args["component"], args["value"]
    if component not in _COMPONENTS:
        raise ProcessArgumentError(f"component must be one of {list(_COMPONENTS)}", parameter="component")
    if not isinstance(value, int | np.integer) or isinstance(value, bool):
        raise ProcessArgumentError("argument 'value' must be an integer", parameter="value")
    raw = args["date"]
    dates = _dates(raw, "date")

    def replace(values: np.ndarray) -> np.ndarray:
        index = pd.DatetimeIndex(values)
        parts = {c: np.asarray(getattr(index, c), dtype=float) for c in _COMPONENTS}
        parts[component] = np.where(np.isnan(parts[component]), np.nan, value)
        sub_second = np.asarray(index.microsecond * 1000 + index.nanosecond, dtype=float)
        try:
            rebuilt = pd.to_datetime(pd.DataFrame(parts), errors="raise")
        except (ValueError, OverflowError) as exc:
            raise ProcessArgumentError(f"replacing the {component} by {value} gives an invalid date") from exc
        return np.asarray(rebuilt + pd.to_timedelta(sub_second, unit="ns"), dtype="datetime64[ns]")

    result = _on_values(dates, replace)
    if isinstance(raw, str):
        return _format(result, _is_date_only(raw))
    return result


@PROCESSES.register("date_shift")
def date_shift(args: Args, ctx: EvalContext) -> Any:
    """openEO `date_shift` by `value` units; months and years clamp to the end of the month."""
    unit, value = args["unit"], args["value"]
    if not isinstance(value, int | np.integer) or isinstance(value, bool):
        raise ProcessArgumentError("argument 'value' must be an integer", parameter="value")
    offsets = {
        "millisecond": pd.Timedelta(milliseconds=value),
        "second": pd.Timedelta(seconds=value),
        "minute": pd.Timedelta(minutes=value),
        "hour": pd.Timedelta(hours=value),
        "day": pd.Timedelta(days=value),
        "week": pd.Timedelta(weeks=value),
        "month": pd.DateOffset(months=value),
        "year": pd.DateOffset(years=value),
    }
    if unit not in offsets:
        raise ProcessArgumentError(f"unit must be one of {sorted(offsets)}", parameter="unit")
    raw = args["date"]
    dates = _dates(raw, "date")
    offset = offsets[unit]

    def shift(values: np.ndarray) -> np.ndarray:
        return np.asarray(pd.DatetimeIndex(values) + offset, dtype="datetime64[ns]")

    result = _on_values(dates, shift)
    if isinstance(raw, str):
        return _format(result, _is_date_only(raw) and unit in ("day", "week", "month", "year"))
    return result
