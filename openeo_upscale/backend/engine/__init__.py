"""The process-graph engine of the local backend's real mode, on xarray/numpy/scipy.

- :mod:`.context`: what a process implementation gets (:class:`Args`, :class:`EvalContext`)
  and raises (:class:`ProcessArgumentError`), and :data:`ARRAY_DIM`.
- :mod:`.registry`: the :class:`ProcessRegistry` and the default :data:`PROCESSES`.
- :mod:`.evaluator`: the :class:`Evaluator` (scoping, callbacks, UDP calls, errors); its
  docstring says how cube processes call callbacks.
- :mod:`.arrays`: array processes and reducers.
- :mod:`.maths`: math, comparison and logic processes.
- :mod:`.dates`: date processes.
- :mod:`.udf`: ``run_udf``, Python UDFs on the ``openeo`` client's UDF runtime.
- :mod:`.cubes`: data cube processes (with :mod:`.cubes_spatial`, :mod:`.cubes_load`,
  :mod:`.cubes_stac` and :mod:`.cubes_url`, :mod:`.cubes_merge`, :mod:`.cubes_scl`,
  :mod:`.cubes_temporal`, :mod:`.cubes_polygon` and :mod:`.cubes_sar`).

The process modules share their helpers through the private :mod:`._common` (and the loaders
theirs through :mod:`._extents`); they use the geometry of :mod:`.cubes_spatial`, and
``load_stac`` the file access of :mod:`.cubes_url`, but no other process module.
"""

from __future__ import annotations

import importlib

from openeo_upscale.backend.engine.context import (
    ARRAY_DIM,
    Args,
    EvalContext,
    ProcessArgumentError,
    Scope,
    from_array_dim,
    to_array_dim,
)
from openeo_upscale.backend.engine.evaluator import Callback, Evaluator, ProcessGraphError, UdpLookup
from openeo_upscale.backend.engine.registry import PROCESSES, ProcessImpl, ProcessRegistry

__all__ = [
    "ARRAY_DIM",
    "PROCESSES",
    "Args",
    "Callback",
    "EvalContext",
    "Evaluator",
    "ProcessArgumentError",
    "ProcessGraphError",
    "ProcessImpl",
    "ProcessRegistry",
    "Scope",
    "UdpLookup",
    "default_registry",
    "from_array_dim",
    "implemented",
    "to_array_dim",
]

_PROCESS_MODULES = ("arrays", "maths", "dates", "cubes", "udf")


def default_registry() -> ProcessRegistry:
    """The default registry, with every process module of the engine imported into it."""
    for name in _PROCESS_MODULES:
        importlib.import_module(f"{__name__}.{name}")
    return PROCESSES


def implemented() -> set[str]:
    """The ids of all processes the engine implements."""
    return default_registry().implemented()
