"""FastAPI dependencies: settings, upstream clients and the calling principal."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request, status

from phoenix_gateway.access import AccessPolicy, same_origin
from phoenix_gateway.auth import Authenticator, Principal, find_credential
from phoenix_gateway.metrics import AUTH_REFUSED
from phoenix_gateway.settings import GatewaySettings
from phoenix_gateway.upstream import UpstreamClient

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Only the untraced stream accepts ?token= (EventSource cannot send headers);
# elsewhere a key in the URL would end up in traces and proxy logs.
QUERY_TOKEN_PATHS = frozenset({"/v1/telemetry/stream"})
ANONYMOUS = Principal(None, "local")


# async def throughout: FastAPI runs a plain def dependency on a worker thread.
async def get_settings(request: Request) -> GatewaySettings:
    settings: GatewaySettings = request.app.state.settings
    return settings


async def get_authenticator(request: Request) -> Authenticator:
    authenticator: Authenticator = request.app.state.authenticator
    return authenticator


async def get_orchestrator(request: Request) -> UpstreamClient:
    client: UpstreamClient = request.app.state.orchestrator
    return client


async def get_telemetry(request: Request) -> UpstreamClient:
    client: UpstreamClient = request.app.state.telemetry
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
    """The caller, or 401; a cookie is honoured cross-origin only for safe methods.

    Without a credential the caller is refused, unless the local no-auth mode
    serves it (``access.AccessPolicy``): then it acts as the twin it names.
    """
    credential = find_credential(
        request.headers,
        request.query_params,
        request.cookies,
        allow_query=request.url.path in QUERY_TOKEN_PATHS,
    )
    if credential is None:
        policy: AccessPolicy = request.app.state.access
        refusal = policy.anonymous_refusal(
            request.headers, request.client.host if request.client else None
        )
        if refusal is None:
            return ANONYMOUS
        AUTH_REFUSED.labels("http", refusal).inc()
        if refusal == "missing":
            raise unauthorized()
        raise HTTPException(status.HTTP_403_FORBIDDEN, "anonymous access from here is refused")
    principal = await authenticator.authenticate(credential)
    if principal is None:
        AUTH_REFUSED.labels("http", "invalid").inc()
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
    if principal.twin_id is not None and twin_id != principal.twin_id:
        AUTH_REFUSED.labels("http", "twin_mismatch").inc()
        raise HTTPException(
            status_code=status.HTTP_403_FORBIDDEN,
            detail="the credential is not valid for this twin",
        )


def acting_twin(principal: Principal, named: object) -> str:
    """The twin a request acts for: the credential's, or (anonymous local) the one it names."""
    require_same_twin(principal, principal.twin_id if named is None else named)
    twin = principal.twin_id if principal.twin_id is not None else named
    if not isinstance(twin, str) or not twin:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "twin_id is required")
    return twin


SettingsDep = Annotated[GatewaySettings, Depends(get_settings)]
AuthenticatorDep = Annotated[Authenticator, Depends(get_authenticator)]
OrchestratorDep = Annotated[UpstreamClient, Depends(get_orchestrator)]
TelemetryDep = Annotated[UpstreamClient, Depends(get_telemetry)]
PrincipalDep = Annotated[Principal, Depends(require_principal)]
