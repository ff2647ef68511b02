"""The process-graph engine of the local backend's real mode, on xarray/numpy/scipy.

- :mod:`.registry`: the :class:`ProcessRegistry` and the default :data:`PROCESSES`.
- :mod:`.evaluator`: the :class:`Evaluator` (scoping, callbacks, UDP calls, errors); its
  docstring says how cube processes call callbacks.
- :mod:`.arrays`: math, comparison, logic, array and date processes.
- :mod:`.cubes`: data cube processes.
"""

from __future__ import annotations

import importlib
import importlib.util

from openeo_upscale.backend.engine.evaluator import (
    ARRAY_DIM,
    Callback,
    EvalContext,
    Evaluator,
    ProcessGraphError,
    Scope,
    UdpLookup,
    from_array_dim,
    to_array_dim,
)
from openeo_upscale.backend.engine.registry import (
    PROCESSES,
    Args,
    ProcessArgumentError,
    ProcessImpl,
    ProcessRegistry,
)

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

_PROCESS_MODULES = ("arrays", "cubes")


def default_registry() -> ProcessRegistry:
    """The default registry, with every process module of the engine imported into it."""
    for name in _PROCESS_MODULES:
        module = f"{__name__}.{name}"
        # cubes.py is written separately; the engine works with array processes alone.
        if importlib.util.find_spec(module) is not None:
            importlib.import_module(module)
    return PROCESSES


def implemented() -> set[str]:
    """The ids of all processes the engine implements."""
    return default_registry().implemented()
