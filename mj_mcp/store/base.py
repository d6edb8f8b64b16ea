"""The store: one small interface for records, names, job leases and counters, with one contract for every
implementation (memory, SQLite, Redis). ``tests/test_store.py`` runs the same contract tests on each.

Records are values: ``get`` returns a copy, ``save`` writes one whole. A running record has one writer,
the follower holding its lease; everything else only reads it, or deletes finished records.

Leases make "a job is followed by one process only" hold across processes sharing a store: a follower
takes ``lease(record_id, owner, ttl)`` before following, renews it while it follows, and releases it when
the task is final. A lease whose owner died is taken over once it expires (or at once, when the owner
was a process on this machine that no longer exists: ``owner_gone``). A lease that vanished (a Redis
restarted empty) is not one another follower took: ``renew`` takes it again and says so, and the
follower writes its record back if that is gone too.

A record's follower may live in another process than the one that hears about its task (a callback
reaching another replica): ``deliver`` leaves what was heard in the record's inbox, and the follower
``collect``s it, so the follower stays the record's one writer. ``changes`` wakes a waiter when a
record is saved or delivered to, in any process sharing the store where the store can tell.

A store that fails (does not answer, is not a readable store, refuses writes) raises ``StoreError``,
built by ``failure``: its drivers' own errors never leave it, so a tool call fails with words the model
and the person running the server can act on, and the start stops with one such line, no traceback.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Protocol

from ..errors import StoreError
from ..records import Record
from .changes import Changed

INBOX_LIMIT = 32  # items kept per record's inbox (upstream's progress callbacks, then the final one)


@dataclass(frozen=True)
class Hold:
    """The lease a new record is stored with (``Store.admit``): its follower's."""

    owner: str
    ttl: float


class Store(Protocol):
    async def add(self, record: Record, *, next_free: bool = False) -> Record | None:
        """Insert a new record under its name; the record as stored. When the name is taken in its
        workspace: None and nothing written, or with ``next_free`` the record under the first free one of
        ``core.naming.candidates(record.name)``, looked for and taken in one atomic step, so any number of
        adds at once, in any processes sharing the store, each get a name of their own."""
        ...

    async def admit(self, record: Record, *, next_free: bool, owner: str, ttl: float) -> tuple[Record | None, int]:
        """What starting a job asks of the store, in one atomic step (one round trip): ``add`` the record,
        and when it was stored take the lease on its id for ``owner`` (nobody else can hold a new id's),
        so no other process's watchdog can take it between its insert and its submit; with the number of
        records its workspace holds now (``count``), for the caller's room check."""
        ...

    async def save(self, record: Record, *, adding: Sequence[Record] = (), release: str | None = None) -> None:
        """Write a record whole, by id (insert or replace). With ``adding`` (the records it made: an
        edit's results), also add each of those not stored yet (by id) under the first free of its name's
        candidates, in the same atomic step: the record and what it made are stored together, and
        writing them again adds nothing twice. With ``release``, that owner's lease on the record's id goes
        in the same step (a follower's last save of a final record)."""
        ...

    async def get(self, record_id: str) -> Record | None: ...

    async def find(self, workspace: str, ref: str) -> Record | None:
        """By name, else the newest record whose image_id or task_id is ``ref``."""
        ...

    async def latest(self, workspace: str, limit: int | None = None) -> list[Record]:
        """Newest first (in order of creation)."""
        ...

    async def names(self, workspace: str, prefix: str = "", limit: int | None = None) -> list[str]:
        """The names in the workspace that start with ``prefix``, newest first."""
        ...

    async def count(self, workspace: str, *, running: bool = False) -> int:
        """The workspace's records; with ``running``, only those still running."""
        ...

    async def delete(self, record_id: str) -> None: ...

    async def evict(self, workspace: str, keep: int) -> list[str]:
        """Delete the oldest finished records beyond ``keep`` in the workspace; the names deleted."""
        ...

    async def owner_of(self, ref: str) -> str | None:
        """The workspace holding a record whose task_id or image_id is ``ref``, if any."""
        ...

    async def running(self) -> list[Record]:
        """Every running record, in every workspace, oldest first."""
        ...

    async def lease(self, key: str, owner: str, ttl: float) -> bool:
        """Take or renew the lease on ``key`` for ``ttl`` seconds: True when free, expired, gone or ours."""
        ...

    async def renew(self, keys: list[str], owner: str, ttl: float) -> tuple[set[str], set[str]]:
        """Extend the leases ``owner`` holds among ``keys``, and take again those nobody holds (expired,
        or lost with a store restarted empty); never one another owner holds. The keys ``owner`` holds
        now, and those among them it took again: whatever it wrote under them may be gone too."""
        ...

    async def release(self, key: str, owner: str) -> None: ...

    async def incr(self, key: str, by: int, ttl: float) -> int:
        """Add ``by`` to the counter ``key`` atomically; its new value. A counter starts at 0 and is gone
        ``ttl`` seconds after it was created (a principal's count for one day outlives that day)."""
        ...

    async def deliver(self, record_id: str, item: str) -> None:
        """Append ``item`` to the record's inbox (the oldest dropped past ``INBOX_LIMIT``)."""
        ...

    async def collect(self, record_id: str) -> list[str]:
        """Take every item in the record's inbox, oldest first."""
        ...

    def changes(self, record_id: str) -> AbstractAsyncContextManager[Changed]:
        """A wait that ends when the record is saved or delivered to (else at its timeout)."""
        ...

    async def close(self) -> None: ...


def failure(where: str, what: str, advice: str, *, starting: bool) -> StoreError:
    """A store's failure in the words of the settings errors: which store and what it did, the setting
    that names it, and what to do (then restart the server, or call again)."""
    then = "then start the server again" if starting else "then call again"
    return StoreError(f"the store {where} (MJ_MCP_STORE) {what}", next_step=f"{advice}, {then}.")


def new_owner() -> str:
    """A follower's identity: this host and process, and a nonce (a pid is reused after a restart)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def owner_gone(owner: str) -> bool:
    """True when ``owner`` was a process on this host that no longer runs: its leases are void now,
    not only when they expire (the common case: the server was killed and started again)."""
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return False  # another owner in this very process (a second server object): still alive
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    try:  # a killed child its parent has not reaped yet still answers kill(0): a zombie is gone too
        stat = open(f"/proc/{pid}/stat").read()  # noqa: SIM115 (one short read)
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[:1] == ["Z"]
