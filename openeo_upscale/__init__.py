"""openeo-upscale: run one parametrized openEO process over a large area."""

from openeo_upscale.errors import ConfigError, UpscaleError

__version__ = "0.1.0"

__all__ = ["ConfigError", "UpscaleError", "__version__"]
