"""Authentication of the local backend: HTTP basic and a local OIDC provider that grants
client-credentials tokens, so `authenticate_oidc_client_credentials` works offline.

Bearer tokens arrive as openEO clients send them: `basic//<token>` or `oidc/<provider>/<token>`.
Tokens are random, kept in the state database with their expiry, and never logged.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import secrets
import time
from collections.abc import Callable

import sqlalchemy as sa

from openeo_upscale.backend import errors as e
from openeo_upscale.backend.config import OIDC_PROVIDER_ID, BackendConfig, User
from openeo_upscale.backend.state import tokens


class Authenticator:
    """Issues and checks access tokens."""

    def __init__(
        self, engine: sa.Engine, config: BackendConfig, clock: Callable[[], float] = time.time
    ) -> None:
        self._db = engine
        self._config = config
        self._clock = clock

    def basic_login(self, authorization: str | None) -> str:
        """Check an `Authorization: Basic ...` header and issue a token for `basic//`."""
        if not authorization or not authorization.lower().startswith("basic "):
            raise e.AuthenticationRequired("Unauthorized: HTTP basic credentials required.")
        try:
            name, _, password = base64.b64decode(authorization[6:].strip()).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise e.CredentialsInvalid("Credentials are not correct.") from exc
        user = self._config.user(name)
        if user is None or user.password is None or not hmac.compare_digest(user.password, password):
            raise e.CredentialsInvalid("Credentials are not correct.")
        return self._issue(user, "basic")

    def client_credentials(self, client_id: str | None, client_secret: str | None) -> tuple[str, int]:
        """OIDC client-credentials grant: (access token, lifetime in seconds)."""
        user = next((u for u in self._config.accounts if u.client_id and u.client_id == client_id), None)
        if (
            user is None
            or not user.client_secret
            or not client_secret
            or not hmac.compare_digest(user.client_secret, client_secret)
        ):
            raise e.CredentialsInvalid("invalid_client")
        return self._issue(user, "oidc"), int(self._config.token_ttl)

    def user_for(self, authorization: str | None) -> str:
        """The user name behind an `Authorization: Bearer ...` header."""
        if not authorization:
            raise e.AuthenticationRequired("Unauthorized.")
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() != "bearer":
            raise e.AuthenticationSchemeInvalid("Authentication method not supported.")
        method, _, rest = value.strip().partition("/")
        if method == "basic":
            provider, _, token = rest.partition("/")
            if provider:
                raise e.TokenInvalid("Authorization token has expired or is invalid.")
        elif method == "oidc":
            provider, _, token = rest.partition("/")
            if provider != OIDC_PROVIDER_ID:
                raise e.TokenInvalid(f"Unknown OIDC provider '{provider}'.")
        else:
            raise e.AuthenticationSchemeInvalid("Authentication method not supported.")
        with self._db.connect() as conn:
            row = conn.execute(
                sa.select(tokens.c.user, tokens.c.method, tokens.c.expires).where(tokens.c.token == token)
            ).first()
        if row is None or row.method != method or row.expires < self._clock():
            raise e.TokenInvalid("Authorization token has expired or is invalid. Please authenticate again.")
        return str(row.user)

    def _issue(self, user: User, method: str) -> str:
        token = secrets.token_urlsafe(24)
        now = self._clock()
        with self._db.begin() as conn:
            conn.execute(sa.delete(tokens).where(tokens.c.expires < now))
            conn.execute(
                sa.insert(tokens).values(
                    token=token, user=user.name, method=method, expires=now + self._config.token_ttl
                )
            )
        return token
