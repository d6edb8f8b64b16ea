"""The protocol seam: what each negotiated version may receive, and what the server says it does.

MCP hosts speak every version from 2024-11-05 to 2026-07-28, and the SDK validates every handshake
version's results against the 2025-11-25 schema, so a `resource_link` reaches a 2025-03-26 client
that then refuses the whole result. ``CONTENT_SINCE`` is the one table of which content block a
version knows; ``ProtocolMiddleware`` applies it to every result on the way out and makes the
declared capabilities true (resources.listChanged, subscriptions, logging, completions; no empty
prompts capability). ``Peers`` keeps what each handshake-era connection asked for (its log level,
its resource subscriptions) and the session to reach it when a job finishes after the request.
"""

from __future__ import annotations

import logging
import warnings
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.session import ServerSession
from mcp.shared.exceptions import MCPDeprecationWarning
from mcp.shared.subscriptions import ResourceUpdated
from mcp.types import (
    CompleteRequestParams,
    CompleteResult,
    Completion,
    EmptyResult,
    ResourceTemplateReference,
    SetLevelRequestParams,
    SubscribeRequestParams,
    UnsubscribeRequestParams,
)

log = logging.getLogger("mj_mcp.protocol")

# Logging is deprecated as of 2026-07-28 but it is what every handshake-era client has; the SDK
# warns on each use, attributed to the calling module, so the filter names this module only.
warnings.filterwarnings("ignore", category=MCPDeprecationWarning, module=r"mj_mcp\.protocol")

# The version that introduced each content block type (the spec's schema for each version).
CONTENT_SINCE = {"text": "2024-11-05", "image": "2024-11-05", "resource": "2024-11-05",
                 "audio": "2025-03-26", "resource_link": "2025-06-18"}
LEVELS = ("debug", "info", "notice", "warning", "error", "critical", "alert", "emergency")
MAX_COMPLETIONS = 100  # the spec's cap on completion values
MAX_SUBSCRIPTIONS = 1000  # per connection: twice a workspace's images
MAX_PEERS = 10_000  # the SDK's default cap on HTTP sessions


def knows(version: str | None, block_type: str) -> bool:
    """Whether a client at ``version`` can parse a content block of ``block_type``. Date strings
    compare in order; an unknown version (a newer one) gets everything."""
    since = CONTENT_SINCE.get(block_type)
    return since is None or version is None or version >= since


def content_for(version: str | None, blocks: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    return [b for b in blocks if knows(version, str(b.get("type")))]


def connection_key(ctx: ServerRequestContext[Any, Any]) -> str:
    """One handshake-era connection: its HTTP session, else the process (stdio, in memory)."""
    headers = getattr(ctx.request, "headers", None) or {}
    session = headers.get("mcp-session-id")
    return f"http:{session}" if session else "default"


@dataclass
class Peer:
    """What one connection asked for, and its session for notifications after its request ended."""
    level: str | None = None  # None: the client never called logging/setLevel, so no log messages
    subscriptions: set[str] = field(default_factory=set)
    session: ServerSession | None = None

    def wants(self, level: str) -> bool:
        return self.level is not None and LEVELS.index(level) >= LEVELS.index(self.level)


class Peers:
    """Handshake-era connections by ``connection_key``, least recently seen first out."""

    def __init__(self, limit: int = MAX_PEERS) -> None:
        self._peers: OrderedDict[str, Peer] = OrderedDict()
        self._limit = limit

    def of(self, ctx: ServerRequestContext[Any, Any]) -> Peer:
        key = connection_key(ctx)
        peer = self._peers.pop(key, None) or Peer()
        self._peers[key] = peer
        while len(self._peers) > self._limit:
            self._peers.popitem(last=False)
        peer.session = ctx.session
        return peer

    def get(self, key: str) -> Peer | None:
        return self._peers.get(key)

    async def set_level(self, ctx: ServerRequestContext[Any, Any], params: SetLevelRequestParams) -> EmptyResult:
        self.of(ctx).level = params.level
        return EmptyResult()

    async def subscribe(self, ctx: ServerRequestContext[Any, Any], params: SubscribeRequestParams) -> EmptyResult:
        subscriptions = self.of(ctx).subscriptions
        if len(subscriptions) < MAX_SUBSCRIPTIONS:  # past the cap a subscription is accepted, not kept
            subscriptions.add(str(params.uri))
        return EmptyResult()

    async def unsubscribe(self, ctx: ServerRequestContext[Any, Any], params: UnsubscribeRequestParams) -> EmptyResult:
        self.of(ctx).subscriptions.discard(str(params.uri))
        return EmptyResult()

    async def updated(self, key: str, uri: str, publish: Any) -> None:
        """Tell the connection ``key`` (if subscribed) and every 2026-07-28 listener that ``uri``
        changed. Best effort: a connection that went away is forgotten, nothing fails."""
        try:
            await publish(ResourceUpdated(uri=uri))
        except Exception as exc:  # noqa: BLE001 - a notification must never fail a job
            log.debug("resource updated not published: %s", exc)
        peer = self._peers.get(key)
        if peer is None or uri not in peer.subscriptions or peer.session is None:
            return
        try:
            await peer.session.send_resource_updated(uri)
        except Exception as exc:  # noqa: BLE001
            log.debug("resource updated not sent to %s: %s", key, exc)
            peer.session = None

    async def warn(self, key: str, message: str) -> None:
        """A warning that concerns the user, for a connection that asked for warnings (setLevel)."""
        peer = self._peers.get(key)
        if peer is None or peer.session is None or not peer.wants("warning"):
            return
        try:
            await peer.session.send_log_message("warning", message, logger="mj-mcp")
        except Exception as exc:  # noqa: BLE001
            log.debug("log message not sent to %s: %s", key, exc)


async def warn_in_request(ctx: Any, peers: Peers, message: str) -> None:
    """A warning during a request: on 2026-07-28 the SDK sends it when the request opted in to that
    level; on a handshake version, when the connection's logging/setLevel asked for it."""
    request = ctx.request_context
    if request.protocol_version < "2026-07-28":
        peer = peers.get(connection_key(request))
        if peer is None or not peer.wants("warning"):
            return
    try:
        await ctx.log("warning", message, logger_name="mj-mcp")
    except Exception as exc:  # noqa: BLE001
        log.debug("log message not sent: %s", exc)


def completer(names_of: Any) -> Any:
    """A ``completion/complete`` handler: names of the caller's images for the ``mj://images/{name}``
    template, by prefix, newest first; nothing for any other reference."""
    async def complete(ctx: ServerRequestContext[Any, Any], params: CompleteRequestParams) -> CompleteResult:
        ref, prefix = params.ref, params.argument.value
        if not (isinstance(ref, ResourceTemplateReference) and ref.uri == "mj://images/{name}"
                and params.argument.name == "name"):
            return CompleteResult(completion=Completion(values=[]))
        matches = [n for n in names_of(ctx) if n.startswith(prefix)]
        return CompleteResult(completion=Completion(values=matches[:MAX_COMPLETIONS], total=len(matches),
                                                    has_more=len(matches) > MAX_COMPLETIONS))
    return complete


class ProtocolMiddleware:
    """Wraps every inbound request: makes the declared capabilities say what the server does, and
    drops content blocks the negotiated version does not know from every result."""

    async def __call__(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        result = await call_next(ctx)
        if not isinstance(result, dict):
            return result
        if ctx.method in ("initialize", "server/discover"):
            caps = result.get("capabilities") or {}
            caps.pop("prompts", None)  # the SDK always serves prompts/list; there are none to offer
            if ctx.method == "initialize" and "resources" in caps:
                # list-changed and updated notifications are sent in this era (the SDK has no option)
                caps["resources"]["listChanged"] = True
        elif isinstance(result.get("content"), list):
            result["content"] = content_for(ctx.protocol_version, result["content"])
        return result
