"""Account routes: HTTP basic and OIDC credentials, the local OIDC provider (``/oidc``) and ``/me``."""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, Header, Request
from fastapi.responses import JSONResponse

from openeo_upscale.backend import errors as e
from openeo_upscale.backend.config import OIDC_PROVIDER_ID
from openeo_upscale.backend.jobs import JobStatus
from openeo_upscale.backend.routes._common import API_PREFIX, BackendDep, User, base_url

router = APIRouter()


def _issuer(request: Request) -> str:
    return str(request.base_url).rstrip("/") + "/oidc"


@router.get(API_PREFIX + "/credentials/basic")
def credentials_basic(backend: BackendDep,
                      authorization: Annotated[str | None, Header()] = None) -> dict[str, Any]:
    return {"access_token": backend.auth.basic_login(authorization)}


@router.get(API_PREFIX + "/credentials/oidc")
def credentials_oidc(request: Request) -> dict[str, Any]:
    issuer = _issuer(request)
    return {
        "providers": [
            {
                "id": OIDC_PROVIDER_ID,
                "issuer": issuer,
                "title": "Local OIDC provider",
                "scopes": ["openid"],
                "links": [{"rel": "about", "href": issuer + "/.well-known/openid-configuration"}],
            }
        ]
    }


@router.get("/oidc/.well-known/openid-configuration")
def oidc_configuration(request: Request) -> dict[str, Any]:
    issuer = _issuer(request)
    return {
        "issuer": issuer,
        "token_endpoint": issuer + "/token",
        "authorization_endpoint": issuer + "/authorize",
        "jwks_uri": issuer + "/jwks",
        "scopes_supported": ["openid"],
        "grant_types_supported": ["client_credentials"],
        "response_types_supported": ["token"],
        "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
    }


@router.post("/oidc/token")
async def oidc_token(request: Request, backend: BackendDep) -> JSONResponse:
    # OAuth token requests are urlencoded forms; parsed here, as Starlette's `request.form()`
    # needs python-multipart, which is not a dependency.
    form = dict(parse_qsl((await request.body()).decode("utf-8", "replace")))
    grant = form.get("grant_type")
    client_id, client_secret = form.get("client_id"), form.get("client_secret")
    header = request.headers.get("authorization", "")
    if header.lower().startswith("basic ") and not client_secret:
        try:
            client_id, _, client_secret = base64.b64decode(header[6:]).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return JSONResponse({"error": "invalid_client"}, status_code=401)
    if grant != "client_credentials":
        return JSONResponse({"error": "unsupported_grant_type"}, status_code=400)
    try:
        token, ttl = backend.auth.client_credentials(
            str(client_id) if client_id else None, str(client_secret) if client_secret else None
        )
    except e.ApiError:
        return JSONResponse({"error": "invalid_client"}, status_code=401)
    return JSONResponse({"access_token": token, "token_type": "Bearer", "expires_in": ttl})


@router.get(API_PREFIX + "/me")
def me(request: Request, user: User, backend: BackendDep) -> dict[str, Any]:
    config = backend.config
    slots = config.slots_for(user)
    counts = backend.jobs.active_counts(user)
    busy = counts[JobStatus.QUEUED.value] + counts[JobStatus.RUNNING.value]
    queue = config.queue_limit
    return {
        "user_id": user,
        "name": user,
        "default_plan": "free",
        "limits": {
            "running_jobs": {"max": slots, "remaining": max(0, slots - counts[JobStatus.RUNNING.value])},
            "queued_jobs": {"max": queue, "remaining": None if queue is None else max(0, queue - busy)},
            "concurrent_job_policy": config.limit_policy.value,
        },
        "links": [{"rel": "related", "href": f"{base_url(request)}/jobs", "title": "Batch jobs"}],
    }
