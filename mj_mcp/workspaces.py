"""Workspaces: one user's images by name, over the store.

A workspace is a key in the store (the local user's ``MJ_MCP_WORKSPACE`` on stdio and loopback HTTP; one
per authenticated principal when the server is shared). It resolves references (a name, an image_id
or a task_id), reserves unique names, keeps at most ``max_records`` records (the oldest finished ones
are forgotten first), and walks lineage by record id, so a name that comes back after its record was
forgotten is never its own ancestor.
"""

from __future__ import annotations

import difflib

import anyio

from .core import naming
from .core.operations import GET_TASK, IMAGINE
from .errors import InvalidInput, NameTaken, UnknownReference, quote
from .limits import Limits
from .records import Record, results_of
from .store import Hold, Store

MAX_LINEAGE = 256  # steps of a lineage walk: deeper families are cut here rather than walked forever


class Workspace:
    def __init__(self, store: Store, key: str, max_records: int = 500, limits: Limits | None = None) -> None:
        self.store = store
        self.key = key
        self.max_records = max_records
        self.limits = limits  # its principal's (None: the local user's workspace, unlimited)

    async def find(self, ref: str) -> Record | None:
        ref = ref.strip()
        return await self.store.find(self.key, ref) if ref else None

    async def resolve(self, ref: str) -> Record:
        record = await self.find(ref)
        if record is None:
            raise await self.unknown(ref)
        return record

    async def unknown(self, ref: str) -> UnknownReference:
        """The error for a reference that resolves to nothing, with the names it may have meant."""
        names = await self.store.names(self.key, limit=self.max_records)
        close = difflib.get_close_matches(ref.strip().lower()[:80], names, n=3, cutoff=0.5)
        if close:
            hint = "Did you mean " + ", ".join(close) + "?"
        elif names:
            hint = "Known: " + ", ".join(names[:5]) + "."
        else:
            hint = f"No images yet in this workspace: start with {IMAGINE}."
        return UnknownReference(f"no image or task {quote(ref.strip())}", next_step=hint)

    async def name_for(
        self,
        *,
        requested: str | None,
        parent: str | None = None,
        action: str = "generate",
        prompt: str | None = None,
        fallback: str = "image",
        suffix: str | None = None,
    ) -> str:
        """The name a new record asks for: the caller's (refused now if taken), else the base derived from
        the prompt or the parent, which ``reserve`` turns into the first free one of its candidates."""
        if requested is not None:
            if await self.store.find(self.key, naming.checked(requested)) is not None:
                raise NameTaken(
                    f"name {requested!r} is taken", next_step="Pick another name, or omit name for a generated one."
                )
            return requested
        return naming.derived(parent=parent, action=action, prompt=prompt, fallback=fallback, suffix=suffix)

    async def reserve(self, record: Record, *, requested: bool, hold: Hold | None = None) -> Record:
        """Store a new record before anything is sent for it (with ``hold``, its follower's lease, in the
        same step); the record as stored. A derived name becomes the first free one of its candidates, in
        the store's one atomic step (calls at once each get their own); a requested name that was taken
        meanwhile is refused."""
        record = record.model_copy(update={"workspace": self.key})
        held: int | None = None
        if hold is None:
            stored = await self.store.add(record, next_free=not requested)
        else:
            stored, held = await self.store.admit(record, next_free=not requested, owner=hold.owner, ttl=hold.ttl)
        if stored is None:
            raise NameTaken(f"name {record.name!r} is taken", next_step="Pick another name.")
        try:
            await self._make_room(held)
        except BaseException:  # refused, or the call cancelled: nothing was sent, so nothing is kept
            with anyio.CancelScope(shield=True):
                await self.store.delete(stored.id)
            raise
        return stored

    async def _make_room(self, held: int | None = None) -> None:
        """``held``: the workspace's count, when the store said it with the insert."""
        # A read, or none: the common case writes nothing.
        if (held if held is not None else await self.store.count(self.key)) <= self.max_records:
            return
        await self.store.evict(self.key, self.max_records)
        if await self.store.count(self.key) > self.max_records:  # every older one is still running
            raise InvalidInput(
                f"all {self.max_records} images of this workspace are still generating",
                next_step=f"Wait for some to finish ({GET_TASK} with wait_seconds), then call again.",
            )

    async def results(self, record: Record) -> list[Record]:
        """The image records ``record`` made (an edit's results, ``records.results_of``), those still kept,
        each looked up by its id."""
        found = [await self.store.get(result.id) for result in results_of(record)]
        return [r for r in found if r is not None]

    async def discard(self, record: Record) -> None:
        await self.store.delete(record.id)

    async def names(self, prefix: str = "", limit: int | None = None) -> list[str]:
        """Names starting with ``prefix``, newest first."""
        return await self.store.names(self.key, prefix=prefix, limit=limit)

    async def by_id(self, record_id: str) -> Record | None:
        """The record with this id, when it is this workspace's (another's is no more found than none)."""
        record = await self.store.get(record_id)
        return record if record is not None and record.workspace == self.key else None

    async def latest(self, limit: int | None = None) -> list[Record]:
        return await self.store.latest(self.key, limit)

    async def lineage(self, ref: str) -> list[Record]:
        """The image, its ancestors and every image derived from it, newest first. Walks follow record
        ids (never names) and are bounded, so no family, however odd, can hold the server."""
        start = await self.resolve(ref)
        records = await self.store.latest(self.key)
        by_id = {r.id: r for r in records}
        family = {start.id}
        record: Record | None = start
        for _ in range(MAX_LINEAGE):
            if record is None or record.parent_id is None or record.parent_id in family:
                break
            family.add(record.parent_id)
            record = by_id.get(record.parent_id)
        children: dict[str, list[str]] = {}
        for r in records:
            if r.parent_id:
                children.setdefault(r.parent_id, []).append(r.id)
        frontier, seen = [start.id], {start.id}
        while frontier and len(seen) < len(records) + 1:
            frontier = [c for p in frontier for c in children.get(p, []) if c not in seen]
            seen.update(frontier)
        keep = family | seen
        return [r for r in records if r.id in keep]
