"""A campaign described in a TOML file, for `openeo-upscale run`: frozen dataclasses and `load_campaign`.

Relative paths are relative to the TOML file. Unknown keys are refused with a message naming them.
Secrets are never written in the file: it names the environment variables that hold them, and
only the CLI reads the environment (it passes it to `connection_factory`). Example::

    store = "antwerp.sqlite"        # a SQLite file, or a postgresql:// URL
    name = "antwerp"                # the campaign in the store (default "campaign")
    output_dir = "results"          # where results go (default "<name>-results" beside this file)
    tiles = "tiles.geojson"         # GeoJSON, GeoPackage, GeoParquet or Shapefile of tiles ...
    column_map = { bbox = "extent" }  # UDP parameter -> tiles column holding its value

    [grid]                          # ... or cut the tiles here (exactly one of tiles / [grid])
    bbox = [4.35, 51.10, 4.42, 51.15]   # W, S, E, N in degrees; or aoi = "aoi.geojson"
    size = 5000                     # metres (default 5000)
    overlap = 0                     # metres on every side (default 0)
    clip = false                    # clip tile geometries to the AOI
    min_coverage = 0.0              # drop tiles with less of their area in the AOI
    crs = "utm"                     # the only grid there is
    max_tiles = 2000000

    [udp]                           # at least one of file, namespace, process_id
    file = "max_ndvi.json"          # the process document (its parameters are checked per task)
    namespace = "https://.../max_ndvi.json"  # where backends find it; without one, the UDP is
                                    # stored on every backend as the account's own process.
                                    # Alone, the document is downloaded from this URL.
    process_id = "max_ndvi"         # alone: a process already stored on the (first) backend

    [defaults]                      # UDP parameter values for every task
    temporal_extent = ["2023-05-01", "2023-07-01"]

    [retry]                         # RetryPolicy: max_attempts, other_backend, backoff_base,
    max_attempts = 3                # backoff_max, download_attempts, on_memory_error ("fail",
    on_memory_error = "more_memory" # "more_memory" or "split"), memory_factor, memory_start,
                                    # memory_max, split_min_size_m

    [limits]                        # Limits: max_credits, max_runtime (s), capacity_cooldown,
    max_credits = 100               # me_refresh

    [polling]                       # Polling: min_interval, max_interval, growth (seconds)
    min_interval = 0.5

    [leasing]                       # Leasing: several runners sharing the campaign (PostgreSQL)
    lease_seconds = 30              # a runner silent this long is taken over by the others

    [job_options]                   # sent with every job (POST /jobs "job_options"); a backend's
    executor-memory = "2g"          # own and a tile's "job_options" column override them

    [[backends]]
    name = "cdse"                   # letters, digits, '-' and '_'
    url = "https://openeo.dataspace.copernicus.eu"
    parallel_jobs = 2
    queue_limit = 2                 # optional
    weight = 1.0
    job_options = { executor-memory = "4g" }  # optional: this backend's, over [job_options]
    auth = "oidc"                   # "basic" | "oidc-client-credentials" | "oidc" | "none"
    provider_id = "CDSE"            # optional, for the OIDC kinds
    # basic:                    username_env, password_env
    #                           (default OPENEO_<NAME>_USERNAME / OPENEO_<NAME>_PASSWORD)
    # oidc-client-credentials:  client_id_env, client_secret_env
    #                           (default OPENEO_<NAME>_CLIENT_ID / OPENEO_<NAME>_CLIENT_SECRET)
    # oidc:                     the openeo client's own flow: a stored refresh token, else the
    #                           device code flow (prints a link to open)

``<NAME>`` is the backend name in upper case with ``-`` as ``_`` (``cdse`` → ``OPENEO_CDSE_USERNAME``).
A campaign already in the store is resumed as it is: its tiles, UDP, defaults, retry, limits,
polling, leasing and job options were fixed when it was created, so for it only ``store``, ``name``
and ``[[backends]]``
matter and ``tiles``/``[grid]`` may be left out.
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
import json
import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import openeo

from openeo_upscale.campaign.campaign import Campaign, job_process
from openeo_upscale.campaign.client import BackendClient, ConnectionFactory
from openeo_upscale.campaign.creator import Udp
from openeo_upscale.campaign.settings import (
    BackendSettings,
    Leasing,
    Limits,
    Polling,
    RetryPolicy,
    job_options,
)
from openeo_upscale.campaign.store import Store
from openeo_upscale.errors import (
    AuthError,
    BackendError,
    ConfigError,
    ParameterError,
    TransientError,
    UpscaleError,
)

__all__ = [
    "AuthKind",
    "BackendConfig",
    "CampaignConfig",
    "GridConfig",
    "UdpConfig",
    "connection_factory",
    "load_campaign",
]

UDP_DOWNLOAD_TIMEOUT = 30.0
"""Seconds to wait for a UDP document given only by its namespace URL."""


class AuthKind(enum.StrEnum):
    """How the CLI authenticates to a backend."""

    BASIC = "basic"
    OIDC_CLIENT_CREDENTIALS = "oidc-client-credentials"
    OIDC = "oidc"
    NONE = "none"


@dataclass(frozen=True)
class GridConfig:
    """The ``[grid]`` table: an AOI (``bbox`` or ``aoi`` file) and the options of `grid.tiles`."""

    bbox: tuple[float, float, float, float] | None = None
    aoi: Path | None = None
    size: int = 5000
    overlap: int = 0
    clip: bool = False
    min_coverage: float = 0.0
    crs: str = "utm"
    max_tiles: int = 2_000_000

    def __post_init__(self) -> None:
        if (self.bbox is None) == (self.aoi is None):
            raise ConfigError("[grid]: give exactly one of bbox = [W, S, E, N] or aoi = \"file\"")
        if self.bbox is not None and len(self.bbox) != 4:
            raise ConfigError(f"[grid]: bbox must be [W, S, E, N] in degrees, got {list(self.bbox)}")

    def tiles(self) -> gpd.GeoDataFrame:
        """Cut the grid."""
        from openeo_upscale.grid import AoiLike, tiles

        aoi: AoiLike = self.bbox if self.bbox is not None else str(self.aoi)
        return tiles(aoi, self.size, crs=self.crs, overlap=self.overlap, clip=self.clip,
                     min_coverage=self.min_coverage, max_tiles=self.max_tiles)


@dataclass(frozen=True)
class UdpConfig:
    """The ``[udp]`` table: where the process document comes from and where backends find it."""

    file: Path | None = None
    namespace: str | None = None
    process_id: str | None = None

    def __post_init__(self) -> None:
        if self.file is None and self.namespace is None and self.process_id is None:
            raise ConfigError("[udp]: give file, namespace or process_id")
        if self.process_id is not None and (self.file is not None or self.namespace is not None):
            raise ConfigError("[udp]: process_id names a process stored on the backend; "
                              "give it alone, or give file/namespace instead")

    @property
    def local(self) -> bool:
        """Whether the document can be had without the network (a file)."""
        return self.file is not None

    def load(self, connection: Callable[[], openeo.Connection] | None = None) -> Udp:
        """The UDP: read from ``file``, downloaded from ``namespace``, or described by the backend.

        ``connection`` builds a connection to the backend holding ``process_id``.
        """
        if self.file is not None:
            return Udp.from_file(self.file, self.namespace)
        try:
            if self.namespace is not None:
                return Udp.from_url(self.namespace, timeout=UDP_DOWNLOAD_TIMEOUT)
            assert self.process_id is not None
            if connection is None:
                raise ConfigError(f"[udp]: process {self.process_id!r} is read from a backend; "
                                  "none is configured")
            return Udp.from_backend(connection(), self.process_id)
        except ParameterError as exc:
            raise ConfigError(f"[udp]: {exc}") from exc


@dataclass(frozen=True)
class BackendConfig:
    """One ``[[backends]]`` entry: where, how much of it, and which environment variables hold secrets."""

    name: str
    url: str
    parallel_jobs: int = 2
    queue_limit: int | None = None
    weight: float = 1.0
    job_options: Mapping[str, Any] = field(default_factory=dict)
    auth: AuthKind = AuthKind.BASIC
    provider_id: str | None = None
    username_env: str | None = None
    password_env: str | None = None
    client_id_env: str | None = None
    client_secret_env: str | None = None

    def __post_init__(self) -> None:
        # BackendSettings checks the name and the numbers; its message names the backend.
        checked = BackendSettings(self.name, parallel_jobs=self.parallel_jobs, queue_limit=self.queue_limit,
                                  weight=self.weight, job_options=self.job_options)
        object.__setattr__(self, "job_options", checked.job_options)
        if not self.url.startswith(("http://", "https://")):
            raise ConfigError(f"backend {self.name}: url must start with http:// or https://, "
                              f"not {self.url!r}")
        used = {
            AuthKind.BASIC: ("username_env", "password_env"),
            AuthKind.OIDC_CLIENT_CREDENTIALS: ("client_id_env", "client_secret_env"),
        }.get(self.auth, ())
        stray = [key for key in ("username_env", "password_env", "client_id_env", "client_secret_env")
                 if getattr(self, key) is not None and key not in used]
        if stray:
            raise ConfigError(f"backend {self.name}: {', '.join(stray)} not used with "
                              f"auth = {self.auth.value!r}")

    def env_name(self, key: str) -> str:
        """The environment variable holding ``key``: username, password, client_id or client_secret."""
        given: str | None = getattr(self, f"{key}_env")
        if given:
            return given
        return f"OPENEO_{self.name.upper().replace('-', '_')}_{key.upper()}"


@dataclass(frozen=True)
class CampaignConfig:
    """A whole campaign TOML file (see the module docstring)."""

    store: str
    backends: tuple[BackendConfig, ...]
    name: str = "campaign"
    output_dir: Path | None = None
    tiles: Path | None = None
    grid: GridConfig | None = None
    udp: UdpConfig | None = None
    defaults: Mapping[str, Any] = field(default_factory=dict)
    column_map: Mapping[str, str] = field(default_factory=dict)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    limits: Limits = field(default_factory=Limits)
    polling: Polling = field(default_factory=Polling)
    leasing: Leasing = field(default_factory=Leasing)
    job_options: Mapping[str, Any] = field(default_factory=dict)
    source: Path | None = None
    """The TOML file this was read from."""

    def __post_init__(self) -> None:
        if self.tiles is not None and self.grid is not None:
            raise ConfigError("give either tiles = \"file\" or a [grid] table, not both")
        names = [b.name for b in self.backends]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ConfigError(f"[[backends]]: names must be unique; repeated: {', '.join(repeated)}")

    def load_tiles(self) -> gpd.GeoDataFrame:
        """The campaign's tiles, from the ``tiles`` file or cut from ``[grid]``."""
        if self.grid is not None:
            return self.grid.tiles()
        if self.tiles is None:
            raise ConfigError(f"the store has no campaign named {self.name!r} and the configuration "
                              "gives no tiles: add tiles = \"file\" or a [grid] table")
        from openeo_upscale.grid import read_vector

        return read_vector(self.tiles)

    def open_campaign(self, store: Store, factories: Mapping[str, ConnectionFactory]) -> Campaign:
        """The configured campaign in ``store``: resumed when the store has it, created from the
        tiles and the UDP otherwise (the UDP loaded through the first backend when it names one
        there). Several runs may start at once on a new store: one creates it, the others resume it.

        A resumed campaign takes the file's ``[limits]``: raising ``max_credits`` there is how a
        user lets a campaign go on."""
        if any(c["name"] == self.name for c in store.campaigns()):
            campaign = Campaign.open(store, self.name)
            campaign.set_limits(self.limits)
            return campaign
        if self.udp is None:
            raise ConfigError("no [udp] table: say which process to run (file, namespace or process_id)")
        udp = self.udp.load(factories[self.backends[0].name])
        return Campaign.create(
            store, self.load_tiles(), udp, name=self.name, defaults=self.defaults, column_map=self.column_map,
            output_dir=self.output_dir, on_exists="resume", retry=self.retry, limits=self.limits,
            polling=self.polling, leasing=self.leasing, job_options=self.job_options)

    def attach_backends(self, campaign: Campaign, factories: Mapping[str, ConnectionFactory]) -> None:
        """Add every configured backend to ``campaign``, with its limits and job options."""
        for backend in self.backends:
            campaign.add_backend(backend.name, factories[backend.name], parallel_jobs=backend.parallel_jobs,
                                 queue_limit=backend.queue_limit, weight=backend.weight,
                                 job_options=backend.job_options)

    def connection_factories(self, environ: Mapping[str, str]) -> dict[str, ConnectionFactory]:
        """A `connection_factory` per configured backend, by name."""
        return {backend.name: connection_factory(backend, environ) for backend in self.backends}


def connection_factory(backend: BackendConfig, environ: Mapping[str, str]) -> Callable[[], openeo.Connection]:
    """A function building an authenticated connection to ``backend``; called again for a fresh token.

    The secrets are read from ``environ`` now, so a missing variable is a `ConfigError` before any
    work starts (naming the variable, never a value).
    """
    secrets: dict[str, str] = {}
    wanted = {
        AuthKind.BASIC: ("username", "password"),
        AuthKind.OIDC_CLIENT_CREDENTIALS: ("client_id", "client_secret"),
    }.get(backend.auth, ())
    missing = [backend.env_name(key) for key in wanted if not environ.get(backend.env_name(key))]
    if missing:
        raise ConfigError(f"backend {backend.name} (auth = {backend.auth.value!r}): set the environment "
                          f"variable(s) {', '.join(missing)}")
    for key in wanted:
        secrets[key] = environ[backend.env_name(key)]

    def connect() -> openeo.Connection:
        # No blocking retries of the client's own: the scheduler retries with backoff, and says so.
        connection = openeo.connect(backend.url, retry=False)
        if backend.auth is AuthKind.BASIC:
            return connection.authenticate_basic(secrets["username"], secrets["password"])
        if backend.auth is AuthKind.OIDC_CLIENT_CREDENTIALS:
            return connection.authenticate_oidc_client_credentials(
                client_id=secrets["client_id"], client_secret=secrets["client_secret"],
                provider_id=backend.provider_id)
        if backend.auth is AuthKind.OIDC:
            return connection.authenticate_oidc(provider_id=backend.provider_id)
        return connection

    return connect


# -- loading --------------------------------------------------------------------------------------------


def load_campaign(path: str | os.PathLike[str]) -> CampaignConfig:
    """Read a campaign TOML file; `ConfigError` names the file and the offending key."""
    source = Path(path)
    try:
        with source.open("rb") as f:
            data = tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read campaign configuration {source}: {exc}") from exc
    try:
        return campaign_from_dict(data, source.resolve().parent, source=source)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from exc


def campaign_from_dict(data: Mapping[str, Any], base: Path, *, source: Path | None = None) -> CampaignConfig:
    """Build a `CampaignConfig` from a parsed TOML document; relative paths are taken from ``base``."""
    data = dict(data)
    _refuse_unknown(data, {f.name for f in dataclasses.fields(CampaignConfig)} - {"source"}, "top level")
    if "store" not in data:
        raise ConfigError("store is missing: a SQLite file path or a postgresql:// URL")
    if not data.get("backends"):
        raise ConfigError("no [[backends]]: configure at least one backend")
    try:
        values: dict[str, Any] = {
            "store": _store(_text(data.pop("store"), "store"), base),
            "backends": tuple(_backend(entry, i) for i, entry in enumerate(_list(data.pop("backends"),
                                                                                  "backends"))),
            "source": source,
        }
        if "name" in data:
            values["name"] = _text(data.pop("name"), "name")
        for key in ("output_dir", "tiles"):
            if key in data:
                values[key] = base / _text(data.pop(key), key)
        values.setdefault("output_dir", base / f"{values.get('name', 'campaign')}-results")
        if "grid" in data:
            values["grid"] = _grid(_table(data.pop("grid"), "grid"), base)
        if "udp" in data:
            values["udp"] = _udp(_table(data.pop("udp"), "udp"), base)
        if "defaults" in data:
            values["defaults"] = {str(k): _json_value(v) for k, v in _table(data.pop("defaults"),
                                                                             "defaults").items()}
        if "column_map" in data:
            column_map = _table(data.pop("column_map"), "column_map")
            values["column_map"] = {str(k): _text(v, f"column_map.{k}") for k, v in column_map.items()}
        if "job_options" in data:
            values["job_options"] = job_options(_json_value(_table(data.pop("job_options"), "job_options")),
                                                "[job_options]")
        tables = (("retry", RetryPolicy), ("limits", Limits), ("polling", Polling), ("leasing", Leasing))
        for key, cls in tables:
            if key in data:
                values[key] = _build(cls, _table(data.pop(key), key), f"[{key}]")
        return CampaignConfig(**values)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"invalid campaign configuration: {exc}") from exc


def _refuse_unknown(data: Mapping[str, Any], known: set[str], where: str) -> None:
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"{where}: unknown setting(s) {', '.join(unknown)} "
                          f"(known: {', '.join(sorted(known))})")


def _build(cls: type, data: Mapping[str, Any], where: str) -> Any:
    """A settings dataclass from a TOML table, refusing unknown keys with a message naming them."""
    _refuse_unknown(data, {f.name for f in dataclasses.fields(cls)}, where)
    try:
        return cls(**data)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from exc


def _table(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where} must be a table, not {json.dumps(value, default=str)}")
    return value


def _list(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise ConfigError(f"{where} must be an array of tables ([[{where}]])")
    return value


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{where} must be a non-empty string, not {value!r}")
    return value


def _json_value(value: Any) -> Any:
    """A TOML value as JSON: dates and times (TOML has literals for them) become ISO text."""
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, list):
        return [_json_value(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _json_value(v) for k, v in value.items()}
    return value


def _store(value: str, base: Path) -> str:
    if "://" in value:
        return value
    return str(base / Path(value).expanduser())


def _grid(data: Mapping[str, Any], base: Path) -> GridConfig:
    data = dict(data)
    _refuse_unknown(data, {f.name for f in dataclasses.fields(GridConfig)}, "[grid]")
    if "bbox" in data:
        bbox = data["bbox"]
        if not isinstance(bbox, list) or not all(isinstance(v, int | float) for v in bbox):
            raise ConfigError(f"[grid]: bbox must be [W, S, E, N] in degrees, got {bbox!r}")
        data["bbox"] = tuple(float(v) for v in bbox)
    if "aoi" in data:
        data["aoi"] = base / _text(data["aoi"], "[grid] aoi")
    return GridConfig(**data)


def _udp(data: Mapping[str, Any], base: Path) -> UdpConfig:
    data = dict(data)
    _refuse_unknown(data, {f.name for f in dataclasses.fields(UdpConfig)}, "[udp]")
    if "file" in data:
        data["file"] = base / _text(data["file"], "[udp] file")
    for key in ("namespace", "process_id"):
        if key in data:
            _text(data[key], f"[udp] {key}")
    return UdpConfig(**data)


def _backend(entry: Any, index: int) -> BackendConfig:
    data = dict(_table(entry, f"[[backends]] #{index + 1}"))
    where = f"[[backends]] {data.get('name', f'#{index + 1}')}"
    _refuse_unknown(data, {f.name for f in dataclasses.fields(BackendConfig)}, where)
    for key in ("name", "url"):
        if key not in data:
            raise ConfigError(f"{where}: {key} is missing")
    if "job_options" in data:
        data["job_options"] = _json_value(_table(data["job_options"], f"{where} job_options"))
    if "auth" in data:
        try:
            data["auth"] = AuthKind(data["auth"])
        except ValueError:
            kinds = ", ".join(repr(k.value) for k in AuthKind)
            raise ConfigError(f"{where}: auth must be one of {kinds}, not {data['auth']!r}") from None
    try:
        return BackendConfig(**data)
    except UpscaleError:
        raise
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: {exc}") from exc


# -- asking the backends before a run (`run --dry-run`) ---------------------------------------------------


@dataclass(frozen=True)
class BackendAnswer:
    """What one backend said of a campaign's process graph before any job: ``verdict`` is one line
    for the user; ``refused`` says it would not run the campaign (credentials or graph refused)."""

    backend: BackendConfig
    verdict: str
    refused: bool = False


def validation_process(udp: Udp, parameters: Mapping[str, Any]) -> dict[str, Any]:
    """What a dry run has a backend validate: a task's process graph, as ``POST /jobs`` would get it;
    for a UDP without a namespace (which `run` stores on each backend first) the UDP's own
    definition, so that nothing is written on the backend."""
    if udp.namespace:
        return job_process(udp, dict(parameters))
    definition = dict(udp.definition)
    return {key: definition[key] for key in ("process_graph", "parameters") if key in definition}


def ask_backends(config: CampaignConfig, process: Mapping[str, Any] | None, why_not: str,
                 environ: Mapping[str, str]) -> list[BackendAnswer]:
    """Each configured backend's answer to ``POST /validation`` of ``process`` (``why_not`` says why
    there is none to ask about). Writes nothing and creates no job."""
    answers = []
    for backend in config.backends:
        if process is None:
            answers.append(BackendAnswer(backend, f"not asked to validate: {why_not}"))
        elif backend.auth is AuthKind.OIDC:
            answers.append(BackendAnswer(backend, "could not be asked: auth 'oidc' may need an interactive "
                                                  "login (run asks it before its first job)"))
        else:
            answers.append(_answer(backend, dict(process), environ))
    return answers


def _answer(backend: BackendConfig, process: dict[str, Any], environ: Mapping[str, str]) -> BackendAnswer:
    try:
        client = BackendClient(backend.name, connection_factory(backend, environ))
        client.connect()
        problems = client.validate(process)
    except ConfigError as exc:
        return BackendAnswer(backend, f"could not be asked: {exc}")
    except AuthError as exc:
        return BackendAnswer(backend, f"cannot authenticate: {exc.reason}", refused=True)
    except TransientError as exc:
        return BackendAnswer(backend, f"could not be asked: {exc.reason}")
    except BackendError as exc:  # the backend's own refusal (an AuthError or TransientError is caught above)
        return BackendAnswer(backend, f"refused: {exc.reason}", refused=True)
    if problems is None:
        return BackendAnswer(backend, "no /validation endpoint (run launches there without asking)")
    if problems:
        return BackendAnswer(backend, "refused the process graph: " + "; ".join(problems), refused=True)
    return BackendAnswer(backend, "valid")
