"""Helpers of the engine tests: graph nodes and parameter references, one process evaluated with
literal arguments."""

from __future__ import annotations

from typing import Any

import numpy as np
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
