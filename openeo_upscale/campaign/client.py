"""One openEO backend as the scheduler sees it: a few calls, each answer classified.

The official `openeo` client does the HTTP and the authentication (including refreshing an OIDC
access token); this module only decides what a failure means:

- `TransientError`: no answer, a 5xx, or a 429 (with its ``Retry-After``): try again later;
- `CapacityError`: ``ConcurrentJobLimit``: the job stays, its start is retried later;
- `PermanentError`: any other 4xx: the request itself is wrong, retrying cannot help;
- `AuthError`: no access token: the credentials were refused at login (``CredentialsInvalid``,
  an OIDC client the provider refuses, a provider the backend does not list), or a token was
  refused right after a fresh login; `ProviderUnavailableError` (also a `TransientError`) where
  the identity provider could not be reached or failed (the `openeo` client's ``OidcException``
  wrapping a connection error or a 5xx).

The connection's own blocking retry adapter is replaced by a plain one, because the scheduler
retries on its own without blocking other work, and a blind retry of ``POST /jobs`` could create
a duplicate job.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import openeo
import requests
from openeo.rest import OpenEoApiPlainError, OpenEoClientException
from openeo.rest.auth.oidc import OidcException
from requests.adapters import HTTPAdapter

from openeo_upscale.errors import (
    AuthError,
    BackendError,
    CapacityError,
    PermanentError,
    ProviderUnavailableError,
    TransientError,
)

log = logging.getLogger(__name__)

ConnectionFactory = Callable[[], openeo.Connection]
"""Builds an authenticated connection; called again when the token cannot be refreshed."""

REQUEST_TIMEOUT = (5.0, 30.0)
"""Seconds to connect and to wait for an answer, per request."""

PAGE_SIZE = 100
"""Jobs per page of ``GET /jobs``."""

CAPACITY_CODES = frozenset({"ConcurrentJobLimit", "TooManyJobs"})
"""openEO error codes meaning "too many jobs at once" (not a failure of the job)."""

_TOKEN_CODES = frozenset({"TokenInvalid", "AuthenticationRequired"})

_NO_ENDPOINT = frozenset({404, 405, 501})
"""Answers to ``POST /validation`` meaning the backend has no such endpoint."""

_TOKEN_STATUS = re.compile(r"Failed to retrieve access token at .*?: (\d{3}) ")
"""How the `openeo` client's ``OidcException`` reports the token endpoint's HTTP status."""


class BackendClient:
    """The calls the scheduler makes to one backend, with classified errors and a request counter.

    Thread-safe as far as `requests.Session` is: the scheduler and the download workers share it.
    """

    def __init__(
        self,
        name: str,
        connection: openeo.Connection | ConnectionFactory,
        *,
        timeout: float | tuple[float, float] = REQUEST_TIMEOUT,
        page_size: int = PAGE_SIZE,
    ) -> None:
        self.name = name
        self._factory: ConnectionFactory | None = (
            None if isinstance(connection, openeo.Connection) else connection
        )
        self._connection: openeo.Connection | None = (
            connection if isinstance(connection, openeo.Connection) else None
        )
        if self._connection is not None:
            self._prepare(self._connection)
        self._timeout = timeout
        self._page_size = page_size
        self._lock = threading.Lock()
        self.requests = 0
        """HTTP requests made so far (every attempt, every page, every asset download)."""
        self._download_session = requests.Session()
        self._backend_session = requests.Session()
        for session in (self._download_session, self._backend_session):
            session.hooks["response"].append(self._count)

    # connection -----------------------------------------------------------------------------

    def _count(self, response: requests.Response, *_args: Any, **_kwargs: Any) -> None:
        with self._lock:
            self.requests += 1

    def _prepare(self, connection: openeo.Connection) -> None:
        plain = HTTPAdapter(max_retries=0)
        connection.session.mount("http://", plain)
        connection.session.mount("https://", plain)
        connection.session.hooks["response"].append(self._count)

    @property
    def connection(self) -> openeo.Connection:
        """The authenticated connection, built by the factory on first use.

        A failed login raises `AuthError` (credentials refused), `ProviderUnavailableError` (the
        identity provider is unreachable or failing) or `TransientError` (the backend is).
        """
        if self._connection is None:
            assert self._factory is not None
            try:
                connection = self._factory()
            except (requests.RequestException, OpenEoClientException) as exc:
                raise login_error(exc, self.name) from exc
            self._prepare(connection)
            self._connection = connection
        return self._connection

    def connect(self) -> None:
        """Log in now (where a factory builds the connection), so that a failed login is seen before
        any task is given to this backend; errors as for `connection`."""
        self.connection  # noqa: B018 - building it is the point

    def _reconnect(self) -> bool:
        """After a rejected token: refresh it (OIDC) or build a new connection; True if worth a retry."""
        connection = self.connection
        if connection.try_access_token_refresh(reason="access token rejected by the scheduler's request"):
            return True
        if self._factory is not None:
            log.info("backend %s: token rejected, connecting again", self.name)
            self._connection = None
            self.connect()
            return True
        return False

    # requests -------------------------------------------------------------------------------

    def _request(
        self, method: str, path: str, *, job_id: str | None = None, task_id: int | None = None, **kwargs: Any
    ) -> requests.Response:
        where: dict[str, Any] = {"backend": self.name, "job_id": job_id, "task_id": task_id}
        for attempt in (1, 2):
            try:
                response = self.connection.request(
                    method, path, check_error=False, timeout=self._timeout, **kwargs
                )
            except requests.RequestException as exc:
                raise TransientError(f"{method} {path}: {type(exc).__name__}: {exc}", **where) from exc
            if response.status_code < 400:
                return response
            code, message = _error_body(response)
            token_refused = response.status_code in (401, 403) and code in _TOKEN_CODES
            if attempt == 1 and token_refused and self._reconnect():
                continue
            text = f"{method} {path}: HTTP {response.status_code} {code}: {message}"
            if attempt == 2 and token_refused:
                raise AuthError(f"{text} (a token refused right after a fresh login)",
                                status=response.status_code, code=code, **where)
            if response.status_code == 429 or response.status_code >= 500:
                raise TransientError(
                    text, retry_after=retry_after(response), status=response.status_code, code=code, **where
                )
            if code in CAPACITY_CODES:
                raise CapacityError(text, status=response.status_code, code=code, **where)
            if response.status_code in (401, 403):
                # A credential problem is the account's, not the task's: wait and retry later (an
                # OIDC connection renews its token once its provider answers again).
                if token_refused:
                    text += " (the access token could not be renewed)"
                raise TransientError(text, status=response.status_code, code=code, **where)
            raise PermanentError(text, status=response.status_code, code=code, **where)
        raise AssertionError("unreachable")

    def _json(self, response: requests.Response, what: str, **where: Any) -> Any:
        try:
            return response.json()
        except ValueError as exc:
            raise TransientError(f"{what}: the answer is not JSON", backend=self.name, **where) from exc

    def list_jobs(
        self, enough: Callable[[list[dict[str, Any]]], bool] | None = None
    ) -> Iterator[dict[str, Any]]:
        """Every job of the account, page by page; stops early once ``enough(page)`` is true."""
        params: dict[str, Any] | None = {"limit": self._page_size}
        path = "/jobs"
        while True:
            response = self._request("GET", path, params=params)
            doc = self._json(response, "GET /jobs")
            page = [job for job in doc.get("jobs") or [] if isinstance(job, dict) and "id" in job]
            yield from page
            following = next(
                (
                    link.get("href")
                    for link in doc.get("links") or []
                    if isinstance(link, dict) and link.get("rel") == "next"
                ),
                None,
            )
            if not following or not page or (enough is not None and enough(page)):
                return
            path, params = following, None

    def create_job(
        self, process: Mapping[str, Any], *, title: str, description: str,
        job_options: Mapping[str, Any] | None = None, task_id: int | None = None
    ) -> str:
        """``POST /jobs``; returns the new job's id. Never retried here: see the module docstring.

        ``job_options`` go in the body's ``job_options`` property, where backends built on the
        openeo Python driver (and the `openeo` client's ``create_job``) put them.
        """
        body: dict[str, Any] = {"process": dict(process), "title": title, "description": description}
        if job_options:
            body["job_options"] = dict(job_options)
        response = self._request("POST", "/jobs", json=body, task_id=task_id)
        job_id = response.headers.get("OpenEO-Identifier")
        if not job_id:
            location = response.headers.get("Location", "")
            job_id = location.rstrip("/").rsplit("/", 1)[-1] if location else None
        if not job_id:
            raise BackendError("POST /jobs answered without a job id", backend=self.name, task_id=task_id)
        return job_id

    def start_job(self, job_id: str, *, task_id: int | None = None) -> None:
        """``POST /jobs/{id}/results``."""
        self._request("POST", f"/jobs/{job_id}/results", job_id=job_id, task_id=task_id)

    def cancel_job(self, job_id: str, *, task_id: int | None = None) -> None:
        """``DELETE /jobs/{id}/results``."""
        self._request("DELETE", f"/jobs/{job_id}/results", job_id=job_id, task_id=task_id)

    def job(self, job_id: str, *, task_id: int | None = None) -> dict[str, Any]:
        """``GET /jobs/{id}``: the job's metadata (status, usage, costs)."""
        response = self._request("GET", f"/jobs/{job_id}", job_id=job_id, task_id=task_id)
        doc = self._json(response, f"GET /jobs/{job_id}", job_id=job_id, task_id=task_id)
        return doc if isinstance(doc, dict) else {}

    def results(self, job_id: str, *, task_id: int | None = None) -> dict[str, Any]:
        """``GET /jobs/{id}/results``: the STAC item (or collection) of a finished job."""
        response = self._request("GET", f"/jobs/{job_id}/results", job_id=job_id, task_id=task_id)
        doc = self._json(response, f"GET /jobs/{job_id}/results", job_id=job_id, task_id=task_id)
        return doc if isinstance(doc, dict) else {}

    def error_logs(self, job_id: str, *, task_id: int | None = None, limit: int = 20) -> list[str]:
        """The job's error log messages (at most `limit`), best effort: [] when they cannot be read."""
        try:
            response = self._request(
                "GET",
                f"/jobs/{job_id}/logs",
                params={"level": "error", "limit": limit},
                job_id=job_id,
                task_id=task_id,
            )
            doc = self._json(response, "GET logs", job_id=job_id, task_id=task_id)
        except BackendError as exc:
            log.warning("backend %s: cannot read the error logs of job %s: %s", self.name, job_id, exc)
            return []
        entries = doc.get("logs") if isinstance(doc, dict) else None
        return [
            str(entry.get("message"))
            for entry in entries or []
            if isinstance(entry, dict) and entry.get("level", "error") == "error"
        ][:limit]

    def me(self) -> dict[str, Any]:
        """``GET /me``: the account, and on some backends its job limits."""
        doc = self._json(self._request("GET", "/me"), "GET /me")
        return doc if isinstance(doc, dict) else {}

    def validate(self, process: Mapping[str, Any]) -> list[str] | None:
        """``POST /validation`` of ``process`` (what ``POST /jobs`` sends as ``process``): the
        backend's messages (``[]``: valid), or None where the backend has no such endpoint (it is not
        in the capabilities' ``endpoints``, or answers 404, 405 or 501)."""
        try:
            listed = self.connection.capabilities().supports_endpoint("/validation", method="POST")
        except (requests.RequestException, OpenEoApiPlainError) as exc:
            raise _request_error(exc, "GET /", self.name) from exc
        if not listed:
            return None
        try:
            response = self._request("POST", "/validation", json=dict(process))
        except PermanentError as exc:
            if exc.status in _NO_ENDPOINT:
                return None
            raise
        doc = self._json(response, "POST /validation")
        errors = doc.get("errors") if isinstance(doc, dict) else None
        if not isinstance(errors, list):
            raise TransientError("POST /validation: the answer has no list of errors", backend=self.name)
        return [
            f"{error.get('code') or 'Unknown'}: {error.get('message') or ''}".strip()
            if isinstance(error, dict) else str(error)
            for error in errors
        ]

    def save_process(self, process_id: str, definition: Mapping[str, Any]) -> None:
        """``PUT /process_graphs/{id}``: store a UDP on the backend as the account's own process."""
        self._request("PUT", f"/process_graphs/{process_id}", json=dict(definition))

    def download_session(self, href: str) -> requests.Session:
        """The session to fetch an asset with: authenticated only for links on the backend itself."""
        connection = self.connection
        if urlsplit(href).netloc == urlsplit(connection.root_url).netloc:
            # One pooled session for the backend's own links; its auth follows the connection's,
            # which changes when a token is renewed.
            self._backend_session.auth = connection.auth
            return self._backend_session
        return self._download_session


def _error_body(response: requests.Response) -> tuple[str, str]:
    try:
        doc = response.json()
    except ValueError:
        return "Unknown", response.text[:200].strip() or response.reason or ""
    if isinstance(doc, dict):
        return str(doc.get("code") or "Unknown"), str(doc.get("message") or "")
    return "Unknown", str(doc)[:200]


def retry_after(response: requests.Response) -> float | None:
    """``Retry-After`` in seconds (delta or HTTP date), or None."""
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - datetime.now(when.tzinfo)).total_seconds())


def _request_error(exc: Exception, what: str, backend: str) -> BackendError:
    """A failed request the `openeo` client made itself (not a login), classified like `_request`'s."""
    if isinstance(exc, requests.RequestException):
        return TransientError(f"{what}: {type(exc).__name__}: {exc}", backend=backend)
    status = getattr(exc, "http_status_code", None)
    if status is not None and (status == 429 or status >= 500):
        return TransientError(f"{what}: {exc}", backend=backend, status=status)
    return PermanentError(f"{what}: {exc}", backend=backend, status=status)


def login_error(exc: Exception, backend: str) -> BackendError:
    """What a failed login means; ``exc`` is what building an authenticated connection raised.

    - no answer or a 5xx/429 from the backend itself: `TransientError`;
    - the `openeo` client's ``OidcException`` (every OIDC flow raises it or a subclass), when the
      provider could not be reached, timed out or answered 5xx/429 (the requests error is its
      cause, or the token endpoint's status is in its message): `ProviderUnavailableError`;
    - anything else the client raised (credentials refused, an unknown provider, an OIDC client
      the provider refuses, a backend without that kind of login): `AuthError`.
    """
    if isinstance(exc, requests.RequestException):
        return TransientError(f"cannot connect: {type(exc).__name__}: {exc}", backend=backend)
    status = getattr(exc, "http_status_code", None)
    if isinstance(exc, OpenEoApiPlainError):
        if status is not None and (status == 429 or status >= 500):
            return TransientError(f"cannot connect: {exc}", backend=backend, status=status)
        return AuthError(f"login refused: {_one_line(exc)}", backend=backend, status=status,
                         code=getattr(exc, "code", None))
    if isinstance(exc, OidcException) and _provider_unavailable(exc):
        return ProviderUnavailableError(f"identity provider unavailable: {_one_line(exc)}", backend=backend)
    return AuthError(f"login failed: {_one_line(exc)}", backend=backend)


def _provider_unavailable(exc: OidcException) -> bool:
    """Whether an OIDC failure may pass: no answer, a timeout, or a 5xx/429 from the provider."""
    cause: BaseException | None = exc.__cause__ or exc.__context__
    while cause is not None:
        if isinstance(cause, requests.HTTPError):
            status = cause.response.status_code if cause.response is not None else None
            return status is None or status == 429 or status >= 500
        if isinstance(cause, requests.RequestException):
            return True  # no answer, a timeout, a broken or non-JSON answer
        cause = cause.__cause__ or cause.__context__
    found = _TOKEN_STATUS.search(str(exc))
    return found is not None and (int(found.group(1)) == 429 or int(found.group(1)) >= 500)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())
