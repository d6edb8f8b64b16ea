"""Leases and takeover: one follower per running record across every process sharing the store.

A follower holds a lease on its record id, renewed every third of its life while it follows; one whose
lease another follower took gives up (its snapshot is stale). A watchdog takes over the running records
nobody follows: those a dead process left (its leases expired, or at once when it was a process on this
machine that no longer runs), and those running when this process last stopped, and follows them by
polling, never resubmitting.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

import anyio

if TYPE_CHECKING:
    from .follower import Followers

log = logging.getLogger("mj_mcp.jobs")


async def keep_leases(followers: Followers) -> None:
    """Renew this process's leases every third of their life, give up jobs whose lease another
    follower took, and take over running records nobody follows (at once, then every lease period)."""
    ttl = followers.settings.lease_s
    next_scan = 0.0
    while True:
        # A job whose lease went with its final save is over: renewing would take the lease again.
        ids = [key for key, job in followers.live.items() if job.final_saved is None]
        if ids:
            try:
                kept, retaken = await followers.store.renew(ids, followers.owner, ttl)
            except Exception as exc:
                log.warning("lease renewal failed: %s", exc)
                kept, retaken = set(ids), set()
            for lost in set(ids) - kept:
                job = followers.live.get(lost)
                if job is not None:
                    job.scope.cancel()
            for key in retaken:
                await _recheck(followers, key)
        if time.monotonic() >= next_scan:
            next_scan = time.monotonic() + ttl
            try:
                await adopt_orphans(followers)
            except Exception as exc:
                log.warning("looking for running records failed: %s", exc)
        await anyio.sleep(ttl / 3)


async def _recheck(followers: Followers, record_id: str) -> None:
    """Our lease had vanished and is ours again. A vanished lease is not one another follower took (that
    one stops us): the store was restarted empty, or it expired while we stalled. Write the record back
    if it is gone too; stop, writing nothing, if another follower finished it meanwhile."""
    job = followers.live.get(record_id)
    if job is None:
        return
    try:
        stored = await followers.store.get(record_id)
    except Exception as exc:
        log.warning("lease renewal failed: %s", exc)
        return
    if stored is None:
        log.warning("the store lost the record of %s (restarted empty?); writing it back", job.record.name)
        job.write_again()
    elif stored.final and not job.record.final:
        job.scope.cancel()


async def adopt_orphans(followers: Followers) -> int:
    """Take over every running record younger than the follow limit that no live follower has."""
    horizon = time.time() - followers.settings.follow_limit_s
    taken = 0
    for record in await followers.store.running():
        if record.id not in followers.live and record.created_at >= horizon and await followers.take_over(record):
            taken += 1
    return taken
