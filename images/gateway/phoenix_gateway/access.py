"""Where a request may come from: browser origins and the local no-auth mode.

Authentication stays on by default. Two settings open the gateway to a browser
UI served from another origin (the original's React UI on :3000):

- ``GATEWAY_CORS_ORIGINS`` lists the origins whose pages may call the gateway:
  CORS headers on HTTP routes and the telemetry stream, and, in the local mode,
  WebSockets from those pages. Such a UI can present a key as ``?token=`` (the
  telemetry stream, the WebSocket) or a header (HTTP).
- ``GATEWAY_LOCAL_NO_AUTH=true`` lets a caller that presents no credential act
  as the twin it names, as the original did. The settings refuse it unless the
  gateway listens on a loopback address, and every anonymous request must also
  come from a loopback client, name a loopback ``Host`` (a DNS-rebound name is
  refused) and carry no ``Origin`` or this gateway's own or an allowed one: a
  WebSocket is not subject to CORS, so without that check any web page the user
  opens could drive the twin, approvals included.

What the local mode trusts: every local user and process on the machine (they
can open a loopback connection and set any header a browser cannot forge),
which is what a developer's own machine wants and nothing else does.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "[::1]", "::1"})
Refusal = Literal["missing", "not_local", "cross_origin"]


def host_name(host: str) -> str:
    """``Host`` without its port (IPv6 literals keep their brackets)."""
    if host.startswith("["):
        return host.split("]", 1)[0] + "]"
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def is_loopback_address(address: str | None) -> bool:
    try:
        return address is not None and ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def same_origin(headers: Mapping[str, str]) -> bool:
    """Whether a browser request's Origin (if any) is this host."""
    origin = headers.get("origin")
    if origin is None:
        return True
    return origin.split("://", 1)[-1].rstrip("/").lower() == headers.get("host", "").lower()


@dataclass(frozen=True)
class AccessPolicy:
    """The gateway's origin allowlist and whether anonymous local callers are served."""

    cors_origins: frozenset[str] = frozenset()
    local_no_auth: bool = False

    def origin_allowed(self, headers: Mapping[str, str]) -> bool:
        """No Origin (not a browser), this gateway's own, or one in GATEWAY_CORS_ORIGINS."""
        origin = headers.get("origin")
        return origin is None or same_origin(headers) or origin.lower() in self.cors_origins

    def anonymous_refusal(
        self, headers: Mapping[str, str], client_host: str | None
    ) -> Refusal | None:
        """Why a caller without a credential is refused, or None when the local mode serves it."""
        if not self.local_no_auth:
            return "missing"
        if not is_loopback_address(client_host):
            return "not_local"
        if host_name(headers.get("host", "")).lower() not in LOOPBACK_NAMES:
            return "not_local"
        if not self.origin_allowed(headers):
            return "cross_origin"
        return None
