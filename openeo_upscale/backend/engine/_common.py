"""Helpers the process modules share: null and nodata, array tests, Python scalars, dates,
cube arguments and callback results.

openEO's null is ``None`` for scalars and NaN inside arrays (NaN is the engine's nodata; NaT
for dates). This module imports nothing of the engine but :mod:`.context`, so every process
module (:mod:`.arrays`, :mod:`.maths`, :mod:`.dates`, the ``cubes*`` modules) can import it.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from openeo_upscale.backend.engine.context import ARRAY_DIM, ProcessArgumentError

__all__ = [
    "broadcast_result",
    "is_array",
    "nan_mask",
    "null_to_nan",
    "require_cube",
    "to_datetime64",
    "to_py",
    "truthy",
]


def is_array(x: Any) -> bool:
    """A DataArray or a numpy array of at least one dimension."""
    return isinstance(x, xr.DataArray) or (isinstance(x, np.ndarray) and x.ndim > 0)


def to_py(x: Any) -> Any:
    """numpy scalars as Python values, so results serialise as JSON."""
    if isinstance(x, np.ndarray) and x.ndim == 0:
        x = x[()]
    if isinstance(x, np.generic) and not isinstance(x, np.datetime64 | np.timedelta64):
        return x.item()
    return x


def null_to_nan(x: Any) -> Any:
    """A scalar null as NaN; anything else unchanged."""
    return np.nan if x is None else x


def truthy(x: Any) -> Any:
    """A boolean condition; NaN and null are false."""
    if isinstance(x, xr.DataArray | np.ndarray):
        if x.dtype == bool:
            return x
        with np.errstate(invalid="ignore"):
            return (x != 0) & ~nan_mask(x)
    return bool(x) and not (isinstance(x, float) and math.isnan(x))


def nan_mask(x: Any) -> Any:
    """Where `x` is nodata: NaN, NaT, or None/NaN in object arrays (a boolean array)."""
    if isinstance(x, xr.DataArray):
        return xr.apply_ufunc(nan_mask, x)
    a = np.asarray(x)
    if a.dtype.kind in "fc":
        return np.isnan(a)
    if a.dtype.kind == "M":
        return np.isnat(a)
    if a.dtype == object:
        return np.vectorize(lambda v: v is None or (isinstance(v, float) and math.isnan(v)), otypes=[bool])(a)
    return np.zeros(a.shape, dtype=bool)


def to_datetime64(value: Any) -> np.datetime64:
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


def require_cube(value: Any, name: str = "data") -> xr.DataArray:
    """Argument `name` of a cube process, which must be a raster data cube."""
    if not isinstance(value, xr.DataArray):
        raise ProcessArgumentError(
            f"argument '{name}' must be a raster data cube, not {type(value).__name__}", parameter=name
        )
    return value


def broadcast_result(value: Any, like: xr.DataArray) -> xr.DataArray:
    """A callback result as a DataArray broadcast against `like` (a scalar fills it)."""
    if not isinstance(value, xr.DataArray):
        if value is None:
            value = np.nan
        try:
            return xr.full_like(like, value, dtype=np.result_type(value))
        except TypeError as exc:
            raise ProcessArgumentError(f"the callback returned {type(value).__name__}, not a number") from exc
    value = value.drop_vars([ARRAY_DIM], errors="ignore")
    missing = [d for d in like.dims if d not in value.dims]
    if missing:
        value = value.broadcast_like(like)
    return value
