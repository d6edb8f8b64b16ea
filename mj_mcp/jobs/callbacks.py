"""Callback mode (``MJ_MCP_PUBLIC_URL``): upstream rings when a task moves.

A submit asks upstream to answer at once and POST the task's progress and end to a URL whose secret
only that record's digest matches (``arm``), and holds no stream open. A callback is a doorbell, not a
letter: whoever learns the URL (a principal billed to their own token can read it from upstream's task
record) may POST anything to it, so what a POST says is never believed. Whichever replica it reaches
checks the URL against the record (``record_for``: the acceptance rules, here rather than in the HTTP
route, which reads no body before they pass) and leaves a ring (``RING``) in the record's inbox
(``ring``); the follower, wherever it runs, collects the rings and looks the task up upstream with the
workspace's own token, and advances the record from upstream's answer alone (``follow_callbacks``). So
the record keeps one writer, a callback never races the follower's own saves, and nothing a POST names
is ever stored or fetched. Taking the lease briefly instead would stop and restart the follower on every
callback; the inbox needs neither, and a follower that died leaves the inbox to its successor.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import time
from typing import TYPE_CHECKING

from ..records import Record
from ..settings import Settings
from ..store import Store
from ..upstream.requests import TaskBody

if TYPE_CHECKING:
    from .follower import Followers, Job

log = logging.getLogger("mj_mcp.jobs")

# Under MJ_MCP_PUBLIC_URL: /callbacks/<record id>/<secret>.
CALLBACK_PATH = "/callbacks"
# After this many poll intervals (60 s) without a word, ask upstream: a callback can be lost.
CALLBACK_QUIET_POLLS = 20
# What a callback leaves in its record's inbox: that upstream has news, and nothing more.
RING = "ring"
# At most one look upstream a second, however often the bell rings.
RING_GAP_S = 1.0
# A record id is 32 hex digits, a secret 43 URL-safe characters: anything longer names nothing.
MAX_ID, MAX_SECRET = 64, 128


def callback_key(secret: str) -> str:
    """What a record keeps of its callback URL's secret: a digest, so a store dump opens no callback."""
    return hashlib.sha256(secret.encode()).hexdigest()


def arm(settings: Settings, record: Record, body: TaskBody) -> tuple[Record, TaskBody]:
    """Callback mode: the record with its callback secret's digest, and the body that asks upstream to
    answer at once and POST the task's progress and end to this service. Unchanged otherwise."""
    base = settings.public_url
    # The embedded simulator posts nowhere (it refuses callback_url).
    if not base or settings.embed_sim:
        return record, body
    secret = secrets.token_urlsafe(32)
    url = f"{base}{CALLBACK_PATH}/{record.id}/{secret}"
    return (
        record.model_copy(update={"callback_key": callback_key(secret)}),
        body.model_copy(update={"asynchronous": True, "callback_url": url}),
    )


async def record_for(store: Store, record_id: str, secret: str) -> Record | None:
    """The record a callback URL was made for, when its secret is that record's; None otherwise (an
    unknown or overlong id, a wrong secret), and then nothing may change and no body be read."""
    if len(record_id) > MAX_ID or len(secret) > MAX_SECRET:
        return None
    record = await store.get(record_id)
    if record is None or record.callback_key is None:
        return None
    if not hmac.compare_digest(record.callback_key, callback_key(secret)):
        return None
    return record


async def ring(store: Store, record: Record) -> None:
    """Leave a ring in the record's inbox for its follower; a repeat for a finished record changes
    nothing (upstream may deliver twice)."""
    if not record.final:
        await store.deliver(record.id, RING)


async def follow_callbacks(followers: Followers, job: Job) -> None:
    """Answer the record's rings (its inbox, filled by any replica's route) by looking the task up
    upstream, holding no connection. Rings close together cost one look: at most one every
    ``RING_GAP_S``, those heard meanwhile answered by the next. A look after a ring that finds nothing
    new is made once more a gap later (upstream's record may lag its own callback). After
    ``CALLBACK_QUIET_POLLS`` poll intervals without a word ask upstream once, as a callback can be lost;
    stop at the follow limit, as polling does."""
    settings, store = followers.settings, followers.store
    deadline = time.monotonic() + settings.follow_limit_s
    quiet = CALLBACK_QUIET_POLLS * settings.poll_interval_s
    # The last word on the task: a ring, or our own look upstream.
    heard = time.monotonic()
    # When we last looked upstream.
    looked = -RING_GAP_S
    # When the look the rings are owed is made.
    due: float | None = None
    # A look that finds nothing new is made once more.
    again = False
    async with store.changes(job.record.id) as changed:
        while not job.record.final:
            if await store.collect(job.record.id):
                heard = time.monotonic()
                if due is None:
                    due = max(looked + RING_GAP_S, heard)
                again = True
            if due is not None and time.monotonic() >= due:
                seen = job.version
                await followers.poll_once(job)
                heard = looked = time.monotonic()
                found_nothing = job.version == seen
                due = looked + RING_GAP_S if again and found_nothing else None
                again = False
            if job.record.final:
                return
            if time.monotonic() > deadline:
                log.warning("stopped waiting for task %s after %.0f s", job.record.task_id, settings.follow_limit_s)
                return
            if time.monotonic() - heard >= quiet:
                await followers.poll_once(job)
                heard = looked = time.monotonic()
            # Woken by a ring (or, on a store that cannot hear other processes, at its beat).
            wake = heard + quiet if due is None else min(due, heard + quiet)
            await changed(max(0.0, wake - time.monotonic()))
