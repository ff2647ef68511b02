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


class ParameterError(UpscaleError):
    """A task's UDP parameters break the UDP's schema; the message names the task, parameter and rule.

    `task_id`, `parameter` and `rule` are set for a single problem; a campaign-wide refusal lists
    every problem found (up to a limit) in `problems`.
    """

    def __init__(self, message: str, *, task_id: str | None = None, parameter: str | None = None,
                 rule: str | None = None, problems: tuple[ParameterError, ...] = ()) -> None:
        super().__init__(message)
        self.task_id = task_id
        self.parameter = parameter
        self.rule = rule
        self.problems = problems


class DownloadError(UpscaleError):
    """A result asset could not be downloaded or verified, or its name is unsafe.

    `href` (the asset's link) and `asset` (its name) are set where known, and are in the message.
    """

    def __init__(self, message: str, *, href: str | None = None, asset: str | None = None) -> None:
        super().__init__(message)
        self.href = href
        self.asset = asset
