"""The store in memory: for tests, the bench and ``MJ_MCP_STORE=memory``; gone with the process."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager

from ..core import naming
from ..records import Record
from .base import INBOX_LIMIT, owner_gone
from .changes import Changed, Pulses


class MemoryStore:
    def __init__(self) -> None:
        self._records: dict[str, Record] = {}  # by id, in order of creation
        self._names: dict[tuple[str, str], str] = {}  # (workspace, name) -> id
        # Records per workspace: a count per call must not walk every workspace's records.
        self._sizes: Counter[str] = Counter()
        self._leases: dict[str, tuple[str, float]] = {}  # key -> (owner, expires: unix time)
        self._inbox: dict[str, list[str]] = {}  # record id -> items delivered, oldest first
        self._pulses = Pulses()
        self._counters: dict[str, tuple[int, float]] = {}  # key -> (value, expires: unix time)

    # Copies in and out: callers hold values, as they would from a database. Shallow: nobody changes a
    # record's lists in place (records change by ``model_copy(update=...)``), and a deep copy cost ~0.1 ms.
    async def add(self, record: Record, *, next_free: bool = False) -> Record | None:
        # No await between the look and the insert: atomic on the event loop.
        return self._add(record, next_free)

    def _add(self, record: Record, next_free: bool) -> Record | None:
        name, workspace = record.name, record.workspace
        if (workspace, name) in self._names:
            if not next_free:
                return None
            name = naming.first_free(name, lambda candidate: (workspace, candidate) in self._names)
            record = record.model_copy(update={"name": name})
        self._names[(workspace, name)] = record.id
        self._records[record.id] = record.model_copy()
        self._sizes[workspace] += 1
        return record

    async def admit(self, record: Record, *, next_free: bool, owner: str, ttl: float) -> tuple[Record | None, int]:
        stored = await self.add(record, next_free=next_free)
        if stored is not None:
            self._leases[stored.id] = (owner, time.time() + ttl)
        return stored, await self.count(record.workspace)

    async def save(self, record: Record, *, adding: Sequence[Record] = (), release: str | None = None) -> None:
        if release is not None:
            await self.release(record.id, release)
        old = self._records.get(record.id)
        if old is not None and (old.workspace, old.name) != (record.workspace, record.name):
            self._names.pop((old.workspace, old.name), None)
        if old is None or old.workspace != record.workspace:
            self._sizes[record.workspace] += 1
            if old is not None:
                self._sizes[old.workspace] -= 1
        self._names[(record.workspace, record.name)] = record.id
        self._records[record.id] = record.model_copy()
        # In the same step: no await in between.
        for new in adding:
            if new.id not in self._records:
                self._add(new, next_free=True)
        self._pulses.notify(record.id)

    async def get(self, record_id: str) -> Record | None:
        record = self._records.get(record_id)
        return record.model_copy() if record else None

    async def find(self, workspace: str, ref: str) -> Record | None:
        record_id = self._names.get((workspace, ref))
        if record_id is None:
            record_id = next(
                (
                    r.id
                    for r in reversed(self._records.values())
                    if r.workspace == workspace and ref in (r.image_id, r.task_id)
                ),
                None,
            )
        return await self.get(record_id) if record_id else None

    async def latest(self, workspace: str, limit: int | None = None) -> list[Record]:
        out = []
        for record in reversed(self._records.values()):
            if record.workspace == workspace:
                out.append(record.model_copy())
                if limit is not None and len(out) >= limit:
                    break
        return out

    async def names(self, workspace: str, prefix: str = "", limit: int | None = None) -> list[str]:
        # The name index is in order of creation too (a save keeps a key's place): no record is touched.
        out = [name for ws, name in reversed(self._names) if ws == workspace and name.startswith(prefix)]
        return out if limit is None else out[:limit]

    async def count(self, workspace: str, *, running: bool = False) -> int:
        if not running:
            return self._sizes[workspace]
        return sum(1 for r in self._records.values() if r.workspace == workspace and not r.final)

    async def delete(self, record_id: str) -> None:
        record = self._records.pop(record_id, None)
        if record is not None:
            self._names.pop((record.workspace, record.name), None)
            self._sizes[record.workspace] -= 1
        self._inbox.pop(record_id, None)
        self._pulses.notify(record_id)

    async def evict(self, workspace: str, keep: int) -> list[str]:
        mine = [r for r in self._records.values() if r.workspace == workspace]
        gone: list[str] = []
        for record in mine:
            if len(mine) - len(gone) <= keep:
                break
            if record.final:
                gone.append(record.name)
                await self.delete(record.id)
        return gone

    async def owner_of(self, ref: str) -> str | None:
        return next((r.workspace for r in self._records.values() if ref in (r.task_id, r.image_id)), None)

    async def running(self) -> list[Record]:
        return [r.model_copy() for r in self._records.values() if not r.final]

    async def lease(self, key: str, owner: str, ttl: float) -> bool:
        now = time.time()
        held = self._leases.get(key)
        if held is not None and held[0] != owner and held[1] > now and not owner_gone(held[0]):
            return False
        self._leases[key] = (owner, now + ttl)
        return True

    async def renew(self, keys: list[str], owner: str, ttl: float) -> tuple[set[str], set[str]]:
        now, kept, retaken = time.time(), set(), set()
        for key in keys:
            held = self._leases.get(key)
            if held is not None and held[0] != owner:
                continue
            if held is None:
                retaken.add(key)
            self._leases[key] = (owner, now + ttl)
            kept.add(key)
        return kept, retaken

    async def release(self, key: str, owner: str) -> None:
        if self._leases.get(key, ("",))[0] == owner:
            del self._leases[key]

    async def deliver(self, record_id: str, item: str) -> None:
        inbox = self._inbox.setdefault(record_id, [])
        inbox.append(item)
        del inbox[:-INBOX_LIMIT]
        self._pulses.notify(record_id)

    async def collect(self, record_id: str) -> list[str]:
        return self._inbox.pop(record_id, [])

    def changes(self, record_id: str) -> AbstractAsyncContextManager[Changed]:
        return self._pulses.watch(record_id)

    async def incr(self, key: str, by: int, ttl: float) -> int:
        now = time.time()
        for gone in [k for k, (_, expires) in self._counters.items() if expires <= now]:
            del self._counters[gone]
        value, expires = self._counters.get(key, (0, now + ttl))
        self._counters[key] = (value + by, expires)
        return value + by

    async def close(self) -> None:
        pass
