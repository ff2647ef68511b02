"""openeo-upscale: run one parametrized openEO process over a large area."""

from openeo_upscale.campaign import Campaign
from openeo_upscale.errors import ConfigError, GridError, UpscaleError

__version__ = "0.1.0"

__all__ = ["Campaign", "ConfigError", "GridError", "UpscaleError", "__version__"]
