"""The project's exception tree. Every error the package raises derives from `UpscaleError`."""

from __future__ import annotations


class UpscaleError(Exception):
    """Root of every error raised by openeo-upscale."""


class ConfigError(UpscaleError):
    """A configuration file or value is invalid; the message names the key and the rule."""


class GridError(UpscaleError):
    """An area of interest or tiling option is unusable; the message names the problem."""


class StoreError(UpscaleError):
    """The task store refused an operation or could not be used; the message says why."""
