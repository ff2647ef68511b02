"""Helpers of the engine tests: one process evaluated with literal arguments."""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr

from openeo_upscale.backend.engine import Evaluator, default_registry


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
