"""2026-07-28 listen events across replicas, through the SDK's ``SubscriptionBus`` seam.

A 2026-07-28 client may send its tool call to one replica and hold its ``subscriptions/listen`` stream
on another: the job ends where the call went, the listener waits elsewhere. ``ReplicaBus`` delivers
each event to this replica's listeners at once and, when the store can broadcast (Redis), to every
other replica's. Events are level triggers ("this changed, look again"), so a lost or late one costs
a refresh, never data. A generation publishes about four events, and relaying each in its call cost
more than the rest of the call's store work, so the relay runs beside the requests: it sends the
distinct events gathered since its last message in one, and only while another replica has a listener
(each replica says so through the store every ``PRESENCE_S``; a listener's first second on a replica
may miss another replica's events, as a listen stream replays nothing anyway). An event this replica
sent comes back from Redis and is skipped by its sender mark. Without a broadcasting store (memory,
SQLite: one process) it is ``scope.WorkspaceBus``. Each relayed event carries the workspace whose request published it,
and reaches only that workspace's streams on the other replicas too.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable
from typing import Any

import anyio
from anyio.abc import TaskGroup
from mcp.server.subscriptions import (
    PromptsListChanged,
    ResourcesListChanged,
    ResourceUpdated,
    ServerEvent,
    ToolsListChanged,
)

from .scope import WorkspaceBus

log = logging.getLogger("mj_mcp.bus")

MAX_URI = 256  # an image URI is mj://images/ and a name of at most 64 characters
MAX_OUTBOX = 128  # distinct events waiting for the relay; past it, more are dropped (a listener refetches)
PRESENCE_S = 1.0  # how often a replica says whether it has listeners, and learns whether others do
_KINDS: dict[str, ServerEvent] = {
    "tools": ToolsListChanged(),
    "prompts": PromptsListChanged(),
    "resources": ResourcesListChanged(),
}


def _item(workspace: str | None, event: ServerEvent) -> str:
    if isinstance(event, ResourceUpdated):
        return json.dumps({"ws": workspace, "updated": event.uri})
    return json.dumps({"ws": workspace, "list_changed": next(k for k, v in _KINDS.items() if v == event)})


def encode(events: list[str], sender: str) -> str:
    return json.dumps({"from": sender, "events": [json.loads(e) for e in events]})


def _event(item: Any) -> tuple[str | None, ServerEvent] | None:
    """(its workspace, the event), or None for what is not one."""
    if not isinstance(item, dict) or not isinstance(item.get("ws"), str | None):
        return None
    uri = item.get("updated")
    if isinstance(uri, str) and len(uri) <= MAX_URI:
        return item["ws"], ResourceUpdated(uri=uri)
    event = _KINDS.get(str(item.get("list_changed")))
    return (item["ws"], event) if event is not None else None


def decode(message: str) -> tuple[str, list[tuple[str | None, ServerEvent]]] | None:
    """(sender, [(workspace, event)]), or None for anything that is not a message this module wrote."""
    try:
        data = json.loads(message)
    except ValueError:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("from"), str) or not isinstance(data.get("events"), list):
        return None
    events = [e for e in map(_event, data["events"][:MAX_OUTBOX]) if e is not None]
    return data["from"], events


class ReplicaBus(WorkspaceBus):
    """This replica's bus (each listen stream hears of its own workspace only), relayed to the other
    replicas through the store with the workspace of each event."""

    def __init__(self) -> None:
        super().__init__()
        self._sender = uuid.uuid4().hex
        self._relay: Any = None  # a store with broadcast/on_broadcast (Redis), while the server runs
        self._outbox: dict[str, None] = {}  # distinct events (encoded) not relayed yet, in order
        self._waiting = anyio.Event()
        self._streams = 0  # this replica's listen streams
        self._others_listen = False  # as the store said at the last presence check

    def relay_through(self, store: Any, tasks: TaskGroup) -> None:
        """Relay events through ``store`` if it can broadcast, from a task in ``tasks`` (the lifespan's)."""
        if hasattr(store, "broadcast") and hasattr(store, "on_broadcast"):
            store.on_broadcast(self._heard)
            self._relay = store
            tasks.start_soon(self._send_relayed)

    def detach(self) -> None:
        self._relay = None

    async def publish(self, event: ServerEvent) -> None:
        await super().publish(event)
        if self._relay is not None and self._others_listen and len(self._outbox) < MAX_OUTBOX:
            self._outbox[_item(self.publishing_workspace(), event)] = None
            self._waiting.set()

    def subscribe(self, listener: Callable[[ServerEvent], None]) -> Callable[[], None]:
        unsubscribe = super().subscribe(listener)
        self._streams += 1
        if self._streams == 1:
            self._waiting.set()  # say so now, not at the next beat
        gone = False

        def off() -> None:
            nonlocal gone
            if not gone:
                gone = True
                self._streams -= 1
                unsubscribe()

        return off

    async def _send_relayed(self) -> None:
        said_at, said = 0.0, False
        while True:
            with anyio.move_on_after(PRESENCE_S):
                await self._waiting.wait()
            self._waiting = anyio.Event()
            relay = self._relay
            if relay is None:
                continue
            try:
                listening = self._streams > 0
                if anyio.current_time() - said_at >= PRESENCE_S or listening != said:
                    self._others_listen = await relay.presence(self._sender, listening, 3 * PRESENCE_S)
                    said_at, said = anyio.current_time(), listening
                events, self._outbox = list(self._outbox), {}
                if events and self._others_listen:
                    await relay.broadcast(encode(events, self._sender))
            except Exception as exc:
                log.debug("events not relayed: %s", exc)

    async def _heard(self, message: str) -> None:
        decoded = decode(message)
        if decoded is None or decoded[0] == self._sender or self._relay is None:
            return
        for workspace, event in decoded[1]:
            await self.publish_for(workspace, event)  # to this replica's streams of that workspace only
