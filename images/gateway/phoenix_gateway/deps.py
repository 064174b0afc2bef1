"""FastAPI dependencies: settings, upstream clients and the authenticated caller."""

from __future__ import annotations

from typing import Annotated

import httpx
from fastapi import Depends, HTTPException, Request, status

from phoenix_gateway.auth import Authenticator, Principal, find_credential, same_origin
from phoenix_gateway.observability import AUTH_REFUSED
from phoenix_gateway.settings import GatewaySettings

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Only the untraced stream accepts ?token= (EventSource cannot send headers);
# elsewhere a key in the URL would end up in traces and proxy logs.
QUERY_TOKEN_PATHS = frozenset({"/v1/telemetry/stream"})


def get_settings(request: Request) -> GatewaySettings:
    settings: GatewaySettings = request.app.state.settings
    return settings


def get_authenticator(request: Request) -> Authenticator:
    authenticator: Authenticator = request.app.state.authenticator
    return authenticator


def get_orchestrator(request: Request) -> httpx.AsyncClient:
    client: httpx.AsyncClient = request.app.state.orchestrator
    return client


def get_telemetry(request: Request) -> httpx.AsyncClient:
    client: httpx.AsyncClient = request.app.state.telemetry
    return client


def unauthorized(detail: str = "authentication required") -> HTTPException:
    return HTTPException(
        status_code=status.HTTP_401_UNAUTHORIZED,
        detail=detail,
        headers={"WWW-Authenticate": "Bearer"},
    )


async def require_principal(
    request: Request, authenticator: Annotated[Authenticator, Depends(get_authenticator)]
) -> Principal:
    """The caller, or 401; a cookie is honoured cross-origin only for safe methods."""
    credential = find_credential(
        request.headers,
        request.query_params,
        request.cookies,
        allow_query=request.url.path in QUERY_TOKEN_PATHS,
    )
    principal = await authenticator.authenticate(credential)
    if principal is None:
        AUTH_REFUSED.labels("http", "missing" if credential is None else "invalid").inc()
        raise unauthorized()
    if (
        principal.source == "cookie"
        and request.method not in SAFE_METHODS
        and not same_origin(request.headers)
    ):
        AUTH_REFUSED.labels("http", "cross_origin").inc()
        raise unauthorized("cross-origin request with a session cookie")
    return principal


def require_same_twin(principal: Principal, twin_id: object) -> None:
    """403 unless ``twin_id`` (from a path, query or body) is the caller's twin."""
    if twin_id != principal.twin_id:
        AUTH_REFUSED.labels("http", "twin_mismatch").inc()
        raise HTTPException(
            status_code=status.HTTP_403_FORBIDDEN,
            detail="the credential is not valid for this twin",
        )


SettingsDep = Annotated[GatewaySettings, Depends(get_settings)]
AuthenticatorDep = Annotated[Authenticator, Depends(get_authenticator)]
OrchestratorDep = Annotated[httpx.AsyncClient, Depends(get_orchestrator)]
TelemetryDep = Annotated[httpx.AsyncClient, Depends(get_telemetry)]
PrincipalDep = Annotated[Principal, Depends(require_principal)]
