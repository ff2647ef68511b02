"""Math, comparison and logic processes on scalars, numpy arrays and DataArrays.

Elementwise processes broadcast scalars, numpy arrays and ``xarray.DataArray`` (by dimension
name). openEO's null is ``None`` for scalars and NaN inside arrays (NaN is the engine's
nodata); a scalar null gives null.

Deviations, deliberately: comparisons on arrays give False (not null) where an operand is NaN;
logic on float arrays is three-valued (NaN is null) and gives floats, on booleans booleans.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from typing import Any

import numpy as np
import xarray as xr

from openeo_upscale.backend.engine._common import is_array, nan_mask, null_to_nan, to_py, truthy
from openeo_upscale.backend.engine.context import ARRAY_DIM, Args, EvalContext, ProcessArgumentError
from openeo_upscale.backend.engine.registry import PROCESSES

_NUMERIC = (bool, int, float, np.number, np.bool_, np.ndarray, xr.DataArray)

# -- helpers ------------------------------------------------------------------------------------


def _number(args: Args, name: str, default: Any = ...) -> Any:
    value = args[name] if default is ... else args.get(name, default)
    if value is None or isinstance(value, _NUMERIC):
        return value
    raise ProcessArgumentError(
        f"argument '{name}' must be a number or an array of numbers, not {type(value).__name__}",
        parameter=name,
    )


def _elementwise(func: Callable[..., Any], *values: Any) -> Any:
    """Apply a numpy function; null scalars give null, null in arrays is NaN."""
    if not any(is_array(v) for v in values) and any(v is None for v in values):
        return None
    with np.errstate(all="ignore"):
        return to_py(func(*(null_to_nan(v) for v in values)))


# -- math --------------------------------------------------------------------------------------------


def _register_elementwise(process_id: str, params: tuple[str, ...], func: Callable[..., Any]) -> None:
    def impl(args: Args, ctx: EvalContext) -> Any:
        return _elementwise(func, *(_number(args, p) for p in params))

    impl.__doc__ = f"openEO `{process_id}`, elementwise."
    PROCESSES.add(process_id, impl)


def _divide(x: Any, y: Any) -> Any:
    if not (is_array(x) or is_array(y)):
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
    "power": (("base", "p"), lambda b, p: np.power(np.float64(b) if not is_array(b) else b, p)),
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


@PROCESSES.register("pi")
def pi(args: Args, ctx: EvalContext) -> float:
    """openEO `pi`: the ratio of a circle's circumference to its diameter."""
    return math.pi


@PROCESSES.register("e")
def e(args: Args, ctx: EvalContext) -> float:
    """openEO `e`: Euler's number, the base of the natural logarithm."""
    return math.e


# -- comparison and logic -------------------------------------------------------------------------


def _compare(op: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    def compare(x: Any, y: Any) -> Any:
        if not (is_array(x) or is_array(y)):
            if x is None or y is None:
                return None
            if isinstance(x, str) or isinstance(y, str):
                return False
            return bool(op(x, y))
        with np.errstate(invalid="ignore"):
            return op(null_to_nan(x), null_to_nan(y))

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
    if not (is_array(x) or is_array(y)):
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
        x, y = null_to_nan(x), null_to_nan(y)
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
    if not is_array(x):
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
    if not (is_array(x) or is_array(y)):
        a, b = _logic_scalar(x, "x"), _logic_scalar(y, "y")
        if kind == "and":
            return False if a is False or b is False else (None if a is None or b is None else True)
        if kind == "or":
            return True if a is True or b is True else (None if a is None or b is None else False)
        return None if a is None or b is None else a != b
    x, y = null_to_nan(x), null_to_nan(y)
    if all(
        np.asarray(v).dtype.kind in "biu" if not isinstance(v, xr.DataArray) else v.dtype.kind in "biu"
        for v in (x, y)
    ):
        ops = {"and": np.logical_and, "or": np.logical_or, "xor": np.logical_xor}
        return ops[kind](x, y)
    xn, yn = nan_mask(x), nan_mask(y)
    xt, yt = truthy(x), truthy(y)
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
    if not is_array(x):
        value = _logic_scalar(x, "x")
        return None if value is None else not value
    if x.dtype == bool:
        return ~x
    where = xr.where if isinstance(x, xr.DataArray) else np.where
    return where(nan_mask(x), np.nan, where(truthy(x), 0.0, 1.0))


@PROCESSES.register("if")
def if_(args: Args, ctx: EvalContext) -> Any:
    """openEO `if`: `accept` where `value` is true, else `reject` (null when not given)."""
    value, accept, reject = args["value"], args.get("accept"), args.get("reject")
    if not is_array(value):
        return accept if truthy(null_to_nan(value)) else reject
    # Per-pixel conditions choosing between arrays (a colour ramp: `accept` = [r, g, b]) give
    # each pixel an array: a list becomes a DataArray along ARRAY_DIM, and broadcasting does the rest.
    accept, reject = _as_item_array(accept), _as_item_array(reject)
    where = xr.where if _any_da(value, accept, reject) else np.where
    return where(truthy(value), null_to_nan(accept), null_to_nan(reject))


def _as_item_array(x: Any) -> Any:
    if isinstance(x, list | tuple):
        items = [np.nan if v is None else v for v in x]
        return xr.DataArray(np.asarray(items, dtype=np.float64), dims=ARRAY_DIM)
    return x


@PROCESSES.register("is_nan")
def is_nan(args: Args, ctx: EvalContext) -> Any:
    """openEO `is_nan`: true for NaN and for anything that is not a number."""
    x = args["x"]
    if is_array(x):
        return nan_mask(x)
    if isinstance(x, bool | np.bool_) or not isinstance(x, int | float | np.number):
        return True
    return bool(math.isnan(x))


@PROCESSES.register("is_nodata")
def is_nodata(args: Args, ctx: EvalContext) -> Any:
    """openEO `is_nodata`: null, and NaN inside arrays (the engine's nodata)."""
    x = args["x"]
    return nan_mask(x) if is_array(x) else x is None


@PROCESSES.register("is_valid")
def is_valid(args: Args, ctx: EvalContext) -> Any:
    """openEO `is_valid`: not null, not NaN, not infinite."""
    x = args["x"]
    if is_array(x):
        if x.dtype.kind == "f":
            return np.isfinite(x)
        return ~nan_mask(x)
    if x is None:
        return False
    return not (isinstance(x, float | np.floating) and not math.isfinite(x))
