"""Serving over streamable HTTP: who may connect, and from which pages.

Without authentication the HTTP mode is single-user by definition: it binds only to a loopback address
(anything else is refused at start, saying why) and every client is the local user. With authentication
(``auth.py``: a team file, OAuth, or both) any address may be bound, and every request to ``/mcp``
must carry a bearer token. The DNS-rebinding check is on for every bind: a request must name this
server in ``Host`` (a loopback name, one of ``MJ_MCP_ALLOWED_HOSTS``, or the host of
``MJ_MCP_RESOURCE_URL``), and a browser page may call it only from such an origin. A request body is
at most ``MAX_BODY_BYTES``: room for the largest mask ``inpaint_region`` accepts. Every SSE stream is
resumable (``streams.py``): event ids, a retry hint, and replay within its own session.
"""

from __future__ import annotations

import ipaddress
from typing import Any
from urllib.parse import urlsplit

from mcp.server.mcpserver import MCPServer
from mcp.server.transport_security import TransportSecuritySettings

from ..core.masks import MAX_MASK_BYTES
from ..errors import SettingsError
from ..settings import Settings
from .streams import RETRY_MS, SessionEventStore, SessionScope

LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")
# The largest mask (MAX_MASK_BYTES decoded) as base64 is 4/3 of it; a prompt and the JSON-RPC envelope
# fit in the MiB on top. The SDK's default, 4 MiB, would refuse masks the tool accepts.
MAX_BODY_BYTES = MAX_MASK_BYTES * 4 // 3 + (1 << 20)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def transport_security(settings: Settings, port: int) -> TransportSecuritySettings:
    public = [urlsplit(settings.resource_url).netloc] if settings.resource_url else []
    named = settings.allowed_hosts + [h for h in public if h not in settings.allowed_hosts]
    hosts = [f"{name}:{port}" for name in LOOPBACK_NAMES] + list(LOOPBACK_NAMES) + named
    origins = [f"http://{name}:{port}" for name in LOOPBACK_NAMES] + [
        origin for host in named for origin in (f"https://{host}", f"http://{host}")
    ]
    return TransportSecuritySettings(enable_dns_rebinding_protection=True, allowed_hosts=hosts, allowed_origins=origins)


def check_bind(host: str, settings: Settings) -> None:
    """Unauthenticated HTTP serves the one local user: a bind others can reach needs authentication."""
    if not is_loopback(host) and not settings.authenticated:
        raise SettingsError(
            f"--host {host} would let anyone who can reach it use your images and your API balance: without "
            "authentication the HTTP mode serves only loopback (127.0.0.1, ::1)",
            next_step="Bind to 127.0.0.1, or set MJ_MCP_AUTH_TOKENS_FILE or MJ_MCP_OAUTH_ISSUER "
            '(README, "Deploy for a team").',
        )


def serve_http(server: MCPServer[Any], settings: Settings, host: str, port: int) -> None:
    import uvicorn

    check_bind(host, settings)
    app = server.streamable_http_app(
        event_store=SessionEventStore(),
        retry_interval=RETRY_MS,
        host=host,
        transport_security=transport_security(settings, port),
        max_request_body_size=MAX_BODY_BYTES,
    )
    uvicorn.run(SessionScope(app), host=host, port=port, log_level=settings.log_level.lower())
