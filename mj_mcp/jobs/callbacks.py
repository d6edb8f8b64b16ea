"""Callback mode (``MJ_MCP_PUBLIC_URL``): upstream POSTs a task's progress and end to this service.

A submit asks upstream to answer at once and POST to a URL whose secret only that record's digest
matches (``arm``), and holds no stream open. Whichever replica the POST reaches checks it against the
record (``record_for``: the acceptance rules, here rather than in the HTTP route) and leaves what it says
in the record's inbox (``deliver``); the follower, wherever it runs, collects it and advances the record
(``follow_callbacks``), so the record keeps one writer and a callback never races the follower's own
saves. Taking the lease briefly instead would stop and restart the follower on every callback; the
inbox needs neither, and a follower that died leaves the inbox to its successor.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import time
from enum import StrEnum
from typing import TYPE_CHECKING

from ..records import Record
from ..settings import Settings
from ..store import Store
from ..upstream import TaskUpdate, Upstream
from ..upstream.requests import TaskBody

if TYPE_CHECKING:
    from .follower import Followers, Job

log = logging.getLogger("mj_mcp.jobs")

# Under MJ_MCP_PUBLIC_URL: /callbacks/<record id>/<secret>.
CALLBACK_PATH = "/callbacks"
# After this many poll intervals (60 s) without a callback, ask upstream: a callback can be lost.
CALLBACK_QUIET_POLLS = 20
# A record id is 32 hex digits, a secret 43 URL-safe characters: anything longer names nothing.
MAX_ID, MAX_SECRET = 64, 128


class Delivery(StrEnum):
    """What became of a callback whose URL named a record with its secret."""

    # The record holds the end already (upstream may deliver twice): nothing changes.
    ALREADY_FINAL = "already_final"
    # The body is not a JSON object.
    UNREADABLE = "unreadable"
    # The body names another task than the record's.
    OTHER_TASK = "other_task"
    # Left in the record's inbox for its follower.
    DELIVERED = "delivered"


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
    unknown or overlong id, a wrong secret), and then nothing may change."""
    if len(record_id) > MAX_ID or len(secret) > MAX_SECRET:
        return None
    record = await store.get(record_id)
    if (
        record is None
        or record.callback_key is None
        or not hmac.compare_digest(record.callback_key, callback_key(secret))
    ):
        return None
    return record


async def deliver(store: Store, upstream: Upstream, record: Record, body: bytes) -> Delivery:
    """Leave what a callback says in its record's inbox, read like every reply of upstream (masked)."""
    if record.final:
        return Delivery.ALREADY_FINAL
    update = upstream.callback_update(body)
    if update is None:
        return Delivery.UNREADABLE
    if record.task_id and update.task_id and update.task_id != record.task_id:
        return Delivery.OTHER_TASK
    await store.deliver(record.id, update.model_dump_json(exclude_none=True))
    return Delivery.DELIVERED


async def follow_callbacks(followers: Followers, job: Job) -> None:
    """Advance the record from what upstream POSTed (its inbox, filled by any replica), holding no
    connection. After ``CALLBACK_QUIET_POLLS`` poll intervals without a word ask upstream once, as a
    callback can be lost; stop at the follow limit, as polling does."""
    settings, store = followers.settings, followers.store
    deadline = time.monotonic() + settings.follow_limit_s
    quiet = CALLBACK_QUIET_POLLS * settings.poll_interval_s
    # The last word on the task: a callback, or our own look upstream.
    heard = time.monotonic()
    async with store.changes(job.record.id) as changed:
        while not job.record.final:
            for item in await store.collect(job.record.id):
                heard = time.monotonic()
                try:
                    update = TaskUpdate.model_validate_json(item)
                except ValueError:
                    log.warning("skipped an unreadable callback for %s", job.record.name)
                    continue
                await followers.advance(job, update)
            if job.record.final:
                return
            if time.monotonic() > deadline:
                log.warning("stopped waiting for task %s after %.0f s", job.record.task_id, settings.follow_limit_s)
                return
            if time.monotonic() - heard >= quiet:
                await followers.poll_once(job)
                heard = time.monotonic()
            # Woken by a delivery (or, on a store that cannot hear other processes, at its beat).
            await changed(max(0.0, heard + quiet - time.monotonic()))
