"""The followers: one per running record in this process, each the record's one writer while it runs.

A follower runs in the server's task group, not in the tool call that started it, so a paid job
outlives a cancelled or timed-out call. It submits (or, taking a record over, resumes), advances its
record with what it hears of the task (``records.advanced``), and keeps the store's copy current
(``_keep_saved``: one write at a time, a burst of updates costing one). Only upstream saying the task
failed fails a record that has a task: a follower that crashes or cannot read upstream gives up, and
the record stays running for the next follower.

A follower never submits twice (that could bill twice). When the stream drops after upstream named the
task it follows it by polling ``/midjourney/tasks``; when the submit lost its connection before that,
it looks for the task (``recovery.py``); in callback mode it waits for upstream's word (``callbacks.py``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from contextlib import aclosing

import anyio
from anyio.abc import TaskGroup
from pydantic import BaseModel

from .. import errors
from ..errors import StreamInterrupted
from ..records import Heard, Record, advanced, ends, failed, results_of
from ..settings import Settings
from ..store import Hold, Store, new_owner
from ..upstream import TASK_ENDPOINTS, Endpoint, TaskUpdate, Upstream
from ..upstream.client import NotSent
from ..upstream.registry import Upstreams
from ..upstream.requests import Body, TaskBody
from . import callbacks, recovery
from .translate import heard_of, heard_of_answer

log = logging.getLogger("mj_mcp.jobs")

# Records taken over together after a restart: their first polls, at most this many at once.
TAKEOVERS_AT_ONCE = 16
# A lost submit younger than this is looked for again over a few polls.
RECENT_SUBMIT_S = 30.0


class Job:
    """The follower of one running record in this process: its latest snapshot and how it is going."""

    def __init__(self, record: Record) -> None:
        # The latest snapshot; only this job changes it while it runs.
        self.record = record
        # Why it ended without a result (the error as raised, with its own next step).
        self.error: errors.UpstreamError | None = None
        self.done = anyio.Event()
        # Bumped on every change; watchers wait for it to move.
        self.version = 0
        self._changed = anyio.Event()
        # Cancelled when the lease is lost to another follower.
        self.scope = anyio.CancelScope()
        # A taken-over record: set once upstream was asked about it.
        self.caught_up = anyio.Event()
        # The record changed: the saver writes the latest snapshot.
        self.save_wanted = anyio.Event()
        # The follower is done: the saver writes once more and ends.
        self.stopping = False
        # The version last written to the store.
        self.saved_version = 0
        # The follower has ended and its last snapshot is written (or could not be).
        self.closed = anyio.Event()
        # Its final record, as saved, the lease going with it (one store step, not two); None before.
        self.final_saved: Record | None = None

    def publish(self) -> None:
        self.version += 1
        event, self._changed = self._changed, anyio.Event()
        event.set()

    async def changed(self, seen: int) -> None:
        while self.version == seen:
            await self._changed.wait()

    def write_again(self) -> None:
        """The store lost what was written (a Redis restarted empty): the saver writes the latest
        snapshot again, though it did not change."""
        self.saved_version = -1
        self.save_wanted.set()


class Followers:
    """This process's followers, by record id, and what they share: the store, the upstream clients
    (a record is followed with its workspace's token), the settings and the task group they run in."""

    def __init__(
        self, upstreams: Upstreams, store: Store, settings: Settings, task_group: TaskGroup, owner: str | None = None
    ) -> None:
        self.upstreams = upstreams
        self.store = store
        self.settings = settings
        self.owner = owner or new_owner()
        self._tg = task_group
        # Record id -> its follower in this process.
        self.live: dict[str, Job] = {}
        self._takeover = anyio.Lock()
        self._takeovers = anyio.CapacityLimiter(TAKEOVERS_AT_ONCE)

    # --- starting and taking over -------------------------------------------------------------

    def begin(self, record: Record) -> tuple[Job, Hold]:
        """A follower for a new record, and the lease the store takes with the record when it stores it
        (``Store.admit``, one step), so no other process's watchdog can take it between its insert and
        its submit."""
        job = self.live[record.id] = Job(record)
        # Its follower hears upstream first hand.
        job.caught_up.set()
        return job, Hold(self.owner, self.settings.lease_s)

    async def abandon(self, job: Job) -> None:
        """The record was not kept (its name could not be reserved, a limit refused it): let its lease go."""
        self.live.pop(job.record.id, None)
        await self.store.release(job.record.id, self.owner)

    def submit(self, job: Job, record: Record, endpoint: Endpoint[Body, BaseModel], body: Body) -> None:
        """Send ``body`` for the stored ``record`` in the background; ``job`` came from ``begin``. An
        endpoint upstream runs as a task is followed to its end; one that answers at once, to its answer."""
        job.record = record
        task_endpoint = TASK_ENDPOINTS.get(endpoint.name)
        if task_endpoint is not None and isinstance(body, TaskBody):
            self._tg.start_soon(self._run, job, lambda: self._submit(job, task_endpoint, body))
        else:
            self._tg.start_soon(self._run, job, lambda: self._ask(job, endpoint, body))

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

    async def current(self, record: Record) -> Record:
        """The freshest snapshot: the follower's here, else the store's."""
        job = self.live.get(record.id)
        if job is not None:
            return job.record
        return await self.store.get(record.id) or record

    def upstream_of(self, job: Job) -> Upstream:
        return self.upstreams.for_workspace(job.record.workspace)

    # --- one follower ---------------------------------------------------------------------------

    async def _run(self, job: Job, step: Callable[[], Awaitable[None]]) -> None:
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._keep_saved, job)
                with job.scope:
                    # Nothing escapes a follower: it would end every other one with the server.
                    try:
                        await self._take_step(job, step)
                    # A store error says what failed and what to do: its traceback would add nothing.
                    except errors.StoreError as exc:
                        log.warning(
                            "follower of %s stopped; the record stays running for the next one: %s",
                            job.record.name,
                            exc,
                        )
                    except Exception:
                        log.exception(
                            "follower of %s crashed; the record stays running for the next one", job.record.name
                        )
                if job.scope.cancelled_caught:
                    # Its snapshot is stale now: the new follower writes the record, so this one must not.
                    log.warning("another follower took %s over", job.record.name)
                    job.saved_version = job.version
                job.stopping = True
                # The saver writes the last snapshot, then ends.
                job.save_wanted.set()
        # Also when the server stops: the lease goes, so the next start takes over at once.
        finally:
            self.live.pop(job.record.id, None)
            job.caught_up.set()
            job.done.set()
            job.publish()
            job.closed.set()
            with anyio.CancelScope(shield=True):
                try:
                    if job.final_saved is None:
                        await self.store.release(job.record.id, self.owner)
                # The lease expires on its own.
                except Exception as exc:
                    log.warning("lease release failed: %s", exc)

    async def _take_step(self, job: Job, step: Callable[[], Awaitable[None]]) -> None:
        """Submit or resume; upstream's refusal before any task existed fails the record."""
        try:
            await step()
        except errors.UpstreamError as exc:
            if job.record.task_id is None:
                # Refused before a task existed: nothing runs upstream.
                await self._fail(job, exc)
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
                    # What a completed record made (an edit's results) is stored with it, in one step; a
                    # final record's last save lets the lease go too: nothing follows it any more.
                    await self.store.save(
                        record, adding=results_of(record), release=self.owner if record.final else None
                    )
                    job.saved_version = max(job.saved_version, version)
                    if record.final:
                        job.final_saved = record
                # Retried with the next change, and at the end.
                except Exception as exc:
                    log.warning("saving %s failed: %s", record.name, exc)
                    if job.stopping:
                        return
                    job.save_wanted.set()
                    await anyio.sleep(self.settings.lease_s / 10)
                    continue
            if job.stopping and job.version == job.saved_version:
                return

    async def advance(self, job: Job, update: TaskUpdate) -> None:
        """The job's record after one reply of upstream, published to its watchers and saved."""
        await self._advance_to(job, heard_of(update), update)

    async def _advance_to(self, job: Job, heard: Heard, update: TaskUpdate | None = None) -> None:
        record = advanced(job.record, heard)
        if record == job.record:
            return
        # A caller polling the job (an MCP task) reads when it last moved.
        record = job.record = record.model_copy(update={"updated_at": time.time()})
        if record.status == "failed" and update is not None:
            job.error = update.failure()
        if record.final and record.task_id is None:
            # Failed before upstream named a task: a waiter frees the name at once, so the record is
            # saved before anyone hears of it; the saver's later write would bring it back.
            await self.store.save(record)
            job.saved_version = job.version + 1
        if record.final:
            job.done.set()
        job.publish()
        job.save_wanted.set()

    async def _fail(self, job: Job, error: errors.UpstreamError) -> None:
        """Fail the record, saved before anyone hears of it: a failure before any task existed frees
        the name, and a later write must not bring the record back."""
        job.record = failed(job.record, error.code, error.message).model_copy(update={"updated_at": time.time()})
        job.error = error
        await self.store.save(job.record)
        job.done.set()
        job.publish()
        # What was published is what was saved: nothing to write again.
        job.saved_version = job.version

    async def _submit(self, job: Job, endpoint: Endpoint[TaskBody, TaskUpdate], body: TaskBody) -> None:
        try:
            kind = job.record.kind
            replies = self.upstream_of(job).run(endpoint, body, done=lambda update: ends(kind, heard_of(update)))
            # Read to the end (the stream's tail frees its connection); closed promptly if cut short.
            async with aclosing(replies) as updates:
                async for update in updates:
                    await self.advance(job, update)
        except StreamInterrupted as why:
            if job.record.task_id and job.record.callback_key:
                # Callback mode: upstream answered at once with the task id, as asked.
                pass
            elif job.record.task_id:
                log.warning("stream for task %s dropped (%s); following it by polling", job.record.task_id, why)
            elif not await recovery.find_lost_task(self, job, self.settings.recover_attempts):
                raise _maybe_billed("the connection dropped before upstream confirmed the job") from None
        except (errors.ServerError, errors.UpstreamTimeout) as exc:
            # A gateway error can come after upstream created the task: look once, never resubmit.
            if exc.task_id and not job.record.task_id:
                await self.advance(job, TaskUpdate(task_id=exc.task_id))
            if not job.record.task_id and not await recovery.find_lost_task(self, job, 1):
                raise
        if job.record.task_id and not job.record.final:
            await self._follow(job)

    async def _ask(self, job: Job, endpoint: Endpoint[Body, BaseModel], body: Body) -> None:
        """An endpoint that answers at once (describe, seed, shorten, translate): its answer is the
        outcome. Billed, so never resent after a 5xx or a lost connection (the client's policy). Where
        upstream keeps the answer as a task (describe), a lost answer is looked for among recent tasks
        like a lost submit and followed to its end; elsewhere there is no task, so the record fails."""
        try:
            reply = await self.upstream_of(job).ask(endpoint, body)
        except NotSent:
            # Refused before a byte left: nothing started.
            raise
        except (errors.ConnectionLost, errors.ServerError, errors.UpstreamTimeout) as exc:
            if endpoint.task_type is None:
                raise
            # A connection lost after sending: the task may take a moment to show; a gateway error looks once.
            lost = isinstance(exc, errors.ConnectionLost)
            if exc.task_id:
                await self.advance(job, TaskUpdate(task_id=exc.task_id))
            elif not await recovery.find_lost_task(self, job, self.settings.recover_attempts if lost else 1):
                raise (_maybe_billed("the connection dropped before upstream answered") if lost else exc) from None
            if not job.record.final:
                await self._follow(job)
            return
        await self._advance_to(job, heard_of_answer(reply))

    async def _resume(self, job: Job) -> None:
        """Take over a record another follower left: poll its task, or find a submit lost in flight."""
        async with self._takeovers:
            if job.record.task_id is None:
                sent = job.record.submission
                # A fresh submit may still show up upstream; one from long ago is there or never will be.
                attempts = self.settings.recover_attempts if sent and time.time() - sent.at < RECENT_SUBMIT_S else 1
                if sent is None or not await recovery.find_lost_task(self, job, attempts):
                    raise _maybe_billed("the server stopped before upstream confirmed the job")
            await self.poll_once(job)
            job.caught_up.set()
        if not job.record.final:
            await self._follow(job)

    async def _follow(self, job: Job) -> None:
        await (callbacks.follow_callbacks(self, job) if job.record.callback_key else self._poll(job))

    async def poll_once(self, job: Job) -> None:
        """Ask upstream once about the job's task; a failed look is only logged (asked again later)."""
        assert job.record.task_id is not None
        try:
            task = await self.upstream_of(job).retrieve(job.record.task_id)
        # Transient, or a record we could not read: ask again later.
        except errors.UpstreamError as exc:
            log.warning("task lookup for %s failed: %s", job.record.task_id, exc.code)
            return
        if task is not None and task.response is not None:
            await self.advance(job, task.update)

    async def _poll(self, job: Job) -> None:
        """Follow the record's task through ``/midjourney/tasks`` until it is final. Past
        ``follow_limit_s`` stop following but do not fail: a later look picks the task up again."""
        interval = self.settings.poll_interval_s
        deadline = time.monotonic() + self.settings.follow_limit_s
        while not job.record.final:
            await self.poll_once(job)
            if job.record.final:
                return
            if time.monotonic() > deadline:
                log.warning("stopped following task %s after %.0f s", job.record.task_id, self.settings.follow_limit_s)
                return
            await anyio.sleep(interval)
            # 3 s growing to 15 s.
            interval = min(interval * 1.5, 5 * self.settings.poll_interval_s)


def _maybe_billed(what: str) -> errors.ConnectionLost:
    """A submit that may have reached upstream, whose task was not found: never resent, said so."""
    return errors.ConnectionLost(
        f"{what}, and no matching task showed up among recent ones; it may still have started and been billed",
        next_step="Check the task list in the AceDataCloud console before resubmitting.",
    )
