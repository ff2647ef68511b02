"""The local openEO backend: a real openEO API server on 127.0.0.1 for tests, demos and
trying a UDP offline. It shares nothing with the campaign code but the openEO API."""

import importlib
from typing import TYPE_CHECKING, Any

from openeo_upscale.backend.config import (
    BackendConfig,
    Faults,
    JobFailureRule,
    LimitPolicy,
    Mode,
    RateLimit,
    ResultsLayout,
    Simulation,
    User,
    load_config,
)

if TYPE_CHECKING:
    from openeo_upscale.backend.api import API_PREFIX, create_app
    from openeo_upscale.backend.jobs import JobStatus
    from openeo_upscale.backend.server import BackendStartError, LocalBackend, serve

_LAZY = {"API_PREFIX": "api", "create_app": "api", "JobStatus": "jobs", "BackendStartError": "server",
         "LocalBackend": "server", "serve": "server"}
"""Names imported on first use, by the module that has them: a real job's worker process imports
this package on its way to the engine and must not pull in the web server with it (FastAPI and
SQLAlchemy are most of a second of every job's start)."""

__all__ = [
    "API_PREFIX",
    "BackendConfig",
    "BackendStartError",
    "Faults",
    "JobFailureRule",
    "JobStatus",
    "LimitPolicy",
    "LocalBackend",
    "Mode",
    "RateLimit",
    "ResultsLayout",
    "Simulation",
    "User",
    "create_app",
    "load_config",
    "serve",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value
