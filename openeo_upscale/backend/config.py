"""Settings of the local backend: small frozen dataclasses, loaded from TOML by `load_config`."""

from __future__ import annotations

import dataclasses
import enum
import ipaddress
import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from openeo_upscale.errors import ConfigError

DEFAULT_USER = "demo"
"""User name of the default account."""
DEFAULT_PASSWORD = "demo"
"""Password of the default account (HTTP basic)."""
DEFAULT_CLIENT_ID = "openeo-upscale-local"
"""OIDC client id of the default account (client-credentials grant)."""
DEFAULT_CLIENT_SECRET = "demo-secret"
"""OIDC client secret of the default account."""
OIDC_PROVIDER_ID = "local"
"""Id of the local OIDC provider in `/credentials/oidc`."""


def is_loopback(host: str) -> bool:
    """True when `host` is only reachable from this machine (``localhost``, ``127.0.0.0/8``, ``::1``)."""
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: it may resolve to anything
        return False


def _at_least(where: str, name: str, value: float | None, minimum: float, *, optional: bool = False) -> None:
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= minimum:
        raise ValueError(f"{where}{name} must be a number ≥ {minimum:g}, not {value!r}")


def _positive(where: str, name: str, value: float | None, *, optional: bool = False) -> None:
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < math.inf:
        raise ValueError(f"{where}{name} must be a number > 0, not {value!r}")


def _share(where: str, name: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise ValueError(f"{where}{name} must be a share between 0 and 1, not {value!r}")


def _shares(where: str, name: str, rates: Mapping[str, float]) -> None:
    if not isinstance(rates, Mapping):
        raise ValueError(f"{where}{name} must map routes to shares between 0 and 1, not {rates!r}")
    for route, rate in rates.items():
        _share(where, f"{name}[{route!r}]", rate)


class Mode(enum.StrEnum):
    """How a job computes its result."""

    SIMULATED = "simulated"
    REAL = "real"


class LimitPolicy(enum.StrEnum):
    """What starting a job beyond the user's run slots does."""

    QUEUE = "queue"
    """The job waits in the queue until a slot is free (most platforms)."""
    REJECT = "reject"
    """`POST /jobs/{id}/results` answers 400 ConcurrentJobLimit (geopyspark backends, CDSE)."""


@dataclass(frozen=True)
class User:
    """An account: basic credentials and, optionally, OIDC client credentials."""

    name: str
    password: str | None = None
    client_id: str | None = None
    client_secret: str | None = None
    run_slots: int | None = None
    """Overrides the backend's `run_slots` for this user."""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"[[users]] name must be a non-empty string, not {self.name!r}")
        _at_least(f"[[users]] {self.name}: ", "run_slots", self.run_slots, 1, optional=True)


@dataclass(frozen=True)
class RateLimit:
    """A token bucket per caller (its access token, or its address when anonymous):
    `capacity` requests at once, refilled at `per_second`."""

    capacity: int = 20
    per_second: float = 10.0

    def __post_init__(self) -> None:
        _at_least("[faults.rate_limit] ", "capacity", self.capacity, 1)
        _positive("[faults.rate_limit] ", "per_second", self.per_second)


@dataclass(frozen=True)
class JobFailureRule:
    """Fail the jobs whose title (or process graph) contains `match`, on these attempts (1-based)."""

    match: str
    attempts: tuple[int, ...] = (1,)
    message: str = "Injected failure"

    def __post_init__(self) -> None:
        for attempt in self.attempts:
            _at_least("[[faults.job_failures]] ", "attempts", attempt, 1)


@dataclass(frozen=True)
class Faults:
    """Seeded, reproducible fault injection. Everything is off by default.

    Rates are keyed by route template (for example ``"POST /jobs"``, ``"GET /jobs/{job_id}"``)
    or ``"*"`` for every route.
    """

    seed: int = 0
    http_error_rate: Mapping[str, float] = field(default_factory=dict)
    drop_rate: Mapping[str, float] = field(default_factory=dict)
    lost_response_rate: Mapping[str, float] = field(default_factory=dict)
    """Share of requests that are carried out but whose answer is lost (the connection drops)."""
    slow_rate: Mapping[str, float] = field(default_factory=dict)
    slow_seconds: float = 2.0
    rate_limit: RateLimit | None = None
    job_failure_rate: float = 0.0
    job_failures: tuple[JobFailureRule, ...] = ()
    stuck_rate: float = 0.0
    """Share of started jobs that stay `queued` for `stuck_seconds` although a slot is free."""
    stuck_seconds: float = 3600.0
    hostile_asset_name: str | None = None
    """An extra asset of this (unsafe) name in every job result, such as ``../../evil``."""
    asset_errors: Mapping[str, int] = field(default_factory=dict)
    """Assets that always answer with an HTTP error: asset name -> status (``{"b.tif": 500}``)."""

    def __post_init__(self) -> None:
        where = "[faults] "
        for name in ("http_error_rate", "drop_rate", "lost_response_rate", "slow_rate"):
            _shares(where, name, getattr(self, name))
        for name in ("job_failure_rate", "stuck_rate"):
            _share(where, name, getattr(self, name))
        _at_least(where, "slow_seconds", self.slow_seconds, 0)
        _positive(where, "stuck_seconds", self.stuck_seconds)
        for asset, status in dict(self.asset_errors).items():
            if isinstance(status, bool) or not isinstance(status, int) or not 400 <= status <= 599:
                raise ValueError(f"{where}asset_errors[{asset!r}] must be an HTTP error status (400-599), "
                                 f"not {status!r}")

    @property
    def enabled(self) -> bool:
        return bool(self.http_error_rate or self.drop_rate or self.lost_response_rate or self.slow_rate
                    or self.rate_limit)


@dataclass(frozen=True)
class Simulation:
    """Duration model of simulated jobs, in simulated seconds (multiplied by `time_scale`)."""

    time_scale: float = 0.05
    """Wall seconds per simulated second: 0.05 makes a 3-minute job take 9 s."""
    base_seconds: float = 60.0
    seconds_per_km2: float = 2.0
    seconds_per_month: float = 30.0
    jitter: float = 0.2
    """Relative spread of the seeded jitter (0.2 means ±20%)."""
    queue_seconds: float = 5.0
    """Simulated time a job spends `queued` before it may run, when a slot is free."""
    assets: tuple[str, ...] = ("openEO.tif",)
    """The GeoTIFF assets each simulated job writes (the same raster under each name)."""
    memory_default_mb: float | None = None
    """Memory model: what a job gets when its ``job_options`` ask for none (``executor-memory``
    plus ``executor-memoryOverhead``); None turns the model off (no job fails for memory)."""
    memory_limit_mb: float | None = None
    """Memory model: the most a job gets, whatever its ``job_options`` ask (None: what they ask)."""
    memory_base_mb: float = 500.0
    """Memory model: what every job needs, plus the next three per km² and per month it covers and
    per band it loads. The model also applies to real-mode jobs, checked before they compute."""
    memory_per_km2_mb: float = 40.0
    memory_per_month_mb: float = 100.0
    memory_per_band_mb: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "assets", tuple(self.assets))
        if not self.assets or len(set(self.assets)) != len(self.assets):
            raise ValueError(f"[simulation] assets must be distinct names, at least one: {self.assets!r}")
        where = "[simulation] "
        _positive(where, "time_scale", self.time_scale)
        for name in ("base_seconds", "seconds_per_km2", "seconds_per_month", "queue_seconds"):
            _at_least(where, name, getattr(self, name), 0)
        jitter = self.jitter
        if isinstance(jitter, bool) or not isinstance(jitter, int | float) or not 0 <= jitter < 1:
            raise ValueError(f"{where}jitter must be a share ≥ 0 and < 1, not {self.jitter!r}")
        for name in ("memory_default_mb", "memory_limit_mb"):
            _positive(where, name, getattr(self, name), optional=True)
        for name in ("memory_base_mb", "memory_per_km2_mb", "memory_per_month_mb", "memory_per_band_mb"):
            _at_least(where, name, getattr(self, name), 0)


class ResultsLayout(enum.StrEnum):
    """How ``GET /jobs/{id}/results`` answers (the openEO API allows both)."""

    ASSETS = "assets"
    """A STAC Item with the job's assets (the common layout)."""
    ITEMS = "items"
    """A STAC Collection with no assets and one ``rel="item"`` link per asset, paged with
    ``rel="next"`` after `BackendConfig.items_per_page` links; each item holds its asset."""


@dataclass(frozen=True)
class BackendConfig:
    """Everything the local backend needs to run."""

    host: str = "127.0.0.1"
    port: int = 8000
    mode: Mode = Mode.SIMULATED
    state_dir: Path = Path(".openeo-local")
    udp_dirs: tuple[Path, ...] = ()
    users: tuple[User, ...] | None = None
    """The accounts; None (the default) is the built-in demo account (`DEFAULT_USER`), which
    is only enabled on a loopback `host`: see `accounts`."""
    run_slots: int = 2
    """Jobs a user may have running at once."""
    limit_policy: LimitPolicy = LimitPolicy.QUEUE
    queue_limit: int | None = None
    """Jobs a user may have queued or running at once; beyond it a start is refused."""
    token_ttl: float = 3600.0
    """Seconds an access token stays valid."""
    credits_per_cpu_hour: float = 1.0
    credits_per_job: float = 0.5
    simulation: Simulation = Simulation()
    job_memory_limit_mb: int | None = 4096
    """Real mode: address space a job's process may use; beyond, the job ends in error."""
    job_time_limit: float = 3600.0
    """Real mode: wall seconds a job may run; beyond, it is killed and ends in error."""
    faults: Faults = Faults()
    title: str = "openeo-upscale local backend"
    results_layout: ResultsLayout = ResultsLayout.ASSETS
    items_per_page: int = 100
    """Item links per page of a job's results in the items layout."""
    allow_remote_namespaces: bool = False
    """Fetch a UDP by an http(s) namespace that has no copy in `udp_dirs`. Off by default: a
    backend that fetches any URL a user names lets its users reach any server it can."""
    namespace_timeout: float = 10.0
    """Seconds the download of one remote namespace may take."""
    max_request_mb: float = 16.0
    """Largest request body accepted, in MiB (413 beyond)."""

    def __post_init__(self) -> None:
        where = "[backend] "
        if isinstance(self.port, bool) or not isinstance(self.port, int) or not 0 <= self.port <= 65535:
            raise ValueError(f"{where}port must be between 0 and 65535, not {self.port!r}")
        for name in ("run_slots", "items_per_page"):
            _at_least(where, name, getattr(self, name), 1)
        _at_least(where, "queue_limit", self.queue_limit, 1, optional=True)
        _at_least(where, "job_memory_limit_mb", self.job_memory_limit_mb, 1, optional=True)
        for name in ("token_ttl", "job_time_limit", "namespace_timeout", "max_request_mb"):
            _positive(where, name, getattr(self, name))
        for name in ("credits_per_cpu_hour", "credits_per_job"):
            _at_least(where, name, getattr(self, name), 0)
        if self.users is not None:
            names = [u.name for u in self.users]
            twice = sorted({n for n in names if names.count(n) > 1})
            if twice:
                raise ValueError(f"[[users]] names must be distinct: {', '.join(twice)} more than once")

    @property
    def accounts(self) -> tuple[User, ...]:
        """The accounts that may log in: `users` when set; otherwise the demo account, on a
        loopback host only (on any other host it would let everybody who can reach it in)."""
        if self.users is not None:
            return self.users
        if is_loopback(self.host):
            return (User(DEFAULT_USER, DEFAULT_PASSWORD, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET),)
        return ()

    def credits(self, cpu_seconds: float) -> float:
        """What a job that used ``cpu_seconds`` costs: the start fee plus its CPU time, CDSE-style.

        Failed jobs and jobs canceled while running are billed too, for what they used.
        """
        return round(self.credits_per_job + cpu_seconds / 3600.0 * self.credits_per_cpu_hour, 4)

    def user(self, name: str) -> User | None:
        return next((u for u in self.accounts if u.name == name), None)

    def slots_for(self, name: str) -> int:
        user = self.user(name)
        return user.run_slots if user and user.run_slots else self.run_slots

    def replace(self, **changes: Any) -> BackendConfig:
        return dataclasses.replace(self, **changes)


def _build(cls: type, data: Mapping[str, Any], where: str) -> Any:
    """Build a dataclass from a TOML table, refusing unknown keys with a message naming them."""
    names = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(names))
    if unknown:
        raise ConfigError(f"{where}: unknown setting(s) {', '.join(unknown)}")
    return cls(**data)


def config_from_dict(data: Mapping[str, Any], base: BackendConfig | None = None) -> BackendConfig:
    """Overlay a parsed TOML document on `base` (defaults when omitted)."""
    base = base or BackendConfig()
    data = dict(data)
    changes: dict[str, Any] = {}
    try:
        if "simulation" in data:
            changes["simulation"] = _build(Simulation, data.pop("simulation"), "[simulation]")
        if "faults" in data:
            faults = dict(data.pop("faults"))
            if "rate_limit" in faults:
                faults["rate_limit"] = _build(RateLimit, faults["rate_limit"], "[faults.rate_limit]")
            if "job_failures" in faults:
                faults["job_failures"] = tuple(
                    _build(
                        JobFailureRule,
                        {**r, "attempts": tuple(r.get("attempts", (1,)))},
                        "[[faults.job_failures]]",
                    )
                    for r in faults["job_failures"]
                )
            changes["faults"] = _build(Faults, faults, "[faults]")
        if "users" in data:
            changes["users"] = tuple(_build(User, u, "[[users]]") for u in data.pop("users"))
        for key, kind in (("mode", Mode), ("limit_policy", LimitPolicy), ("results_layout", ResultsLayout)):
            if key in data:
                value = data.pop(key)
                if value not in set(kind):
                    raise ValueError(f"[backend] {key} must be one of {', '.join(kind)}, not {value!r}")
                changes[key] = kind(value)
        if "allow_remote_namespaces" in data and not isinstance(data["allow_remote_namespaces"], bool):
            raise ValueError("[backend] allow_remote_namespaces must be true or false, "
                             f"not {data['allow_remote_namespaces']!r}")
        if "state_dir" in data:
            changes["state_dir"] = Path(data.pop("state_dir"))
        if "udp_dirs" in data:
            changes["udp_dirs"] = tuple(Path(p) for p in data.pop("udp_dirs"))
        known = {f.name for f in dataclasses.fields(BackendConfig)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown backend setting(s) {', '.join(unknown)}")
        changes.update(data)
        return dataclasses.replace(base, **changes)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"invalid backend configuration: {exc}") from exc


def load_config(path: str | Path, base: BackendConfig | None = None) -> BackendConfig:
    """Read a backend TOML file (see docs/local-backend.md for the keys)."""
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read backend configuration {path}: {exc}") from exc
    return config_from_dict(data.get("backend", data), base)
