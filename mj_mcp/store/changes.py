"""Wake-ups on record changes: a wait on a record that ends as soon as someone saves it.

A tool call waiting on a job another process follows reads the record from the store; instead of
reading it on a fixed beat, it waits here and reads again when the record was saved (or delivered a
callback), with a timeout as the floor: a store that cannot tell other processes' saves (SQLite)
degrades to polling at that timeout, and nothing is lost when a notice is missed.

Each store calls ``Pulses.notify(record_id)`` for every change it hears of: its own saves (memory,
SQLite), or every replica's through Redis pub/sub.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import anyio

Changed = Callable[[float], Awaitable[bool]]  # wait up to N seconds; True when the record changed


class _Pulse:
    def __init__(self, longest: float | None) -> None:
        self.fired = False
        self.event = anyio.Event()
        self.longest = longest

    def fire(self) -> None:
        self.fired = True
        self.event.set()

    async def wait(self, timeout: float) -> bool:
        """True when the record changed since the last wait (a change in between is not missed)."""
        if not self.fired:
            with anyio.move_on_after(timeout if self.longest is None else min(timeout, self.longest)):
                await self.event.wait()
        fired, self.fired = self.fired, False
        if fired:
            self.event = anyio.Event()
        return fired


class Pulses:
    """Waiters by record id, in this process."""

    def __init__(self) -> None:
        self._waiting: dict[str, set[_Pulse]] = {}

    def notify(self, record_id: str) -> None:
        for pulse in self._waiting.get(record_id, ()):
            pulse.fire()

    @asynccontextmanager
    async def watch(self, record_id: str, longest: float | None = None) -> AsyncIterator[Changed]:
        """Register before reading the record, so a save between the read and the wait still wakes it.
        ``longest``: a store that cannot hear other processes' writes caps each wait at its polling beat."""
        pulse = _Pulse(longest)
        self._waiting.setdefault(record_id, set()).add(pulse)
        try:
            yield pulse.wait
        finally:
            waiting = self._waiting.get(record_id)
            if waiting is not None:
                waiting.discard(pulse)
                if not waiting:
                    del self._waiting[record_id]

    def __len__(self) -> int:
        return len(self._waiting)
