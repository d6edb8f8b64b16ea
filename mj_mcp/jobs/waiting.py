"""A tool call's wait on a job, up to its deadline, with progress; the job goes on after.

Each upstream progress change, and a heartbeat while upstream is silent, becomes a strictly increasing
progress report (``core/progress.py``). A job this process follows is watched through its follower; one
another process follows, through the store, woken by that follower's saves (``store.changes``); when
that follower is gone, the wait takes the job over and goes on watching it here.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import anyio

from ..core.progress import ProgressMeter
from ..records import Record

if TYPE_CHECKING:
    from .follower import Followers, Job

# A progress report: a figure out of 100 and a short message.
Report = Callable[[float, str], Awaitable[None]]


async def watch(followers: Followers, record: Record, seconds: float, report: Report) -> None:
    """Report the record's progress for at most ``seconds`` or until it is final."""
    if seconds <= 0 or record.final:
        return
    with anyio.move_on_after(seconds):
        job = followers.live.get(record.id)
        if job is None:
            job = await _watch_remote(followers, record, report)
        if job is not None:
            await _watch_local(followers, job, report)


async def _watch_local(followers: Followers, job: Job, report: Report) -> None:
    meter = ProgressMeter()
    heartbeat_s = followers.settings.heartbeat_s
    # Joining a job that is under way (a later look at it) starts from where it is.
    if job.record.progress > 0:
        await report(meter.upstream(job.record.progress), f"generating {job.record.progress:.0f}%")
    else:
        await report(meter.heartbeat(), "submitted, waiting for upstream")
    seen, last = job.version, job.record.progress if job.record.progress > 0 else -1.0
    silent_since = time.monotonic()
    while not job.done.is_set():
        with anyio.move_on_after(heartbeat_s):
            await job.changed(seen)
        if job.done.is_set():
            break
        if job.version != seen and job.record.progress > last:
            seen, last = job.version, job.record.progress
            silent_since = time.monotonic()
            await report(meter.upstream(last), f"generating {last:.0f}%")
        else:
            seen = job.version
            await report(meter.heartbeat(), f"waiting for upstream ({time.monotonic() - silent_since:.0f} s)")
    if job.record.status == "completed":
        await report(meter.upstream(100.0, final=True), "done")


async def _watch_remote(followers: Followers, record: Record, report: Report) -> Job | None:
    """Watch a record another process follows, through the store; when its follower is gone, take it
    over and return the new local job."""
    settings, store = followers.settings, followers.store
    meter = ProgressMeter()
    last, beat = -1.0, time.monotonic()
    next_try = time.monotonic()
    # Woken by the follower's saves, wherever it is.
    async with store.changes(record.id) as changed:
        record = await store.get(record.id) or record
        while not record.final:
            if record.progress > last:
                last = record.progress
                await report(meter.upstream(last), f"generating {last:.0f}%")
                beat = time.monotonic()
            elif time.monotonic() - beat >= settings.heartbeat_s:
                await report(meter.heartbeat(), "generating elsewhere, waiting for upstream")
                beat = time.monotonic()
            if time.monotonic() >= next_try:
                next_try = time.monotonic() + settings.lease_s / 3
                job = await followers.take_over(record)
                if job is not None:
                    return job
            now = time.monotonic()
            # A store that hears every process's saves wakes this at once; one that cannot (SQLite)
            # shortens the wait to its own polling beat.
            await changed(max(0.0, min(beat + settings.heartbeat_s, next_try) - now))
            record = await store.get(record.id) or record
    if record.status == "completed":
        await report(meter.upstream(100.0, final=True), "done")
    return None
