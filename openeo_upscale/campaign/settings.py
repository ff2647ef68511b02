"""The engine's knobs: a few frozen value objects, each field with its default and why."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from openeo_upscale.errors import ConfigError


def job_options(value: Any, where: str) -> dict[str, Any]:
    """`value` as backend job options: a JSON object (a mapping, or its JSON text); `ConfigError` else.

    Job options are the backend's own settings of a batch job (``executor-memory``,
    ``python-memory``, ... on backends built on the openeo Python driver), sent as the
    ``job_options`` property of ``POST /jobs``.
    """
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError as exc:
            raise ConfigError(f"{where}: job_options is not JSON: {exc}") from None
    if not isinstance(value, Mapping) or not all(isinstance(key, str) for key in value):
        raise ConfigError(f"{where}: job_options must be an object of named options, "
                          f"not {json.dumps(value, default=str)[:80]}")
    try:
        plain: dict[str, Any] = json.loads(json.dumps(dict(value), allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: job_options must hold JSON values only: {exc}") from None
    return plain


def merged_job_options(*layers: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """Job options from the campaign, the backend and the tile: a later layer's option wins.

    None when no layer sets any, so that ``POST /jobs`` carries none.
    """
    merged: dict[str, Any] = {}
    for layer in layers:
        merged.update(layer or {})
    return merged or None


@dataclass(frozen=True)
class BackendSettings:
    """How much of one backend the campaign may use."""

    name: str
    parallel_jobs: int = 2
    """Jobs started and not yet ended (creating, queued or running) at once."""
    queue_limit: int | None = None
    """Of those, at most this many waiting (created or queued) at once; None: no own limit."""
    weight: float = 1.0
    """Share of new tasks relative to other backends with free slots."""
    job_options: Mapping[str, Any] = field(default_factory=dict)
    """Job options for this backend, over the campaign's (a tile's own still win)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "job_options", job_options(self.job_options, f"backend {self.name}"))
        if not self.name or not self.name.replace("-", "").replace("_", "").isalnum():
            raise ConfigError(f"backend name {self.name!r}: use letters, digits, '-' and '_'")
        if self.parallel_jobs < 1:
            raise ConfigError(
                f"backend {self.name}: parallel_jobs must be at least 1, not {self.parallel_jobs}"
            )
        if self.queue_limit is not None and self.queue_limit < 1:
            raise ConfigError(f"backend {self.name}: queue_limit must be at least 1 or absent")
        if not (self.weight > 0 and math.isfinite(self.weight)):
            raise ConfigError(f"backend {self.name}: weight must be a positive number, not {self.weight}")


MEMORY_STRATEGIES = ("fail", "more_memory", "split")
"""What `RetryPolicy.on_memory_error` may say."""
_MEMORY_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*$", re.IGNORECASE)
_MB_PER = {"k": 1 / 1024, "": 1.0, "m": 1.0, "g": 1024.0, "t": 1024.0**2}


def memory_mb(value: Any) -> float | None:
    """A Spark-style memory size (``"2g"``, ``"2048m"``, or a number of MB) in MB; None otherwise.

    The local backend reads job options with its own copy (`backend.simulate.memory_mb`): it shares
    nothing with the campaign code but the openEO API."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value) if value > 0 else None
    match = _MEMORY_SIZE.match(value) if isinstance(value, str) else None
    return float(match[1]) * _MB_PER[match[2].lower()] if match else None


@dataclass(frozen=True)
class RetryPolicy:
    """What happens after a failure."""

    max_attempts: int = 3
    """Backend jobs per task at most; a job error after the last one fails the task."""
    other_backend: bool = False
    """Run a retried task on another backend than the one whose job failed, when there is one."""
    backoff_base: float = 1.0
    """Seconds before the first retry of a transient error; doubled on each further failure."""
    backoff_max: float = 60.0
    """Longest wait between retries of a transient error (a longer Retry-After still wins)."""
    download_attempts: int = 5
    """Failed downloads (bad size or checksum) before the task fails; a 5xx, 429 or no answer counts 1/10."""
    on_memory_error: str = "fail"
    """A job that ran out of memory: ``"fail"`` retries it as any failed job; ``"more_memory"``
    retries it with `memory_factor` times the executor memory, up to `memory_max` (then fails);
    ``"split"`` replaces the tile by its four quadrants, new tasks that may split again down to
    `split_min_size_m` (below it, the tile is retried as with ``"fail"``)."""
    memory_factor: float = 1.5
    memory_start: str = "2g"
    """The executor memory a job is taken to have had when its job options said nothing."""
    memory_max: str = "16g"
    split_min_size_m: float = 500.0
    """Metres a quadrant must measure on each side for a tile to be split: smaller jobs mostly pay
    the backend's start fee, and their results are mosaicked from ever more files."""

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ConfigError(f"max_attempts must be at least 1, not {self.max_attempts}")
        if self.on_memory_error not in MEMORY_STRATEGIES:
            raise ConfigError(f"on_memory_error must be one of {', '.join(MEMORY_STRATEGIES)}, "
                              f"not {self.on_memory_error!r}")
        if isinstance(self.memory_factor, bool) or not isinstance(self.memory_factor, int | float) \
                or not 1 < self.memory_factor <= 16:
            raise ConfigError(f"memory_factor must be a number above 1 (at most 16), "
                              f"not {self.memory_factor!r}")
        for name in ("memory_start", "memory_max"):
            if not isinstance(getattr(self, name), str) or memory_mb(getattr(self, name)) is None:
                raise ConfigError(f"{name} must be a memory size such as \"2g\" or \"3072m\", "
                                  f"not {getattr(self, name)!r}")
        if isinstance(self.split_min_size_m, bool) or not isinstance(self.split_min_size_m, int | float) \
                or not 0 < self.split_min_size_m < math.inf:
            raise ConfigError(f"split_min_size_m must be a positive number of metres, "
                              f"not {self.split_min_size_m!r}")
        if not 0 < self.backoff_base <= self.backoff_max:
            raise ConfigError("backoff_base must be positive and at most backoff_max")
        if self.download_attempts < 1:
            raise ConfigError("download_attempts must be at least 1")


@dataclass(frozen=True)
class Polling:
    """How often the scheduler looks at the backends."""

    min_interval: float = 0.5
    """Seconds between ticks right after something changed or when a job is expected to end."""
    max_interval: float = 30.0
    """Seconds between ticks at most, when nothing happens."""
    growth: float = 1.5
    """Factor the interval grows by after each tick in which nothing changed."""

    def __post_init__(self) -> None:
        if not 0 < self.min_interval <= self.max_interval:
            raise ConfigError("polling: min_interval must be positive and at most max_interval")
        if self.growth < 1:
            raise ConfigError("polling: growth must be at least 1")


@dataclass(frozen=True)
class Limits:
    """Budget and time limits of the campaign."""

    max_credits: float | None = None
    """Stop launching jobs once the recorded costs reach this many credits."""
    max_runtime: float | None = None
    """Seconds a job may run; beyond, it is canceled and the task retried or failed."""
    capacity_cooldown: float = 120.0
    """Seconds a backend's capacity stays lowered after it answered ``ConcurrentJobLimit``."""
    me_refresh: float | None = 600.0
    """Seconds between reads of the limits a backend advertises in ``/me``; None: never read them."""

    def __post_init__(self) -> None:
        if self.max_credits is not None and self.max_credits < 0:
            raise ConfigError("max_credits must not be negative")
        if self.max_runtime is not None and self.max_runtime <= 0:
            raise ConfigError("max_runtime must be positive")


@dataclass(frozen=True)
class Leasing:
    """How runners sharing a campaign hand work over when one of them stops (a campaign setting:
    every runner must judge the others by the same lease)."""

    lease_seconds: float = 30.0
    """A runner that has not heart-beaten for this long is taken to be gone: its backends and
    downloads are taken over by the others (at once, when its process is gone from this host)."""

    def __post_init__(self) -> None:
        if not (self.lease_seconds > 0 and math.isfinite(self.lease_seconds)):
            raise ConfigError(f"lease_seconds must be a positive number of seconds, not {self.lease_seconds}")

    @property
    def heartbeat_seconds(self) -> float:
        """Seconds between two heartbeats: a third of the lease, at most 2 s, so that a lease
        freed by another runner is taken within about that."""
        return min(self.lease_seconds / 3.0, 2.0)
