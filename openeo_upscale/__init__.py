"""openeo-upscale: run one parametrized openEO process over a large area."""

from typing import TYPE_CHECKING, Any

from openeo_upscale.errors import ConfigError, GridError, UpscaleError

if TYPE_CHECKING:
    from openeo_upscale.backend import LocalBackend
    from openeo_upscale.campaign import Campaign, Udp
    from openeo_upscale.grid import tiles
    from openeo_upscale.monitor import live_map, plot_map

__version__ = "0.2.0"

__all__ = ["Campaign", "ConfigError", "GridError", "LocalBackend", "Udp", "UpscaleError", "__version__",
           "live_map", "plot_map", "tiles"]

_LAZY = {
    "Campaign": "openeo_upscale.campaign",
    "Udp": "openeo_upscale.campaign",
    "LocalBackend": "openeo_upscale.backend",
    "tiles": "openeo_upscale.grid",
    "live_map": "openeo_upscale.monitor",
    "plot_map": "openeo_upscale.monitor",
}
"""What a notebook needs, importable from the package itself (`from openeo_upscale import ...`)."""


def __getattr__(name: str) -> Any:
    # Imported on first use: the local backend (and its job processes) import this package for
    # its version and must not pull in the campaign engine with it.
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'openeo_upscale' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
