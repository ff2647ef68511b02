"""The local openEO backend: a real openEO API server on 127.0.0.1 for tests, demos and
trying a UDP offline. It shares nothing with the campaign code but the openEO API."""

from openeo_upscale.backend.api import API_PREFIX, create_app
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
from openeo_upscale.backend.jobs import JobStatus
from openeo_upscale.backend.server import BackendStartError, LocalBackend, serve

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
