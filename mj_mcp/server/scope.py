"""Who is calling, and what this server holds for the call: the typed lifespan state and the workspace.

Identity comes from authentication, never from a header the client can set. An authenticated HTTP
caller is a principal (``auth.py``), with a workspace of its own and its limits. stdio is one local
user, and so is unauthenticated HTTP, which binds only to loopback: both use the workspace
``MJ_MCP_WORKSPACE``, so names persist across restarts and two clients on one machine see the same images.
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, TypeAlias

from anyio.abc import TaskGroup
from mcp.server.mcpserver import Context
from mcp.server.subscriptions import InMemorySubscriptionBus, ServerEvent

from ..settings import Settings
from ..studio import Call, Studio
from ..workspaces import Workspace
from .auth import caller
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


def caller_call(ctx: Ctx) -> Call:
    """A studio call in the caller's workspace, with its principal's limits: what every tool starts from."""
    return call_in(app_of(ctx))


def call_in(app: App) -> Call:
    """A studio call for the request being served (its principal's workspace and limits, or the local
    user's), for handlers that get the lifespan's ``App`` rather than a tool's context."""
    principal = caller()
    if principal is None:
        return app.studio.call(app.settings.workspace)
    return app.studio.call(principal.workspace, principal.limits)


def scope(ctx: Ctx) -> tuple[Studio, Workspace]:
    """The studio and the caller's workspace (resources and completions, which run no operation)."""
    call = caller_call(ctx)
    return call.studio, call.workspace


_publisher: ContextVar[str | None] = ContextVar("mj_mcp_publisher", default=None)


def _callers_workspace() -> str | None:
    principal = caller()
    return principal.workspace if principal is not None else None  # None: the local user


class WorkspaceBus(InMemorySubscriptionBus):
    """2026-07-28 listen streams hear only of their own user's images. The SDK's bus gives every event
    to every stream, and image URIs are names, which each user chooses; here a stream is registered
    with the workspace of the request that opened it, and an event reaches only the streams of the
    workspace whose request published it (a job's end is published from the task its request
    started, which carries that request's identity)."""

    async def publish(self, event: ServerEvent) -> None:
        await self.publish_for(self.publishing_workspace(), event)

    async def publish_for(self, workspace: str | None, event: ServerEvent) -> None:
        """Publish as ``workspace``'s (``bus.ReplicaBus``: an event another replica's request published)."""
        token = _publisher.set(workspace)
        try:
            await super().publish(event)  # listeners run here, synchronously: they see _publisher
        finally:
            _publisher.reset(token)

    @staticmethod
    def publishing_workspace() -> str | None:
        """The workspace an event published now belongs to: the calling request's (None: the local user)."""
        return _callers_workspace()

    def subscribe(self, listener: Callable[[ServerEvent], None]) -> Callable[[], None]:
        mine = _callers_workspace()

        def heard(event: ServerEvent) -> None:
            if _publisher.get() == mine:
                listener(event)

        return super().subscribe(heard)
