"""Resumable streams on streamable HTTP: an event id on every SSE event, a retry hint, and replay of
what a client missed when its connection dropped mid-call (a generation outlives many networks).

The SDK keeps events through one ``EventStore`` shared by all sessions, keyed by stream ids that are
unique only within a session (request ids, its one GET stream), so a plain store would replay one
session's events into another's after a reconnect. ``SessionScope`` (ASGI) tells the store which
session the current request belongs to, and ``SessionEventStore`` keys everything by (session,
stream): each event id belongs to one session, and a replay never crosses to another. The store keeps
events in memory, bounded in count and bytes; a shared store (Redis, for replicas) would implement
the same two async methods with the same keys.
"""

from __future__ import annotations

import logging
import secrets
from collections import OrderedDict, deque
from contextvars import ContextVar
from dataclasses import dataclass

from mcp.server.streamable_http import EventCallback, EventId, EventMessage, EventStore, StreamId
from mcp.types import JSONRPCError, JSONRPCMessage, JSONRPCResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("mj_mcp.streams")

RETRY_MS = 2000  # the reconnect delay clients are told: long calls report progress every few seconds
MAX_EVENTS = 10_000
MAX_BYTES = 64 << 20  # a finished result carries its thumbnail, tens of KB

# The current request's session, as a one-item list: a session's own tasks start inside the request
# that opened it, before its id is known, and see the id once the response names it.
_session: ContextVar[list[str | None] | None] = ContextVar("mj_mcp_session", default=None)


class SessionScope:
    """ASGI middleware: which MCP session a request (and anything it starts) belongs to."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # The first Mcp-Session-Id header, the one the SDK checks (a second one must not name another session).
        given = next((v for k, v in scope.get("headers") or [] if k == b"mcp-session-id"), b"")
        cell: list[str | None] = [given.decode("latin-1") or None]
        token = _session.set(cell)

        async def named(message: Message) -> None:
            if cell[0] is None and message["type"] == "http.response.start":
                answered = dict(message.get("headers") or [])
                cell[0] = answered.get(b"mcp-session-id", b"").decode("latin-1") or None
            await send(message)

        try:
            await self.app(scope, receive, named)
        finally:
            _session.reset(token)


def current_session() -> str | None:
    cell = _session.get()
    return cell[0] if cell else None


@dataclass
class _Event:
    session: str
    stream: StreamId
    message: JSONRPCMessage | None  # None: a stream's priming event
    size: int


class SessionEventStore(EventStore):
    """Events by (session, stream), oldest out first past ``max_events`` or ``max_bytes``. Events of
    a request outside any session (2026-07-28 requests, which cannot resume) are not kept."""

    def __init__(self, max_events: int = MAX_EVENTS, max_bytes: int = MAX_BYTES) -> None:
        self._events: OrderedDict[EventId, _Event] = OrderedDict()
        self._streams: dict[tuple[str, StreamId], deque[EventId]] = {}
        self._answered: set[tuple[str, StreamId]] = set()  # request streams that carried their response
        self._bytes = 0
        self._max_events, self._max_bytes = max_events, max_bytes

    async def store_event(self, stream_id: StreamId, message: JSONRPCMessage | None) -> EventId:
        session = current_session()
        event_id = f"{secrets.token_hex(8)}"  # unguessable: an id alone replays nothing of another session
        if session is None:
            return event_id
        size = 0 if message is None else len(message.model_dump_json(by_alias=True, exclude_none=True))
        self._events[event_id] = _Event(session, stream_id, message, size)
        self._streams.setdefault((session, stream_id), deque()).append(event_id)
        if isinstance(message, JSONRPCResponse | JSONRPCError):
            self._answered.add((session, stream_id))
        self._bytes += size
        while len(self._events) > self._max_events or self._bytes > self._max_bytes:
            self._forget_oldest()
        return event_id

    def _forget_oldest(self) -> None:
        event_id, event = self._events.popitem(last=False)
        self._bytes -= event.size
        key = (event.session, event.stream)
        stream = self._streams.get(key)
        if stream is not None:
            if stream and stream[0] == event_id:
                stream.popleft()
            if not stream:
                del self._streams[key]
                self._answered.discard(key)

    async def replay_events_after(self, last_event_id: EventId, send_callback: EventCallback) -> StreamId | None:
        event = self._events.get(last_event_id)
        if event is None or event.session != current_session():
            log.debug("no replay: event %s unknown or of another session", last_event_id[:16])
            return None
        stream = list(self._streams.get((event.session, event.stream), ()))
        for event_id in stream[stream.index(last_event_id) + 1 :]:
            later = self._events.get(event_id)
            if later is not None and later.message is not None:
                await send_callback(EventMessage(later.message, event_id))
        # A stream that carried its response has nothing more to come: no stream id, so the SDK ends
        # the reconnection once the replay is out instead of holding it open for nothing.
        return None if (event.session, event.stream) in self._answered else event.stream
