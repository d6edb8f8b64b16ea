"""The protocol seam: what each negotiated version may receive, and what the server says it does.

Hosts speak every version from 2024-11-05 to 2026-07-28, and the SDK checks the results of every
handshake version against the 2025-11-25 schema, so a ``resource_link`` reached 2025-03-26 clients,
which then refused the whole (paid) result. ``CONTENT_SINCE`` is the one table of which content block
each version knows; ``ProtocolMiddleware`` applies it to every result on the way out and makes the
declared capabilities true: resources.listChanged (the SDK always declares false), subscriptions,
logging, completions, and no empty prompts capability.

``Connections`` keeps what each handshake-era client connection asked for (its log level, its resource
subscriptions) and its session, to reach it when a job ends after the call that started it:
``notifications/resources/updated`` to subscribers (and to 2026-07-28 listeners through the SDK's
subscription bus), list-changed, and a warning when a follower gave up. A connection is the HTTP
session (``mcp-session-id``) or the one stdio / in-memory peer; it is not the workspace, which is the
user's and may be shared by several connections.
"""

from __future__ import annotations

import logging
import warnings
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from anyio.abc import TaskGroup
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.session import ServerSession
from mcp.server.subscriptions import SubscriptionBus
from mcp.shared.exceptions import MCPDeprecationWarning
from mcp.shared.subscriptions import ResourcesListChanged, ResourceUpdated
from mcp.types import (
    INVALID_PARAMS,
    CompleteRequestParams,
    CompleteResult,
    Completion,
    EmptyResult,
    ResourceTemplateReference,
    SetLevelRequestParams,
    SubscribeRequestParams,
    UnsubscribeRequestParams,
)

from ..core.operations import GET_TASK
from ..records import Record
from .results import CLIP_URI_TEMPLATE, URI_TEMPLATE, uri_for, uris_of

log = logging.getLogger("mj_mcp.protocol")

# Logging is deprecated as of 2026-07-28, and it is what every handshake-era client has: the SDK warns
# on each use, attributed to the calling module, so the filter names this module only.
warnings.filterwarnings("ignore", category=MCPDeprecationWarning, module=r"mj_mcp\.server\.protocol")

MODERN = "2026-07-28"  # from this version on there is no connection: each request stands alone
# The version that introduced each content block type (the spec's schema of each version).
CONTENT_SINCE = {
    "text": "2024-11-05",
    "image": "2024-11-05",
    "resource": "2024-11-05",
    "audio": "2025-03-26",
    "resource_link": "2025-06-18",
}
LEVELS = ("debug", "info", "notice", "warning", "error", "critical", "alert", "emergency")
MAX_COMPLETIONS = 100  # the spec's cap on completion values
MAX_SUBSCRIPTIONS = 1000  # per connection: twice a workspace's images
IMAGE_URI = uri_for("")  # mj://images/ : names are at most 64 characters
CLIP_URI = CLIP_URI_TEMPLATE.partition("{")[0]  # mj://videos/ : then a name and /1-4
MAX_CONNECTIONS = 10_000  # the SDK's default cap on HTTP sessions


# resources/read of a resource that does not exist: "Resource not found: -32002" in every revision up to
# 2025-11-25 (server/resources, "Error Handling"); from 2026-07-28 on, -32602 Invalid Params (SEP-2164),
# which the SDK answers to every version alike.
RESOURCE_NOT_FOUND_BEFORE_MODERN = -32002


def resource_not_found_code(version: str | None) -> int:
    """The JSON-RPC error code for an unknown resource, as the negotiated version's revision says."""
    return INVALID_PARAMS if version is None or version >= MODERN else RESOURCE_NOT_FOUND_BEFORE_MODERN


def knows(version: str | None, block_type: str) -> bool:
    """Whether a client at ``version`` can parse a content block of ``block_type``. Versions are
    dates, so they compare as strings; a block type not in the table is never dropped."""
    since = CONTENT_SINCE.get(block_type)
    return since is None or version is None or version >= since


def content_for(version: str | None, blocks: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    return [b for b in blocks if knows(version, str(b.get("type")))]


class ProtocolMiddleware:
    """Wraps every inbound request (the SDK's middleware seam): capabilities that say what the server
    does, and results without the content blocks the negotiated version does not know."""

    async def __call__(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        result = await call_next(ctx)
        if not isinstance(result, dict):
            return result
        if ctx.method in ("initialize", "server/discover"):
            caps = result.get("capabilities") or {}
            caps.pop("prompts", None)  # MCPServer always serves prompts/list; there are no prompts to offer
            if isinstance(caps.get("tools"), dict):
                caps["tools"]["listChanged"] = False  # the tools never change (2026-07-28: the SDK says true)
            if ctx.method == "initialize" and isinstance(caps.get("resources"), dict):
                caps["resources"]["listChanged"] = True  # the handshake era has no option for it in the SDK
        elif isinstance(result.get("content"), list):
            result["content"] = content_for(ctx.protocol_version, result["content"])
        return result


def connection_key(ctx: ServerRequestContext[Any, Any]) -> str:
    """The client connection of a request: its HTTP session, else the one stdio / in-memory peer. A
    2026-07-28 request has no connection (nothing is sent to it after it ends), and its Mcp-Session-Id
    header, which the SDK does not check on such a request, must name nothing: one key for all."""
    if ctx.protocol_version >= MODERN:
        return "modern"
    headers = getattr(ctx.request, "headers", None) or {}
    session = headers.get("mcp-session-id")
    return f"http:{session}" if session else "local"


@dataclass
class Connection:
    """What one connection asked for, and its session, for notifications after its request ended."""

    level: str | None = None  # None: it never called logging/setLevel, so it gets no log messages
    subscriptions: set[str] = field(default_factory=set)
    session: ServerSession | None = None

    def wants(self, level: str) -> bool:
        return self.level is not None and LEVELS.index(level) >= LEVELS.index(self.level)


class Connections:
    """Handshake-era connections by ``connection_key``, the least recently seen forgotten first; the
    handlers of logging/setLevel and resources/(un)subscribe; what to tell them when a job ends."""

    def __init__(self, bus: SubscriptionBus, limit: int = MAX_CONNECTIONS) -> None:
        self.bus = bus  # 2026-07-28 listeners (subscriptions/listen)
        self._known: OrderedDict[str, Connection] = OrderedDict()
        self._limit = limit
        self._waiting: set[tuple[str, str]] = set()  # (connection, record id): one waiter each

    def of(self, ctx: ServerRequestContext[Any, Any]) -> Connection:
        key = connection_key(ctx)
        conn = self._known.pop(key, None) or Connection()
        self._known[key] = conn
        while len(self._known) > self._limit:
            self._known.popitem(last=False)
        if ctx.protocol_version < MODERN:  # a modern request's session ends with the request
            conn.session = ctx.session
        return conn

    async def set_level(self, ctx: ServerRequestContext[Any, Any], params: SetLevelRequestParams) -> EmptyResult:
        self.of(ctx).level = params.level
        return EmptyResult()

    async def subscribe(self, ctx: ServerRequestContext[Any, Any], params: SubscribeRequestParams) -> EmptyResult:
        subscriptions, uri = self.of(ctx).subscriptions, str(params.uri)
        # Only an image's or a clip's URI can ever change; any other (or past the cap) is accepted, not kept.
        ours = (uri.startswith(IMAGE_URI) and len(uri) <= len(IMAGE_URI) + 64) or (
            uri.startswith(CLIP_URI) and len(uri) <= len(CLIP_URI) + 66
        )
        if ours and len(subscriptions) < MAX_SUBSCRIPTIONS:
            subscriptions.add(uri)
        return EmptyResult()

    async def unsubscribe(self, ctx: ServerRequestContext[Any, Any], params: UnsubscribeRequestParams) -> EmptyResult:
        self.of(ctx).subscriptions.discard(str(params.uri))
        return EmptyResult()

    def after(
        self,
        tasks: TaskGroup,
        ctx: ServerRequestContext[Any, Any],
        record_id: str,
        ending: Callable[[], Awaitable[Record]] | None,
    ) -> None:
        """When the job of ``record_id`` (started or taken over by this request: ``ending`` waits for
        its end) ends, tell its connection: the record is updated (subscribers), the resource list
        changed, or the follower gave up."""
        key = connection_key(ctx)
        if ending is None or (key, record_id) in self._waiting:
            return
        self.of(ctx)
        self._waiting.add((key, record_id))
        tasks.start_soon(self._when_done, key, record_id, ending)

    async def _when_done(self, key: str, record_id: str, ending: Callable[[], Awaitable[Record]]) -> None:
        try:
            record = await ending()
        finally:
            self._waiting.discard((key, record_id))
        if not record.final:  # the follower stopped; the task may go on upstream
            await self.warn(key, f'{record.name}: no longer followed; {GET_TASK}("{record.name}") looks again.')
            return
        await self._send(key, None, lambda s: s.send_resource_list_changed())
        await self._publish(ResourcesListChanged())
        # An image's one resource; a video's clips (a failed job has none: its image's URI still says so).
        for uri in uris_of(record) or [uri_for(record.name)]:
            await self._updated(key, uri)

    async def _updated(self, key: str, uri: str) -> None:
        await self._send(key, uri, lambda s: s.send_resource_updated(uri))
        await self._publish(ResourceUpdated(uri=uri))

    def asked_for(self, key: str, level: str) -> bool:
        conn = self._known.get(key)
        return conn is not None and conn.wants(level)

    async def warn(self, key: str, message: str) -> None:
        """A warning that concerns the user, for a connection that asked for warnings."""
        if self.asked_for(key, "warning"):
            await self._send(key, None, lambda s: s.send_log_message("warning", message, logger="mj-mcp"))

    async def _send(self, key: str, uri: str | None, send: Callable[[ServerSession], Awaitable[None]]) -> None:
        conn = self._known.get(key)
        if conn is None or conn.session is None or (uri is not None and uri not in conn.subscriptions):
            return
        try:
            await send(conn.session)
        except Exception as exc:
            log.debug("notification not sent to %s: %s", key, exc)
            conn.session = None

    async def _publish(self, event: Any) -> None:
        try:
            await self.bus.publish(event)
        except Exception as exc:
            log.debug("event not published: %s", exc)


async def warn_in_request(ctx: Any, connections: Connections, message: str) -> None:
    """A warning during a request (``ctx``: the tool's Context): on 2026-07-28 the SDK sends it when the
    request opted in at that level; on a handshake version, when the connection's setLevel asked."""
    request = ctx.request_context
    if request.protocol_version < MODERN and not connections.asked_for(connection_key(request), "warning"):
        return
    try:
        await ctx.log("warning", message, logger_name="mj-mcp")
    except Exception as exc:
        log.debug("log message not sent: %s", exc)


def completer(names: Callable[[ServerRequestContext[Any, Any], str, int], Awaitable[list[str]]]) -> Any:
    """The ``completion/complete`` handler: the caller's image names for the ``mj://images/{name}``
    template, by prefix, newest first, at most 100; nothing for any other reference."""

    async def complete(ctx: ServerRequestContext[Any, Any], params: CompleteRequestParams) -> CompleteResult:
        ref, prefix = params.ref, params.argument.value
        if not (
            isinstance(ref, ResourceTemplateReference) and ref.uri == URI_TEMPLATE and params.argument.name == "name"
        ):
            return CompleteResult(completion=Completion(values=[]))
        matches = await names(ctx, prefix[:64], MAX_COMPLETIONS + 1)  # newest first, from the store's index
        more = len(matches) > MAX_COMPLETIONS
        return CompleteResult(
            completion=Completion(values=matches[:MAX_COMPLETIONS], total=None if more else len(matches), has_more=more)
        )

    return complete
