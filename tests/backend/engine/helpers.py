"""Helpers of the engine tests: graph nodes and parameter references, one process evaluated with
literal arguments, and a small random cube on a UTM grid."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from openeo_upscale.backend.engine import Evaluator, default_registry


def node(process_id: str, result: bool = False, **arguments: Any) -> dict[str, Any]:
    """A process graph node calling ``process_id`` with ``arguments`` (the result node with ``result``)."""
    out: dict[str, Any] = {"process_id": process_id, "arguments": arguments}
    if result:
        out["result"] = True
    return out


def p(name: str) -> dict[str, str]:
    """A reference to the parameter ``name``."""
    return {"from_parameter": name}


def run(process_id: str, **arguments: Any) -> Any:
    """Evaluate one process with literal arguments (DataArrays passed as parameters)."""
    params = {}
    args = {}
    for name, value in arguments.items():
        if isinstance(value, np.ndarray | xr.DataArray) or (
            isinstance(value, list) and any(isinstance(v, xr.DataArray) for v in value)
        ):
            params[name] = value
            args[name] = {"from_parameter": name}
        else:
            args[name] = value
    graph = {"n": {"process_id": process_id, "arguments": args, "result": True}}
    return Evaluator(default_registry()).evaluate(graph, params)


EPSG = 32631
X0, Y0 = 600_000.0, 5_700_000.0
"""Upper-left corner of the test grids."""


def make_cube(nt: int = 6, bands: tuple[str, ...] = ("B04", "B08"), ny: int = 8, nx: int = 10,
              res: float = 10.0, seed: int = 0, start: str = "2023-04-20") -> xr.DataArray:
    """A ``(t, bands, y, x)`` cube of random DN (1-9999) every 5 days from `start`, on a UTM grid
    of `res` metres from (`X0`, `Y0`), with the attributes the engine's cubes carry."""
    rng = np.random.default_rng(seed)
    values = rng.integers(1, 10_000, size=(nt, len(bands), ny, nx)).astype(np.float64)
    return xr.DataArray(
        values,
        dims=("t", "bands", "y", "x"),
        coords={
            "t": pd.date_range(start, periods=nt, freq="5D").values,
            "bands": list(bands),
            "y": Y0 - (np.arange(ny) + 0.5) * res,
            "x": X0 + (np.arange(nx) + 0.5) * res,
        },
        attrs={"crs": EPSG, "resolution": res, "nodata": 0},
    )
