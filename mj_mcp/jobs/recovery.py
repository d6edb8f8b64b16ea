"""Finding a submit that lost its connection before upstream named its task (docs/upstream.md,
"Finding a lost submit").

The submit may or may not have started a billed task; resubmitting could bill twice. So the follower
looks among the tasks created since the submit (``retrieve_batch``, page by page) for one of the
endpoint's type whose recorded request has the submit's fingerprint (``upstream.Endpoint.recorded_as``)
and that no record holds, claims it, and adopts it. The fingerprint is stored with the record before the
request leaves, so this works after a restart too.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import TYPE_CHECKING, Any

import anyio

from .. import errors
from ..records import Submission, results_of
from ..upstream import ENDPOINTS, Upstream, UpstreamTask
from ..upstream.requests import RetrieveBatchBody

if TYPE_CHECKING:
    from .follower import Followers, Job

log = logging.getLogger("mj_mcp.jobs")

# Our clock against upstream's: look this far before the submit for its task.
RECOVER_SKEW_S = 120.0
# retrieve_batch pages when looking for a lost submit's task.
SEARCH_PAGE, SEARCH_PAGES = 50, 10


def seconds(value: Any) -> float | None:
    """A task's ``created_at``: unix seconds, a numeric string or ISO 8601 (docs/upstream.md: lenient)."""
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str) and value.strip():
        try:
            return float(value)
        except ValueError:
            try:
                return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
            except ValueError:
                return None
    return None


def same_request(task: UpstreamTask, sent: Submission) -> bool:
    """Whether upstream's task is the one we sent: of the endpoint's type (when upstream says), and
    its recorded request agreeing with the submit's fingerprint."""
    endpoint = ENDPOINTS.get(sent.endpoint)
    if endpoint is None or endpoint.task_type is None or task.type not in (None, endpoint.task_type):
        return False
    return endpoint.recorded_as(task.request, sent.fingerprint)


async def find_lost_task(followers: Followers, job: Job, attempts: int) -> bool:
    """Look for the job's task among those created since its submit, claim the oldest unclaimed match
    and adopt it; True when found."""
    sent = job.record.submission
    if sent is None:
        return False
    since = sent.at - RECOVER_SKEW_S
    interval = followers.settings.poll_interval_s
    store = followers.store
    for attempt in range(attempts):
        if attempt:
            await anyio.sleep(interval)
            interval *= 2
        try:
            tasks = await created_since(followers.upstream_of(job), since)
        except errors.UpstreamError as exc:
            log.warning("task search failed: %s", exc.code)
            continue
        # The oldest unclaimed first.
        matches = sorted(
            (t for t in tasks if same_request(t, sent) and (seconds(t.created_at) or since) >= since),
            key=lambda t: seconds(t.created_at) or since,
        )
        for task in matches:
            if await store.owner_of(task.id) is not None:
                continue
            # Two jobs recovering the same prompt take one task each, in one process or several:
            # the claim is the job's own, and held until the record naming the task is stored.
            claim, claimant = f"claim:{task.id}", f"{followers.owner}:{job.record.id}"
            if not await store.lease(claim, claimant, 4 * RECOVER_SKEW_S):
                continue
            if await store.owner_of(task.id) is not None:
                await store.release(claim, claimant)
                continue
            log.warning("found task %s for the failed submit; following it", task.id)
            await followers.advance(job, task.update)
            # If this fails, the claim expires instead. A task found finished is stored with what it made.
            await store.save(job.record, adding=results_of(job.record))
            await store.release(claim, claimant)
            return True
    return False


async def created_since(upstream: Upstream, since: float) -> list[UpstreamTask]:
    """The tasks created since ``since``, newest first, page by page: under load the newest page may
    hold only others' tasks. Stops at the first older task (in case upstream ignores ``created_at_min``),
    or after ``SEARCH_PAGES`` pages."""
    found: list[UpstreamTask] = []
    for page in range(SEARCH_PAGES):
        query = RetrieveBatchBody(created_at_min=since, offset=page * SEARCH_PAGE, limit=SEARCH_PAGE)
        batch = await upstream.retrieve_batch(query)
        found += batch
        oldest = seconds(batch[-1].created_at) if batch else None
        if len(batch) < SEARCH_PAGE or (oldest is not None and oldest < since):
            break
    return found
