"""Who is calling, and what this server holds for the call: the typed lifespan state and the workspace.

Identity comes from the transport, never from a header the client can set: stdio is one local user, and
so is unauthenticated HTTP, which binds only to loopback. Both use the workspace ``MJ_MCP_WORKSPACE``,
so names persist across restarts and two clients on one machine see the same images.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeAlias

from anyio.abc import TaskGroup
from mcp.server.mcpserver import Context

from ..settings import Settings
from ..studio import Studio
from ..workspaces import Workspace
from .protocol import Connections


@dataclass
class App:
    """What the lifespan holds for every request."""

    settings: Settings
    studio: Studio
    connections: Connections  # what each client connection asked for (log level, subscriptions)
    tasks: TaskGroup  # notifications about jobs that end after the call that started them


Ctx: TypeAlias = Context[App, Any]


def app_of(ctx: Ctx) -> App:
    return ctx.request_context.lifespan_context


def workspace_key(ctx: Ctx) -> str:
    """The caller's workspace: the local user's."""
    return app_of(ctx).settings.workspace


def scope(ctx: Ctx) -> tuple[Studio, Workspace]:
    """The studio and the caller's workspace: what every tool starts from."""
    app = app_of(ctx)
    return app.studio, app.studio.workspace(workspace_key(ctx))
