"""Bearer-token auth of the generate route (contract 5, Q26): constant-time comparison, never logged."""

from __future__ import annotations

import hmac
import logging

from fastapi import Request

from .errors import RunnerError
from .routes import Route
from .settings import RunnerSettings

log = logging.getLogger("runner_sdk")


def bearer(request: Request) -> str | None:
    """The credential of an `Authorization: Bearer <token>` header, or None."""
    header = request.headers.get("authorization")
    if not header:
        return None
    scheme, _, credential = header.partition(" ")
    return credential.strip() if scheme.lower() == "bearer" else None


def _matches(request: Request, token: str) -> bool:
    given = bearer(request)
    return given is not None and hmac.compare_digest(given.encode(), token.encode())


def check_auth(request: Request, settings: RunnerSettings, route: Route) -> None:
    """Raises RunnerError(401, route.auth_message) when AUTH_TOKEN is set and the request lacks it."""
    if settings.auth_token and not _matches(request, settings.auth_token):
        raise RunnerError(401, route.auth_message, headers={"WWW-Authenticate": "Bearer"})


class WrongTokenWarning:
    """go-livepeer sends its token to /health too; those routes accept anything, but a token that does not
    match AUTH_TOKEN is said once in the log, since that caller's jobs will get 401 (contract 5)."""

    def __init__(self, settings: RunnerSettings):
        self.settings = settings
        self.warned = False

    def __call__(self, request: Request) -> None:
        token = self.settings.auth_token
        if self.warned or not token or "authorization" not in request.headers or _matches(request, token):
            return
        self.warned = True
        log.warning("a bearer token that does not match AUTH_TOKEN reached %s: jobs from that caller will "
                    "get 401 (check the aiModels.json token)", request.url.path)
