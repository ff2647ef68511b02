"""Date processes on ISO 8601 strings, datetime64 values and arrays of them.

Strings in give strings out (a date stays a date where the result is midnight); datetime64
values, numpy arrays and DataArrays (``array_apply``'s labels) give datetime64 values.

Deviation, deliberately: ``date_difference`` in months or years uses their average lengths
(30.436875 and 365.2425 days).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from openeo_upscale.backend.engine._common import to_datetime64, to_py
from openeo_upscale.backend.engine.context import Args, EvalContext, ProcessArgumentError
from openeo_upscale.backend.engine.registry import PROCESSES

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
            converted = np.vectorize(to_datetime64, otypes=["datetime64[ns]"])(np.asarray(value))
            return value.copy(data=converted) if isinstance(value, xr.DataArray) else converted
        raise ProcessArgumentError(f"argument '{name}' must hold dates", parameter=name)
    try:
        return to_datetime64(value)
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
    return to_py(diff)


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
