"""Jobs: the one follower of each running record, and the waits of tool calls on them.

A job follows one upstream task in the server's task group, not in the tool call that started it, so a
paid generation outlives a cancelled or timed-out call. It alone advances its record while the task runs
(``records.advanced``, then ``store.save``), so the record in the store is the one copy of the task's
state. Across processes sharing a store, a lease on the record id makes one of them the follower; a
watchdog takes over the running records whose follower died (or that were running when this process
last stopped) and follows them by polling.

A job never submits twice (that could bill twice). When the stream drops after upstream named the
task, the job follows it by polling ``/midjourney/tasks``; when the connection is lost before any line,
it looks for the task among recent ones (``retrieve_batch``, docs/upstream.md "Finding a lost submit")
and adopts it. Only upstream saying the task failed fails a record that has a task: a follower that
crashes or cannot read upstream gives up, and the record stays running for the next follower.

In callback mode (``MJ_MCP_PUBLIC_URL``) a submit asks upstream to POST the task's progress and end to
a URL whose secret only that record's digest matches (``arm``), and holds no stream open. Whichever
replica the POST reaches leaves it in the record's inbox (``server/routes.py``); the follower, wherever
it runs, collects it and advances the record, so the record keeps one writer and a callback never
races the follower's own saves. Taking the lease briefly instead would stop and restart the follower on
every callback; the inbox needs neither, and a follower that died leaves the inbox to its successor.

A tool call *watches* a job up to its ``wait_seconds``: each upstream progress change, and a heartbeat
while upstream is silent, becomes a strictly increasing progress report. A job followed by another
process is watched through the store, woken by its saves (``store.changes``).
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from contextlib import aclosing
from datetime import datetime
from typing import Any

import anyio
from anyio.abc import TaskGroup

from . import errors
from .core.progress import ProgressMeter
from .errors import StreamInterrupted
from .core.kinds import Kind
from .records import ErrorInfo, Heard, Outcome, Record, Submission, advanced, ends, failed
from .settings import Settings
from .store import Store, new_owner
from .upstream import TASK_ENDPOINTS, Endpoint, TaskUpdate, Upstream, UpstreamTask
from .upstream.requests import RetrieveBatchBody, TaskBody
from .upstream.registry import Upstreams

log = logging.getLogger("mj_mcp.jobs")

Report = Callable[[float, str], Awaitable[None]]

RECOVER_SKEW_S = 120.0  # our clock against upstream's: look this far before the submit for its task
SEARCH_PAGE, SEARCH_PAGES = 50, 10  # retrieve_batch pages when looking for a lost submit's task
TAKEOVERS_AT_ONCE = 16  # records taken over together after a restart: their first polls, at most this many
CALLBACK_QUIET_POLLS = 20  # callback mode: after 20 poll intervals (60 s) without a callback, ask upstream
CALLBACK_PATH = "/callbacks"  # under MJ_MCP_PUBLIC_URL: /callbacks/<record id>/<secret>
RECENT_SUBMIT_S = 30.0  # a lost submit younger than this is looked for again over a few polls


class Job:
    """The follower of one running record in this process."""

    def __init__(self, record: Record) -> None:
        self.record = record  # the latest snapshot; only this job changes it while it runs
        self.error: errors.UpstreamError | None = None  # why it ended without an image
        self.done = anyio.Event()
        self.version = 0  # bumped on every change; watchers wait for it to move
        self._changed = anyio.Event()
        self.scope = anyio.CancelScope()  # cancelled when the lease is lost to another follower
        self.caught_up = anyio.Event()  # a taken-over record: set once upstream was asked about it
        self.save_wanted = anyio.Event()  # the record changed: the saver writes the latest snapshot
        self.stopping = False  # the follower is done: the saver writes once more and ends
        self.saved_version = 0  # the version last written to the store

    def _publish(self) -> None:
        self.version += 1
        event, self._changed = self._changed, anyio.Event()
        event.set()

    async def changed(self, seen: int) -> None:
        while self.version == seen:
            await self._changed.wait()


def callback_key(secret: str) -> str:
    """What a record keeps of its callback URL's secret: a digest, so a store dump opens no callback."""
    return hashlib.sha256(secret.encode()).hexdigest()


def _seconds(value: Any) -> float | None:
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


def _same_request(task: UpstreamTask, sent: Submission) -> bool:
    """Whether upstream's task is the one we sent: of the endpoint's type (when upstream says), and
    its recorded request agreeing with the submit's fingerprint."""
    endpoint = TASK_ENDPOINTS.get(sent.endpoint)
    if endpoint is None or (task.type is not None and task.type != endpoint.task_type):
        return False
    return endpoint.recorded_as(task.request, sent.fingerprint)


def heard_of(update: TaskUpdate) -> Heard:
    """Upstream's reply in the record's terms: what a follower heard of its task."""
    error = None
    if update.failed:
        exc = update.failure()
        error = ErrorInfo(code=exc.code, message=exc.message)
    outcome = Outcome(
        image_id=update.image_id, image_url=update.image_url, raw_image_url=update.raw_image_url or update.image_url,
        width=update.image_width, height=update.image_height, raw_width=update.raw_image_width or update.image_width,
        raw_height=update.raw_image_height or update.image_height, actions=list(update.actions),
        video_id=update.video_id, videos=list(update.video_urls), prompts=list(update.descriptions))
    return Heard(task_id=update.task_id, progress=update.progress, error=error, succeeded=update.succeeded_fully,
                 preview_url=update.image_url, outcome=outcome)


# What upstream's task types make, besides images (docs/upstream.md, "/midjourney/tasks").
KIND_OF_TASK_TYPE = {"videos": Kind.VIDEOS, "describe": Kind.TEXTS}


def kind_of_task(task: UpstreamTask) -> Kind | None:
    """What a task started elsewhere makes: known from its type, or, for an image, once it ends."""
    return KIND_OF_TASK_TYPE.get(task.type or "")


class Jobs:
    def __init__(self, upstreams: Upstreams, store: Store, settings: Settings, task_group: TaskGroup,
                 owner: str | None = None) -> None:
        self.upstreams = upstreams  # a record is followed with its workspace's upstream token
        self.store = store
        self.settings = settings
        self.owner = owner or new_owner()
        self._tg = task_group
        self.live: dict[str, Job] = {}  # record id -> its follower in this process
        self._takeover = anyio.Lock()
        self._takeovers = anyio.CapacityLimiter(TAKEOVERS_AT_ONCE)

    # --- starting and taking over -------------------------------------------------------------

    def arm(self, record: Record, body: TaskBody) -> tuple[Record, TaskBody]:
        """Callback mode: the record with its callback secret's digest, and the body that asks upstream
        to answer at once and POST the task's progress and end to this service. Unchanged otherwise."""
        base = self.settings.public_url
        if not base or self.settings.embed_sim:  # the embedded simulator posts nowhere (it refuses callback_url)
            return record, body
        secret = secrets.token_urlsafe(32)
        return (record.model_copy(update={"callback_key": callback_key(secret)}),
                body.model_copy(update={"asynchronous": True,
                                        "callback_url": f"{base}{CALLBACK_PATH}/{record.id}/{secret}"}))

    async def begin(self, record: Record) -> Job:
        """Hold the lease on a new record before it is stored, so no other process's watchdog can take
        it between its insert and its submit."""
        await self.store.lease(record.id, self.owner, self.settings.lease_s)
        job = self.live[record.id] = Job(record)
        job.caught_up.set()  # its follower hears upstream first hand
        return job

    async def abandon(self, job: Job) -> None:
        """The record was never stored (its name could not be reserved): let its lease go."""
        self.live.pop(job.record.id, None)
        await self.store.release(job.record.id, self.owner)

    def submit(self, job: Job, record: Record, endpoint: Endpoint[TaskBody, TaskUpdate], body: TaskBody) -> None:
        """Send ``body`` for the stored ``record`` in the background; ``job`` came from ``begin``."""
        job.record = record
        self._tg.start_soon(self._run, job, lambda: self._submit(job, endpoint, body))

    async def take_over(self, record: Record) -> Job | None:
        """Follow a running record nobody follows (its lease is free, expired or its owner gone); None
        when another live follower has it."""
        async with self._takeover:
            job = self.live.get(record.id)
            if job is not None:
                return job
            if record.final or not await self.store.lease(record.id, self.owner, self.settings.lease_s):
                return None
            current = await self.store.get(record.id)
            if current is None or current.final:
                await self.store.release(record.id, self.owner)
                return None
            job = self.live[record.id] = Job(current)
        log.info("following %s (task %s) again", current.name, current.task_id or "unknown yet")
        self._tg.start_soon(self._run, job, lambda: self._resume(job))
        return job

    def job(self, record_id: str) -> Job | None:
        return self.live.get(record_id)

    async def current(self, record: Record) -> Record:
        """The freshest snapshot: the follower's here, else the store's."""
        job = self.live.get(record.id)
        if job is not None:
            return job.record
        return await self.store.get(record.id) or record

    # --- the follower -----------------------------------------------------------------------

    def _upstream(self, job: Job) -> Upstream:
        return self.upstreams.for_workspace(job.record.workspace)

    async def _run(self, job: Job, step: Callable[[], Awaitable[None]]) -> None:
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._keep_saved, job)
                with job.scope:
                    try:  # nothing escapes a follower: it would end every other one with the server
                        await self._take_step(job, step)
                    except Exception:
                        log.exception("follower of %s crashed; the record stays running for the next one",
                                      job.record.name)
                if job.scope.cancelled_caught:
                    # Its snapshot is stale now: the new follower writes the record, so this one must not.
                    log.warning("another follower took %s over", job.record.name)
                    job.saved_version = job.version
                job.stopping = True
                job.save_wanted.set()  # the saver writes the last snapshot, then ends
        finally:  # also when the server stops: the lease goes, so the next start takes over at once
            self.live.pop(job.record.id, None)
            job.caught_up.set()
            job.done.set()
            job._publish()
            with anyio.CancelScope(shield=True):
                try:
                    await self.store.release(job.record.id, self.owner)
                except Exception as exc:  # the lease expires on its own
                    log.warning("lease release failed: %s", exc)

    async def _take_step(self, job: Job, step: Callable[[], Awaitable[None]]) -> None:
        """Submit or resume; upstream's refusal before any task existed fails the record."""
        try:
            await step()
        except errors.UpstreamError as exc:
            if job.record.task_id is None:
                await self._fail(job, exc)  # refused before a task existed: nothing runs upstream
            else:
                log.warning("stopped following %s: %s", job.record.name, exc.code)

    async def _keep_saved(self, job: Job) -> None:
        """Write the job's latest snapshot to the store whenever it changed, one write at a time: a
        burst of updates costs one write, and the follower never waits on the disk. The job stays in
        ``live`` (where this process reads it) until its last snapshot is written."""
        job.saved_version = job.version
        while True:
            await job.save_wanted.wait()
            job.save_wanted = anyio.Event()
            if job.version != job.saved_version:
                version, record = job.version, job.record
                try:
                    await self.store.save(record)
                    job.saved_version = max(job.saved_version, version)
                except Exception as exc:  # retried with the next change, and at the end
                    log.warning("saving %s failed: %s", record.name, exc)
                    if job.stopping:
                        return
                    job.save_wanted.set()
                    await anyio.sleep(self.settings.lease_s / 10)
                    continue
            if job.stopping and job.version == job.saved_version:
                return

    async def _advance(self, job: Job, update: TaskUpdate) -> None:
        record = advanced(job.record, heard_of(update))
        if record == job.record:
            return
        job.record = record
        if record.status == "failed":
            job.error = update.failure()
        if record.final and record.task_id is None:
            # Failed before upstream named a task: a waiter frees the name at once, so the record is
            # saved before anyone hears of it; the saver's later write would bring it back.
            await self.store.save(record)
            job.saved_version = job.version + 1
        if record.final:
            job.done.set()
        job._publish()
        job.save_wanted.set()

    async def _fail(self, job: Job, error: errors.UpstreamError) -> None:
        """Fail the record, saved before anyone hears of it: a failure before any task existed frees
        the name, and a later write must not bring the record back."""
        job.record = failed(job.record, error.code, error.message)
        job.error = error
        await self.store.save(job.record)
        job.done.set()
        job._publish()
        job.saved_version = job.version  # what was published is what was saved: nothing to write again

    async def _submit(self, job: Job, endpoint: Endpoint[TaskBody, TaskUpdate], body: TaskBody) -> None:
        try:
            kind = job.record.kind
            replies = self._upstream(job).run(endpoint, body, done=lambda update: ends(kind, heard_of(update)))
            async with aclosing(replies) as updates:  # frees the connection promptly
                async for update in updates:  # to the end: the stream's tail frees its connection
                    await self._advance(job, update)
        except StreamInterrupted as why:
            if job.record.task_id and job.record.callback_key:
                pass  # callback mode: upstream answered at once with the task id, as asked
            elif job.record.task_id:
                log.warning("stream for task %s dropped (%s); following it by polling", job.record.task_id, why)
            elif not await self._recover(job, self.settings.recover_attempts):
                raise errors.ConnectionLost(
                    "the connection dropped before upstream confirmed the job, and no matching task "
                    "showed up among recent ones; it may still have started and been billed",
                    next_step="Check the task list in the AceDataCloud console before resubmitting.",
                ) from None
        except (errors.ServerError, errors.UpstreamTimeout) as exc:
            # A gateway error can come after upstream created the task: look once, never resubmit.
            if exc.task_id and not job.record.task_id:
                await self._advance(job, TaskUpdate(task_id=exc.task_id))
            if not job.record.task_id and not await self._recover(job, 1):
                raise
        if job.record.task_id and not job.record.final:
            await self._follow(job)

    async def _resume(self, job: Job) -> None:
        """Take over a record another follower left: poll its task, or find a submit lost in flight."""
        async with self._takeovers:
            if job.record.task_id is None:
                sent = job.record.submission
                # A fresh submit may still show up upstream; one from long ago is there or never will be.
                attempts = self.settings.recover_attempts if sent and time.time() - sent.at < RECENT_SUBMIT_S else 1
                if sent is None or not await self._recover(job, attempts):
                    raise errors.ConnectionLost(
                        "the server stopped before upstream confirmed the job, and no matching task showed up "
                        "among recent ones; it may still have started and been billed",
                        next_step="Check the task list in the AceDataCloud console before resubmitting.")
            await self._poll_once(job)
            job.caught_up.set()
        if not job.record.final:
            await self._follow(job)

    async def _follow(self, job: Job) -> None:
        await (self._await_callbacks(job) if job.record.callback_key else self._poll(job))

    async def _await_callbacks(self, job: Job) -> None:
        """Callback mode: advance the record from what upstream POSTed (its inbox, filled by any
        replica), holding no connection. After ``CALLBACK_QUIET_POLLS`` poll intervals without a word ask
        upstream once, as a callback can be lost; stop at the follow limit, like ``_poll``."""
        deadline = time.monotonic() + self.settings.follow_limit_s
        quiet = CALLBACK_QUIET_POLLS * self.settings.poll_interval_s
        heard = time.monotonic()  # the last word on the task: a callback, or our own look upstream
        async with self.store.changes(job.record.id) as changed:
            while not job.record.final:
                for item in await self.store.collect(job.record.id):
                    heard = time.monotonic()
                    try:
                        update = TaskUpdate.model_validate_json(item)
                    except ValueError:
                        log.warning("skipped an unreadable callback for %s", job.record.name)
                        continue
                    await self._advance(job, update)
                if job.record.final:
                    return
                if time.monotonic() > deadline:
                    log.warning("stopped waiting for task %s after %.0f s", job.record.task_id,
                                self.settings.follow_limit_s)
                    return
                if time.monotonic() - heard >= quiet:
                    await self._poll_once(job)
                    heard = time.monotonic()
                # Woken by a delivery (or, on a store that cannot hear other processes, at its beat).
                await changed(max(0.0, heard + quiet - time.monotonic()))

    async def _recover(self, job: Job, attempts: int) -> bool:
        """The submit failed before upstream named the task, so it may or may not exist. Look among
        the tasks created since the submit for one with our request that no record holds, claim it,
        and adopt it; resubmitting instead could bill twice. True when found."""
        sent = job.record.submission
        if sent is None:
            return False
        since = sent.at - RECOVER_SKEW_S
        interval = self.settings.poll_interval_s
        for attempt in range(attempts):
            if attempt:
                await anyio.sleep(interval)
                interval *= 2
            try:
                tasks = await self._created_since(self._upstream(job), since)
            except errors.UpstreamError as exc:
                log.warning("task search failed: %s", exc.code)
                continue
            matches = sorted((t for t in tasks if _same_request(t, sent) and (_seconds(t.created_at) or since) >= since),
                             key=lambda t: _seconds(t.created_at) or since)  # the oldest unclaimed first
            for task in matches:
                if await self.store.owner_of(task.id) is not None:
                    continue
                # Two jobs recovering the same prompt take one task each, in one process or several:
                # the claim is the job's own, and held until the record naming the task is stored.
                claim, claimant = f"claim:{task.id}", f"{self.owner}:{job.record.id}"
                if not await self.store.lease(claim, claimant, 4 * RECOVER_SKEW_S):
                    continue
                if await self.store.owner_of(task.id) is not None:
                    await self.store.release(claim, claimant)
                    continue
                log.warning("found task %s for the failed submit; following it", task.id)
                await self._advance(job, task.update)
                await self.store.save(job.record)  # if this fails, the claim expires instead
                await self.store.release(claim, claimant)
                return True
        return False

    async def _created_since(self, upstream: Upstream, since: float) -> list[UpstreamTask]:
        """The tasks created since ``since``, newest first, page by page: under load the newest
        page may hold only others' tasks. Stops at the first older task (in case upstream ignores
        ``created_at_min``), or after ``SEARCH_PAGES`` pages."""
        found: list[UpstreamTask] = []
        for page in range(SEARCH_PAGES):
            batch = await upstream.retrieve_batch(RetrieveBatchBody(created_at_min=since, offset=page * SEARCH_PAGE,
                                                                    limit=SEARCH_PAGE))
            found += batch
            oldest = _seconds(batch[-1].created_at) if batch else None
            if len(batch) < SEARCH_PAGE or (oldest is not None and oldest < since):
                break
        return found

    async def _poll_once(self, job: Job) -> None:
        assert job.record.task_id is not None
        try:
            task = await self._upstream(job).retrieve(job.record.task_id)
        except errors.UpstreamError as exc:  # transient, or a record we could not read: ask again later
            log.warning("task lookup for %s failed: %s", job.record.task_id, exc.code)
            return
        if task is not None and task.response is not None:
            await self._advance(job, task.update)

    async def _poll(self, job: Job) -> None:
        """Follow the record's task through ``/midjourney/tasks`` until it is final. Past
        ``follow_limit_s`` stop following but do not fail: get_task picks the task up again."""
        interval = self.settings.poll_interval_s
        deadline = time.monotonic() + self.settings.follow_limit_s
        while not job.record.final:
            await self._poll_once(job)
            if job.record.final:
                return
            if time.monotonic() > deadline:
                log.warning("stopped following task %s after %.0f s", job.record.task_id, self.settings.follow_limit_s)
                return
            await anyio.sleep(interval)
            interval = min(interval * 1.5, 5 * self.settings.poll_interval_s)  # 3 s growing to 15 s

    # --- leases and the watchdog ----------------------------------------------------------------

    async def keep_leases(self) -> None:
        """Renew this process's leases every third of their life, give up jobs whose lease another
        follower took, and take over running records nobody follows (at once, then every lease
        period): those a dead process left, and those running when this one last stopped."""
        ttl = self.settings.lease_s
        next_scan = 0.0
        while True:
            if self.live:
                ids = list(self.live)
                try:
                    kept = await self.store.renew(ids, self.owner, ttl)
                except Exception as exc:
                    log.warning("lease renewal failed: %s", exc)
                    kept = set(ids)
                for lost in set(ids) - kept:
                    job = self.live.get(lost)
                    if job is not None:
                        job.scope.cancel()
            if time.monotonic() >= next_scan:
                next_scan = time.monotonic() + ttl
                try:
                    await self.adopt_orphans()
                except Exception as exc:
                    log.warning("looking for running records failed: %s", exc)
            await anyio.sleep(ttl / 3)

    async def adopt_orphans(self) -> int:
        """Take over every running record younger than the follow limit that no live follower has."""
        horizon = time.time() - self.settings.follow_limit_s
        taken = 0
        for record in await self.store.running():
            if record.id not in self.live and record.created_at >= horizon and await self.take_over(record):
                taken += 1
        return taken

    # --- a tool call's wait ---------------------------------------------------------------------

    async def watch(self, record: Record, seconds: float, report: Report) -> Record:
        """Report the record's progress for at most ``seconds`` or until it is final; the latest snapshot."""
        if seconds > 0 and not record.final:
            with anyio.move_on_after(seconds):
                job = self.live.get(record.id)
                if job is None:
                    job = await self._watch_remote(record, report)
                if job is not None:
                    await self._watch_local(job, report)
        return await self.current(record)

    async def _watch_local(self, job: Job, report: Report) -> None:
        meter = ProgressMeter()
        if job.record.progress > 0:  # joining a job that is under way (get_task)
            await report(meter.upstream(job.record.progress), f"generating {job.record.progress:.0f}%")
        else:
            await report(meter.heartbeat(), "submitted, waiting for upstream")
        seen, last = job.version, job.record.progress if job.record.progress > 0 else -1.0
        silent_since = time.monotonic()
        while not job.done.is_set():
            with anyio.move_on_after(self.settings.heartbeat_s):
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

    async def _watch_remote(self, record: Record, report: Report) -> Job | None:
        """Watch a record another process follows, through the store; when its follower is gone,
        take it over and return the new local job."""
        meter = ProgressMeter()
        last, beat = -1.0, time.monotonic()
        next_try = time.monotonic()
        async with self.store.changes(record.id) as changed:  # woken by the follower's saves, wherever it is
            record = await self.store.get(record.id) or record
            while not record.final:
                if record.progress > last:
                    last = record.progress
                    await report(meter.upstream(last), f"generating {last:.0f}%")
                    beat = time.monotonic()
                elif time.monotonic() - beat >= self.settings.heartbeat_s:
                    await report(meter.heartbeat(), "generating elsewhere, waiting for upstream")
                    beat = time.monotonic()
                if time.monotonic() >= next_try:
                    next_try = time.monotonic() + self.settings.lease_s / 3
                    job = await self.take_over(record)
                    if job is not None:
                        return job
                now = time.monotonic()
                # A store that hears every process's saves wakes this at once; one that cannot
                # (SQLite) shortens the wait to its own polling beat.
                await changed(max(0.0, min(beat + self.settings.heartbeat_s, next_try) - now))
                record = await self.store.get(record.id) or record
        if record.status == "completed":
            await report(meter.upstream(100.0, final=True), "done")
        return None
