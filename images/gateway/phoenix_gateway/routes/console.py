"""The web console: its static files (no authentication) and its session cookie.

The console logs in by posting an API key to ``/api/session``, which answers
with an HttpOnly, SameSite=Strict cookie holding a gateway-signed session token
(never the key itself). For ``make run`` only, ``GATEWAY_LOCAL_CONSOLE_AUTOLOGIN``
makes ``GET /`` set that cookie for a loopback visitor whose Host header is a
loopback name, so the local console opens without pasting the key.
"""

from __future__ import annotations

from importlib import resources
from typing import Annotated

from fastapi import APIRouter, Body, Request, Response
from fastapi.responses import FileResponse

from phoenix_gateway.access import LOOPBACK_NAMES, host_name, is_loopback_address
from phoenix_gateway.auth import COOKIE_NAME, Credential
from phoenix_gateway.deps import AuthenticatorDep, PrincipalDep, SettingsDep, unauthorized
from phoenix_gateway.metrics import AUTH_REFUSED

router = APIRouter(tags=["console"])
STATIC_DIR = resources.files("phoenix_gateway") / "static"


def is_local_visit(request: Request) -> bool:
    """A loopback client asking for a loopback host name (a DNS-rebound name is refused)."""
    client = request.client.host if request.client else None
    host = host_name(request.headers.get("host", "")).lower()
    return is_loopback_address(client) and host in LOOPBACK_NAMES


def _set_session_cookie(request: Request, response: Response, token: str, max_age: int) -> None:
    response.set_cookie(
        COOKIE_NAME,
        token,
        max_age=max_age,
        path="/",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


@router.get("/", include_in_schema=False)
async def index(
    request: Request, settings: SettingsDep, authenticator: AuthenticatorDep
) -> Response:
    response = FileResponse(str(STATIC_DIR / "index.html"), media_type="text/html")
    response.headers["Cache-Control"] = "no-store"
    if settings.local_console_autologin and is_local_visit(request):
        current = await authenticator.authenticate(
            Credential(request.cookies.get(COOKIE_NAME, ""), "cookie")
        )
        twin = settings.local_console_twin or (
            authenticator.api_keys.twins[0] if authenticator.api_keys else None
        )
        if twin is not None and (current is None or current.twin_id != twin):
            sessions = authenticator.sessions
            _set_session_cookie(request, response, sessions.issue(twin), sessions.ttl_seconds)
    return response


@router.post("/api/session")
async def login(
    request: Request,
    response: Response,
    authenticator: AuthenticatorDep,
    api_key: Annotated[str, Body(embed=True, min_length=1, max_length=8192)],
) -> dict[str, str]:
    """Exchange an API key (or a JWT) for the console's session cookie."""
    principal = await authenticator.authenticate(Credential(api_key, "header"))
    if principal is None or principal.twin_id is None:
        AUTH_REFUSED.labels("http", "invalid").inc()
        raise unauthorized("invalid API key")
    sessions = authenticator.sessions
    _set_session_cookie(request, response, sessions.issue(principal.twin_id), sessions.ttl_seconds)
    return {"twin_id": principal.twin_id}


@router.delete("/api/session", status_code=204)
async def logout(response: Response) -> None:
    response.delete_cookie(COOKIE_NAME, path="/", httponly=True, samesite="strict")


@router.get("/api/whoami")
async def whoami(principal: PrincipalDep) -> dict[str, str]:
    """The twin the presented credential acts for (the console builds its socket URL from it)."""
    if principal.twin_id is None:  # anonymous (local no-auth mode): no twin of its own
        raise unauthorized()
    return {"twin_id": principal.twin_id, "method": principal.method}
