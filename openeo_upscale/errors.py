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
    `transient` is True where trying again later may succeed (no answer, a 5xx, a 408 or a 429,
    with the server's `retry_after` in seconds when it sent one); `status` is the HTTP status of
    the answer, where there was one.
    """

    def __init__(self, message: str, *, href: str | None = None, asset: str | None = None,
                 transient: bool = False, retry_after: float | None = None,
                 status: int | None = None) -> None:
        super().__init__(message)
        self.href = href
        self.asset = asset
        self.transient = transient
        self.retry_after = retry_after
        self.status = status


class CampaignError(UpscaleError):
    """A campaign cannot be created, opened or run as asked; the message says what to change."""


class CampaignExistsError(CampaignError):
    """A campaign of that name is already in the store (names are unique in a store)."""


class CampaignBusyError(CampaignError):
    """Another runner holds the campaign (a SQLite store allows one at a time); the message names it.

    `holder` describes that runner (host, pid, since when) where it is known.
    """

    def __init__(self, message: str, *, holder: str | None = None) -> None:
        super().__init__(message)
        self.holder = holder


class BackendError(UpscaleError):
    """An openEO backend refused or failed a request made for a task.

    `backend`, `task_id` and `job_id` are set where known and are part of the message; `status`
    is the HTTP status (None for a connection failure) and `code` the openEO error code.
    """

    def __init__(self, message: str, *, backend: str | None = None, task_id: int | str | None = None,
                 job_id: str | None = None, status: int | None = None, code: str | None = None) -> None:
        where = ", ".join(f"{key} {value}" for key, value in
                          (("backend", backend), ("task", task_id), ("job", job_id)) if value is not None)
        super().__init__(f"{message} ({where})" if where else message)
        self.backend = backend
        self.task_id = task_id
        self.job_id = job_id
        self.status = status
        self.code = code
        self.reason = message
        """The message without the backend/task/job suffix."""


class TransientError(BackendError):
    """Worth retrying later: a connection failure, a 5xx answer or a 429; `retry_after` in seconds."""

    def __init__(self, message: str, *, retry_after: float | None = None, **where: object) -> None:
        super().__init__(message, **where)  # type: ignore[arg-type]
        self.retry_after = retry_after


class CapacityError(BackendError):
    """The backend refused to start a job because too many run at once (`ConcurrentJobLimit`)."""


class PermanentError(BackendError):
    """The backend rejected the request itself (invalid parameters, unknown collection, ...): no retry."""


class AuthError(BackendError):
    """No access token could be had from the backend or its identity provider.

    Raised as is where the credentials were refused (``CredentialsInvalid``, a token refused right
    after a fresh login, an OIDC client the provider does not accept, a provider the backend does not
    list): trying again with the same credentials cannot help. `ProviderUnavailableError` is the
    kind that may pass.
    """


class ProviderUnavailableError(AuthError, TransientError):
    """The identity provider could not be reached or answered 5xx/429: a login may work later.

    Both an `AuthError` (at the start of a run the backend cannot be used) and a `TransientError`
    (during a run it is waited out, with backoff).
    """


class NoUsableBackendError(CampaignError):
    """No configured backend can run the campaign: each could not authenticate or refused the UDP.

    `reasons` maps each backend's name to why; the message names them all, on one line.
    """

    def __init__(self, message: str, *, reasons: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.reasons = dict(reasons or {})


class ForecastOverBudgetError(CampaignError):
    """The campaign's forecast exceeds its ``max_credits``: nothing beyond the pilot is launched
    until the budget is raised or the forecast accepted. `forecast` and `budget` are the figures."""

    def __init__(self, message: str, *, forecast: float, budget: float) -> None:
        super().__init__(message)
        self.forecast = forecast
        self.budget = budget
