"""The MCP server: the tools, the image resources and the App over one ``Studio``, whose lifespan it
holds (``Studio.open``: the store, the upstream, the jobs, the media, the embedded simulator without a
token); besides, the relay of listen events between replicas, the notifications of jobs that end after
the call that started them, and MCP tasks in both eras (``tasks.py``, ``task_protocol.py``).
"""

from __future__ import annotations

import base64
import logging
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.resources import files
from typing import Any

import anyio
from mcp.server.mcpserver import Context, MCPServer
from mcp.types import (
    CompleteRequestParams,
    Icon,
    SetLevelRequestParams,
    SubscribeRequestParams,
    SubscriptionsListenRequestParams,
    UnsubscribeRequestParams,
)

from .._version import __version__
from ..core.operations import MODEL_TOOLS
from ..settings import Settings
from ..studio import Studio, consent
from .auth import authentication
from .bus import ReplicaBus
from .protocol import Connections, ProtocolMiddleware, completer
from .resources import ImageServer, clip_resource, image_resource
from .results import CLIP_URI_TEMPLATE, URI_TEMPLATE
from .routes import Routes, install_routes
from .scope import App, scope
from .task_protocol import HandshakeTasks, TaskListen, TasksExtension
from .tasks import Tasks
from .tools import all_tools, record_result
from .view import extension, for_plain_clients

__all__ = ["build_server", "configure_logging"]

log = logging.getLogger("mj_mcp.server")


def _instructions(settings: Settings) -> str:
    """What the model is told of the server: each tool in a few words (from the operation table), and
    how results are named."""
    tools = "; ".join(f"{t.name} {t.does}" for t in MODEL_TOOLS)
    text = (
        f"Midjourney image generation (AceDataCloud API). {tools}. Every result has a short name: refer to "
        "images by it; finished ones come with a thumbnail and are resources at mj://images/<name> "
        "(a video's clips: mj://videos/<name>/1-4)."
    )
    if settings.simulate:
        text += (
            " NOTE: no API token is configured, so images come from the built-in SIMULATOR (placeholder "
            "pictures, not Midjourney). Set ACEDATACLOUD_API_TOKEN for real images."
        )
    return text


def server_icon() -> Icon:
    """The server's icon in its implementation info (``scripts/draw-icon``): inline, so a host shows it
    without fetching anything, and small (64 px, about 1 KB) because every handshake carries it. The tools
    carry none of their own: it would repeat in every tools/list."""
    png = (files("mj_mcp.ui") / "icon.png").read_bytes()
    return Icon(src="data:image/png;base64," + base64.b64encode(png).decode(), mime_type="image/png", sizes=["64x64"])


def build_server(settings: Settings) -> MCPServer[Any]:
    """An MCP server for these settings; its lifespan owns the store, the HTTP client and the jobs."""
    guard = authentication(settings)  # None: no authentication, the local user only (SettingsError: a bad file)
    # What the spend guard asks about exists (SettingsError before any protocol otherwise).
    consent.check(settings.confirm)
    bus = ReplicaBus()  # 2026-07-28 listeners, each hearing of its own workspace only, on every replica
    connections = Connections(bus)
    routes = Routes()  # the HTTP routes beside /mcp (probes, callbacks): they see the lifespan's App
    # MCP tasks: jobs the host polls (both eras).
    tasks = Tasks(record_result)

    @asynccontextmanager
    async def lifespan(_: MCPServer[Any]) -> AsyncIterator[App]:
        token_for = guard.principals.upstream_token if guard else None
        async with Studio.open(settings, token_for=token_for) as studio:
            try:
                async with anyio.create_task_group() as tg:
                    # Listen events to and from the other replicas (Redis).
                    bus.relay_through(studio.store, tg)
                    routes.app = App(settings=studio.settings, studio=studio, connections=connections, tasks=tg)
                    try:
                        yield routes.app
                    finally:
                        # Not ready from here on.
                        routes.app = None
                    tg.cancel_scope.cancel()
            finally:
                bus.detach()

    server = ImageServer(
        "mj-mcp",
        title="Midjourney (AceDataCloud)",
        version=__version__,
        icons=[server_icon()],
        tools=all_tools(),
        instructions=_instructions(settings),
        lifespan=lifespan,
        log_level=settings.log_level,
        middleware=[ProtocolMiddleware()],
        subscriptions=bus,
        # The MCP App (view.py); MCP tasks (task_protocol.py).
        extensions=[extension(), TasksExtension(tasks)],
        auth=guard.settings if guard else None,
        token_verifier=guard.verifier if guard else None,
    )
    if guard is not None:
        guard.publish_metadata(server)
    server.resource(URI_TEMPLATE, name="image", mime_type="image/png")(image_resource)
    server.resource(CLIP_URI_TEMPLATE, name="clip", mime_type="video/mp4")(clip_resource)
    server.middleware.append(for_plain_clients)
    # 2025-11-25's tasks, which the SDK does not serve.
    server.middleware.append(HandshakeTasks(tasks))
    install_routes(server, routes)
    _serve_spec_methods(server, connections)
    # subscriptions/listen with the tasks extension's taskIds (notifications/tasks); the SDK's otherwise.
    server._lowlevel_server.add_request_handler(
        "subscriptions/listen", SubscriptionsListenRequestParams, TaskListen(bus, tasks)
    )
    return server


def _serve_spec_methods(server: ImageServer, connections: Connections) -> None:
    """logging/setLevel, resources/(un)subscribe and completion/complete, which MCPServer does not serve.
    It has no public seam for them: the SDK's own advice (``mcp.server.extension.MethodBinding``) is
    the low-level server's ``add_request_handler``, which MCPServer keeps private. The capabilities
    (logging, completions, resources.subscribe) follow from the handlers being there."""

    async def names(request: Any, prefix: str, limit: int) -> list[str]:
        _, ws = scope(Context(request_context=request, mcp_server=server))
        return await ws.names(prefix, limit)

    low = server._lowlevel_server
    low.add_request_handler("logging/setLevel", SetLevelRequestParams, connections.set_level)
    low.add_request_handler("resources/subscribe", SubscribeRequestParams, connections.subscribe)
    low.add_request_handler("resources/unsubscribe", UnsubscribeRequestParams, connections.unsubscribe)
    low.add_request_handler("completion/complete", CompleteRequestParams, completer(names))


def configure_logging(level: str) -> None:
    """Logs go to stderr, never stdout (stdout is the protocol on stdio)."""
    logging.basicConfig(stream=sys.stderr, level=level, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("httpx").setLevel(max(logging.WARNING, logging.getLevelName(level)))
