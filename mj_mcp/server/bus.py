"""2026-07-28 listen events across replicas, through the SDK's ``SubscriptionBus`` seam.

A 2026-07-28 client may send its tool call to one replica and hold its ``subscriptions/listen`` stream
on another: the job ends where the call went, the listener waits elsewhere. ``ReplicaBus`` delivers
each event to this replica's listeners at once and, when the store can broadcast (Redis), to every
other replica's. Events are level triggers ("this changed, look again"), so a lost or late one costs
a refresh, never data; an event this replica sent comes back from Redis and is skipped by its sender
mark. Without a broadcasting store (memory, SQLite: one process) it is the SDK's in-memory bus.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable
from typing import Any

from mcp.server.subscriptions import (
    InMemorySubscriptionBus,
    PromptsListChanged,
    ResourcesListChanged,
    ResourceUpdated,
    ServerEvent,
    ToolsListChanged,
)

log = logging.getLogger("mj_mcp.bus")

MAX_URI = 256  # an image URI is mj://images/ and a name of at most 64 characters
_KINDS: dict[str, ServerEvent] = {"tools": ToolsListChanged(), "prompts": PromptsListChanged(),
                                  "resources": ResourcesListChanged()}


def encode(event: ServerEvent, sender: str) -> str:
    if isinstance(event, ResourceUpdated):
        return json.dumps({"from": sender, "updated": event.uri})
    kind = next(k for k, v in _KINDS.items() if v == event)
    return json.dumps({"from": sender, "list_changed": kind})


def decode(message: str) -> tuple[str, ServerEvent] | None:
    """(sender, event), or None for anything that is not an event this module wrote."""
    try:
        data = json.loads(message)
    except ValueError:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("from"), str):
        return None
    uri = data.get("updated")
    if isinstance(uri, str) and len(uri) <= MAX_URI:
        return data["from"], ResourceUpdated(uri=uri)
    event = _KINDS.get(str(data.get("list_changed")))
    return (data["from"], event) if event is not None else None


class ReplicaBus:
    """The SDK's in-memory bus for this replica, relayed to the others through the store."""

    def __init__(self) -> None:
        self._local = InMemorySubscriptionBus()
        self._sender = uuid.uuid4().hex
        self._relay: Any = None  # a store with broadcast/on_broadcast (Redis), while the server runs

    def relay_through(self, store: Any) -> None:
        """Relay events through ``store`` if it can broadcast; called by the lifespan once it is open."""
        if hasattr(store, "broadcast") and hasattr(store, "on_broadcast"):
            store.on_broadcast(self._heard)
            self._relay = store

    def detach(self) -> None:
        self._relay = None

    async def publish(self, event: ServerEvent) -> None:
        await self._local.publish(event)
        relay = self._relay
        if relay is not None:
            try:
                await relay.broadcast(encode(event, self._sender))
            except Exception as exc:  # noqa: BLE001 - a missed event costs the other replicas' listeners a refresh
                log.debug("event not relayed: %s", exc)

    def subscribe(self, listener: Callable[[ServerEvent], None]) -> Callable[[], None]:
        return self._local.subscribe(listener)

    async def _heard(self, message: str) -> None:
        decoded = decode(message)
        if decoded is None or decoded[0] == self._sender or self._relay is None:
            return
        await self._local.publish(decoded[1])
