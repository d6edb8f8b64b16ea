"""Jobs: the one follower of each running record, and the waits of tool calls on them.

A job follows one upstream task, for any result kind upstream runs as a task, and never submits twice.
Its record is stored (name reserved, request fingerprinted) before the request leaves; one follower,
holding a lease on it, advances it while it runs; a watchdog takes over records whose follower died;
a tool call waits on a job up to its deadline with progress; in callback mode upstream's POSTs reach the
follower through the record's inbox.

    follower.py    the followers: submit or resume, advance, keep the store's copy, poll
    recovery.py    a submit that lost its connection: find its task among recent ones, never resend
    leases.py      one follower per record across processes: renewal, the watchdog, takeover
    waiting.py     a tool call's wait, with progress, here or through the store
    callbacks.py   callback mode: arming a submit, the acceptance rules, the inbox
    translate.py   upstream's replies in the record's terms

``Jobs`` is the whole face: the studio starts, gets and waits on jobs through it, and the server learns
when one ends (``ending``) or hands it a callback (``callback_record``, ``ring``); nothing
outside this package touches a follower.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import anyio
from anyio.abc import TaskGroup
from pydantic import BaseModel

from .. import errors
from ..records import Record
from ..settings import Settings
from ..store import Hold, Store
from ..upstream import Endpoint
from ..upstream.registry import Upstreams
from ..upstream.requests import Body, TaskBody
from . import callbacks, leases, waiting
from .callbacks import CALLBACK_PATH, RING, callback_key
from .follower import Followers
from .translate import heard_of, kind_of_task
from .waiting import Report

__all__ = ["CALLBACK_PATH", "RING", "Jobs", "Report", "Watched", "callback_key", "heard_of", "kind_of_task"]

# The longest wait for a finished job's last snapshot to be written before a wait answers.
SETTLE_S = 10.0

# Stores a new record, with the lease its follower holds, before anything is sent for it (the name
# reserved, the limits checked), or raises and keeps nothing; the studio's own rules.
Keep = Callable[[Record, Hold], Awaitable[Record]]


@dataclass(frozen=True)
class Watched:
    """A record after a wait, and why its job failed when this process followed it (the error as
    raised, with its own next step; None otherwise)."""

    record: Record
    error: errors.UpstreamError | None = None


class Jobs:
    def __init__(
        self, upstreams: Upstreams, store: Store, settings: Settings, task_group: TaskGroup, owner: str | None = None
    ) -> None:
        self._followers = Followers(upstreams, store, settings, task_group, owner)

    @property
    def owner(self) -> str:
        """This process's identity as a follower (leases name it)."""
        return self._followers.owner

    async def start(self, record: Record, endpoint: Endpoint[Body, BaseModel], body: Body, keep: Keep) -> Record:
        """Submit ``body`` for a new ``record`` in the background, once ``keep`` stored it: the lease is
        held first, so no other process's watchdog takes the record between its insert and its submit.
        A task is followed to its end; an endpoint that answers at once, to its answer."""
        followers = self._followers
        if isinstance(body, TaskBody):
            record, body = callbacks.arm(followers.settings, record, body)
        job, hold = followers.begin(record)
        try:
            stored = await keep(record, hold)
        except BaseException:
            with anyio.CancelScope(shield=True):
                await followers.abandon(job)
            raise
        followers.submit(job, stored, endpoint, body)
        return stored

    async def get(self, record: Record, *, catch_up_s: float) -> Record:
        """The freshest snapshot of ``record``; a running record nobody follows is followed again, after
        one look upstream (waited for up to ``catch_up_s``)."""
        followers = self._followers
        job = followers.live.get(record.id)
        if not record.final and job is None:
            job = await followers.take_over(record)
        if job is not None and not job.caught_up.is_set():
            with anyio.move_on_after(catch_up_s):
                await job.caught_up.wait()
        return await followers.current(record)

    async def watch(self, record: Record, seconds: float, report: Report) -> Watched:
        """Report the record's progress for at most ``seconds`` or until it is final; the latest snapshot."""
        job = self._followers.live.get(record.id)
        await waiting.watch(self._followers, record, seconds, report)
        if job is not None and job.record.final:
            # What the caller is told is in the store: whatever it does next (act on the image by its
            # image_id, look it up from another process) finds the final record.
            with anyio.move_on_after(SETTLE_S):
                await job.closed.wait()
            # Its final snapshot, saved (lease and all) by the follower that closed: what the store holds,
            # without reading it back.
            if job.closed.is_set() and job.final_saved is not None:
                return Watched(job.final_saved, job.error)
        return Watched(await self._followers.current(record), job.error if job is not None else None)

    async def current(self, record: Record) -> Record:
        """The freshest snapshot: the follower's here, else the store's."""
        return await self._followers.current(record)

    def ending(self, record_id: str) -> Callable[[], Awaitable[Record]] | None:
        """When a follower here runs the record's job: a wait for its end, giving the last snapshot
        (final, or still running when the follower gave up). None when no follower here runs it."""
        job = self._followers.live.get(record_id)
        if job is None or job.done.is_set():
            return None

        async def ended() -> Record:
            await job.done.wait()
            return job.record

        return ended

    async def keep_leases(self) -> None:
        """Renew this process's leases and take over orphaned records, until cancelled."""
        await leases.keep_leases(self._followers)

    async def adopt_orphans(self) -> int:
        """Take over every running record nobody follows; how many."""
        return await leases.adopt_orphans(self._followers)

    async def callback_record(self, record_id: str, secret: str) -> Record | None:
        """The record a callback URL names, when its secret is that record's (``callbacks.record_for``)."""
        return await callbacks.record_for(self._followers.store, record_id, secret)

    async def ring(self, record: Record) -> None:
        """A callback for ``record`` passed the rules: its follower, wherever it runs, looks upstream."""
        await callbacks.ring(self._followers.store, record)
