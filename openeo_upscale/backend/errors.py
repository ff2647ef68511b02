"""openEO API errors raised by the local backend and rendered as `{id, code, message}`.

Codes and HTTP statuses follow the openEO API's `errors.json`; only the ones this backend
uses are listed.
"""

from __future__ import annotations

import uuid

from openeo_upscale.errors import UpscaleError


class ApiError(UpscaleError):
    """An openEO API error: HTTP status, openEO error code and a message for the user."""

    status = 500
    code = "Internal"

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status
        if code is not None:
            self.code = code
        self.headers = headers or {}
        self.id = uuid.uuid4().hex

    def to_dict(self) -> dict[str, str]:
        return {"id": self.id, "code": self.code, "message": self.message}


def _error(name: str, status: int) -> type[ApiError]:
    return type(name, (ApiError,), {"status": status, "code": name, "__doc__": f"openEO {name}."})


NotFound = _error("NotFound", 404)
AuthenticationRequired = _error("AuthenticationRequired", 401)
AuthenticationSchemeInvalid = _error("AuthenticationSchemeInvalid", 403)
TokenInvalid = _error("TokenInvalid", 403)
CredentialsInvalid = _error("CredentialsInvalid", 403)
CollectionNotFound = _error("CollectionNotFound", 404)
JobNotFound = _error("JobNotFound", 404)
JobLocked = _error("JobLocked", 400)
JobNotFinished = _error("JobNotFinished", 400)
JobNotStarted = _error("JobNotStarted", 400)
ProcessGraphNotFound = _error("ProcessGraphNotFound", 404)
ProcessGraphMissing = _error("ProcessGraphMissing", 400)
ProcessGraphInvalid = _error("ProcessGraphInvalid", 400)
ProcessUnsupported = _error("ProcessUnsupported", 400)
ProcessParameterRequired = _error("ProcessParameterRequired", 400)
ProcessParameterInvalid = _error("ProcessParameterInvalid", 400)
ProcessParameterUnsupported = _error("ProcessParameterUnsupported", 400)
PredefinedProcessExists = _error("PredefinedProcessExists", 400)
PropertyNotEditable = _error("PropertyNotEditable", 400)
FileNotFound = _error("FileNotFound", 404)
FileLocked = _error("FileLocked", 400)
BadRequest = _error("BadRequest", 400)
ConcurrentJobLimit = _error("ConcurrentJobLimit", 400)
PayloadTooLarge = _error("PayloadTooLarge", 413)
TooManyRequests = _error("TooManyRequests", 429)
ServiceUnavailable = _error("ServiceUnavailable", 503)
Internal = _error("Internal", 500)
