"""Serving over streamable HTTP: who may connect, and from which pages.

Without authentication the HTTP mode is single-user by definition: it binds only to a loopback address
(anything else is refused at start, saying why) and every client is the local user. The DNS-rebinding
check is on for every bind: a request must name this server in ``Host`` (a loopback name, or one of
``MJ_MCP_ALLOWED_HOSTS``), and a browser page may call it only from such an origin. Every SSE stream
is resumable (``streams.py``): event ids, a retry hint, and replay within its own session.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from mcp.server.mcpserver import MCPServer
from mcp.server.transport_security import TransportSecuritySettings

from ..errors import SettingsError
from ..settings import Settings
from .streams import RETRY_MS, SessionEventStore, SessionScope

LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def transport_security(settings: Settings, port: int) -> TransportSecuritySettings:
    hosts = [f"{name}:{port}" for name in LOOPBACK_NAMES] + list(LOOPBACK_NAMES) + settings.allowed_hosts
    origins = [f"http://{name}:{port}" for name in LOOPBACK_NAMES] + [
        origin for host in settings.allowed_hosts for origin in (f"https://{host}", f"http://{host}")]
    return TransportSecuritySettings(enable_dns_rebinding_protection=True, allowed_hosts=hosts, allowed_origins=origins)


def check_bind(host: str) -> None:
    """Unauthenticated HTTP serves the one local user: a bind others can reach is refused."""
    if not is_loopback(host):
        raise SettingsError(
            f"--host {host} would let anyone who can reach it use your images and your API balance: without "
            "authentication the HTTP mode serves only loopback (127.0.0.1, ::1)",
            next_step="Bind to 127.0.0.1, or put an authenticating proxy in front.")


def serve_http(server: MCPServer[Any], settings: Settings, host: str, port: int) -> None:
    import uvicorn

    check_bind(host)
    app = server.streamable_http_app(event_store=SessionEventStore(), retry_interval=RETRY_MS, host=host,
                                     transport_security=transport_security(settings, port))
    uvicorn.run(SessionScope(app), host=host, port=port, log_level=settings.log_level.lower())
