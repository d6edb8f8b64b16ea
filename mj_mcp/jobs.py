"""Jobs: one upstream generation each, consumed in the background, followed by tool calls.

A job runs in the server's task group, not in the tool call that started it, so a paid generation
outlives a cancelled or timed-out call and its result still reaches the registry (through the
``on_change`` hook). A tool call *follows* a job: it turns each upstream progress change, and a
heartbeat while upstream is silent, into strictly increasing progress reports.

A job never submits twice (that could bill twice). When the stream drops after upstream told us the
task id, the job follows that task by polling ``/midjourney/tasks``; when the connection is lost
before any line, it looks for the task among recent ones (``retrieve_batch``) and adopts it. A tool
call follows a job only up to its ``wait_seconds``; the job itself goes on.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from contextlib import aclosing
from datetime import datetime
from typing import Any

import anyio
from anyio.abc import TaskGroup

from . import errors
from .errors import StreamInterrupted
from .settings import Settings
from .upstream import TaskRecord, TaskUpdate, Upstream

log = logging.getLogger("mj_mcp.jobs")

Report = Callable[[float, str], Awaitable[None]]


class Job:
    def __init__(self, body: dict[str, Any], on_change: Callable[[Job], None] | None = None) -> None:
        self.body = body
        self.on_change = on_change
        self.task_id: str | None = None
        self.progress: float = 0.0  # upstream's own figure, 0-100
        self.result: TaskUpdate | None = None  # the final successful update
        self.preview_url: str | None = None  # upstream's latest partial picture while it runs (the MCP App shows it)
        self.error: errors.UpstreamError | None = None
        self.started_at = time.time()
        self.done = anyio.Event()
        self.version = 0  # bumped on every change; followers wait for it to move
        self._changed = anyio.Event()

    def _publish(self) -> None:
        self.version += 1
        event, self._changed = self._changed, anyio.Event()
        event.set()
        if self.on_change is not None:
            try:
                self.on_change(self)
            except Exception:  # a broken hook must not lose the job
                log.exception("job change hook failed")

    def apply(self, update: TaskUpdate) -> None:
        if update.task_id and not self.task_id:
            self.task_id = update.task_id
        if update.failed:
            self.fail(update.failure())
            return
        if update.progress is not None:
            self.progress = max(self.progress, min(update.progress, 100.0))
        if not update.final and update.image_url:
            self.preview_url = update.image_url
        if update.final:
            self.result = update
            self.done.set()
        self._publish()

    def fail(self, error: errors.UpstreamError) -> None:
        if self.done.is_set():
            return
        self.error = error
        self.done.set()
        self._publish()

    def give_up(self) -> None:
        """Done without an outcome: we stopped following; the task may still finish upstream."""
        if not self.done.is_set():
            self.done.set()
            self._publish()

    async def changed(self, seen: int) -> None:
        while self.version == seen:
            await self._changed.wait()


class ProgressMeter:
    """Maps upstream progress and heartbeats onto one strictly increasing 0-100 scale.

    Upstream jumps (0, 35, 75, 100) with long silences between. A heartbeat must increase, yet must
    not claim progress upstream has not made, so it creeps halfway towards one point above the last
    upstream figure: a queue of any length shows under 1%, then 35 when upstream says 35.
    """

    total = 100.0

    def __init__(self) -> None:
        self.value = 0.0
        self.upstream_seen = 0.0

    def _advance(self, to: float) -> float:
        self.value = max(to, self.value + 1e-4)
        return self.value

    def upstream(self, progress: float, final: bool = False) -> float:
        self.upstream_seen = max(self.upstream_seen, progress)
        return self._advance(100.0 if final else min(progress, 99.0))

    def heartbeat(self) -> float:
        ceiling = min(self.upstream_seen + 1.0, 99.5)
        return self._advance(self.value + (ceiling - self.value) / 2)


RECOVER_SKEW_S = 120.0  # our clock against upstream's: look this far before the submit for its task
SEARCH_PAGE, SEARCH_PAGES = 50, 10  # retrieve_batch pages when looking for a lost submit's task


def _seconds(value: Any) -> float | None:
    """A task's ``created_at``: unix seconds, a numeric string or ISO 8601 (contract 2.2 is lenient)."""
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


def _same_request(task: TaskRecord, body: dict[str, Any]) -> bool:
    """Whether upstream's recorded request is the one we sent (action, prompt and image_id agree)."""
    sent = task.request
    return ((sent.get("action") or "generate") == (body.get("action") or "generate")
            and (sent.get("prompt") or None) == (body.get("prompt") or None)
            and (sent.get("image_id") or None) == (body.get("image_id") or None))


class Jobs:
    def __init__(self, upstream: Upstream, settings: Settings, task_group: TaskGroup) -> None:
        self.upstream = upstream
        self.settings = settings
        self._tg = task_group
        self._claimed: dict[str, float] = {}  # task id -> when a job took it: recovery never adopts one twice

    def claim(self, task_id: str) -> None:
        """Mark a task as followed. Claims older than any search window are dropped, so a server
        that runs for months keeps only the recent ones."""
        now = time.monotonic()
        if len(self._claimed) >= 1024:
            self._claimed = {t: at for t, at in self._claimed.items() if now - at < 4 * RECOVER_SKEW_S}
        self._claimed.setdefault(task_id, now)

    def start(self, body: dict[str, Any], on_change: Callable[[Job], None] | None = None) -> Job:
        """Submit ``body`` in the background."""
        job = Job(body, on_change)
        self._tg.start_soon(self._guarded, job, self._submit)
        return job

    def track(self, task_id: str, on_change: Callable[[Job], None] | None = None) -> Job:
        """Follow a task submitted earlier (or elsewhere) by polling, in the background."""
        job = Job({}, on_change)
        job.task_id = task_id
        self.claim(task_id)
        self._tg.start_soon(self._guarded, job, self.poll)
        return job

    async def _guarded(self, job: Job, step: Callable[[Job], Awaitable[None]]) -> None:
        try:
            await step(job)
        except errors.UpstreamError as exc:
            job.fail(exc)
        except Exception:
            log.exception("job crashed")
            job.fail(errors.ServerError("internal error while following the job", code="internal"))

    async def _submit(self, job: Job) -> None:
        try:
            async with aclosing(self.upstream.submit(job.body)) as updates:  # frees the connection promptly
                async for update in updates:  # to the end: the stream's tail frees its connection
                    job.apply(update)
                    if job.task_id:
                        self.claim(job.task_id)
        except StreamInterrupted as why:
            if job.task_id:
                log.warning("stream for task %s dropped (%s); following it by polling", job.task_id, why)
            else:
                log.warning("submit lost its connection before any line (%s); looking for the task", why)
                if not await self.recover(job, self.settings.recover_attempts):
                    job.fail(errors.ConnectionLost(
                        "the connection dropped before upstream confirmed the job, and no matching task "
                        "showed up among recent ones; it may still have started and been billed",
                        next_step="Check the task list in the AceDataCloud console before resubmitting.",
                    ))
        except (errors.ServerError, errors.UpstreamTimeout) as exc:
            # A gateway error can come after upstream created the task: look once, never resubmit.
            if exc.task_id and not job.task_id:
                job.apply(TaskUpdate(task_id=exc.task_id))
            if not job.task_id and not await self.recover(job, 1):
                raise
        if job.task_id and not job.done.is_set():
            self.claim(job.task_id)
            await self.poll(job)

    async def recover(self, job: Job, attempts: int) -> bool:
        """The submit failed before upstream named the task, so it may or may not exist. Look among
        the tasks created since the submit for one with our request, unclaimed, and adopt it;
        resubmitting instead could bill twice. True when found."""
        since = job.started_at - RECOVER_SKEW_S
        interval = self.settings.poll_interval_s
        for attempt in range(attempts):
            if attempt:
                await anyio.sleep(interval)
                interval *= 2
            try:
                tasks = await self._created_since(since)
            except errors.UpstreamError as exc:
                log.warning("task search failed: %s", exc.code)
                continue
            matches = [t for t in tasks if t.id not in self._claimed and _same_request(t, job.body)
                       and (_seconds(t.created_at) or since) >= since]
            if matches:
                task = min(matches, key=lambda t: _seconds(t.created_at) or since)  # the oldest unclaimed
                log.warning("found task %s for the failed submit; following it", task.id)
                self.claim(task.id)
                job.apply(task.update)
                return True
        return False

    async def _created_since(self, since: float) -> list[TaskRecord]:
        """The tasks created since ``since``, newest first, page by page: under load the newest
        page may hold only others' tasks. Stops at the first older task (in case upstream ignores
        ``created_at_min``), or after ``SEARCH_PAGES`` pages."""
        found: list[TaskRecord] = []
        for page in range(SEARCH_PAGES):
            batch = await self.upstream.retrieve_batch(created_at_min=since, offset=page * SEARCH_PAGE,
                                                       limit=SEARCH_PAGE)
            found += batch
            oldest = _seconds(batch[-1].created_at) if batch else None
            if len(batch) < SEARCH_PAGE or (oldest is not None and oldest < since):
                break
        return found

    async def poll(self, job: Job) -> None:
        """Follow a known task id through ``/midjourney/tasks`` until it is final. Past
        ``follow_limit_s`` stop following but do not fail: get_task picks the task up again."""
        assert job.task_id is not None
        interval = self.settings.poll_interval_s
        deadline = time.monotonic() + self.settings.follow_limit_s
        while not job.done.is_set():
            try:
                record = await self.upstream.retrieve(job.task_id)
            except errors.UpstreamError as exc:
                log.warning("task lookup for %s failed: %s", job.task_id, exc.code)
                record = None
            if record is not None and record.response is not None:
                job.apply(record.update)
                if job.done.is_set():
                    return
            if time.monotonic() > deadline:
                log.warning("stopped following task %s after %.0f s", job.task_id, self.settings.follow_limit_s)
                job.give_up()
                return
            await anyio.sleep(interval)
            interval = min(interval * 1.5, 5 * self.settings.poll_interval_s)  # 3 s growing to 15 s

    async def follow(self, job: Job, report: Report) -> None:
        """Report the job's progress until it is done: upstream changes, and heartbeats in silences."""
        meter = ProgressMeter()
        if job.progress > 0:  # joining a job that is under way (get_task)
            await report(meter.upstream(job.progress), f"generating {job.progress:.0f}%")
        else:
            await report(meter.heartbeat(), "submitted, waiting for upstream")
        seen, last_progress = job.version, job.progress if job.progress > 0 else -1.0
        silent_since = time.monotonic()
        while not job.done.is_set():
            with anyio.move_on_after(self.settings.heartbeat_s):
                await job.changed(seen)
            if job.done.is_set():
                break
            if job.version != seen and job.progress > last_progress:
                seen, last_progress = job.version, job.progress
                silent_since = time.monotonic()
                await report(meter.upstream(job.progress), f"generating {job.progress:.0f}%")
            else:
                seen = job.version
                waited = time.monotonic() - silent_since
                await report(meter.heartbeat(), f"waiting for upstream ({waited:.0f} s)")
        if job.result is not None:
            await report(meter.upstream(100.0, final=True), "done")
