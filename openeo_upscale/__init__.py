"""openeo-upscale: run one parametrized openEO process over a large area."""

from typing import TYPE_CHECKING, Any

from openeo_upscale.errors import ConfigError, GridError, UpscaleError

if TYPE_CHECKING:
    from openeo_upscale.campaign import Campaign

__version__ = "0.2.0"

__all__ = ["Campaign", "ConfigError", "GridError", "UpscaleError", "__version__"]


def __getattr__(name: str) -> Any:
    # Imported on first use: the local backend (and its job processes) import this package for
    # its version and must not pull in the campaign engine with it.
    if name == "Campaign":
        from openeo_upscale.campaign import Campaign

        return Campaign
    raise AttributeError(f"module 'openeo_upscale' has no attribute {name!r}")
