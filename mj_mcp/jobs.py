"""Jobs: one upstream generation each, consumed in the background, followed by tool calls.

A job runs in the server's task group, not in the tool call that started it, so a paid generation
outlives a cancelled or timed-out call and its result still reaches the registry (through the
``on_change`` hook). A tool call *follows* a job: it turns each upstream progress change, and a
heartbeat while upstream is silent, into strictly increasing progress reports.

When the stream drops after upstream told us the task id, the job follows that task by polling
``/midjourney/tasks``; it never submits again (that could bill twice).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from contextlib import aclosing
from typing import Any

import anyio
from anyio.abc import TaskGroup

from . import errors
from .config import Settings
from .upstream import StreamInterrupted, TaskUpdate, Upstream

log = logging.getLogger("mj_mcp.jobs")

Report = Callable[[float, str], Awaitable[None]]


class Job:
    def __init__(self, body: dict[str, Any], on_change: Callable[[Job], None] | None = None) -> None:
        self.body = body
        self.on_change = on_change
        self.task_id: str | None = None
        self.progress: float = 0.0  # upstream's own figure, 0-100
        self.result: TaskUpdate | None = None  # the final successful update
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


class Jobs:
    def __init__(self, upstream: Upstream, settings: Settings, task_group: TaskGroup) -> None:
        self.upstream = upstream
        self.settings = settings
        self._tg = task_group

    def start(self, body: dict[str, Any], on_change: Callable[[Job], None] | None = None) -> Job:
        job = Job(body, on_change)
        self._tg.start_soon(self._run, job)
        return job

    async def _run(self, job: Job) -> None:
        try:
            async with aclosing(self.upstream.submit(job.body)) as updates:  # frees the connection promptly
                async for update in updates:
                    job.apply(update)
                    if job.done.is_set():
                        return
        except StreamInterrupted as why:
            if job.task_id:
                log.warning("stream for task %s dropped (%s); following it by polling", job.task_id, why)
                await self.poll(job)
            else:
                job.fail(errors.ConnectionLost(
                    "the connection dropped before upstream confirmed the job; it may have started and been billed",
                    next_step="Do not resubmit at once: check the AceDataCloud console's task list, then retry if nothing is there.",
                ))
        except errors.UpstreamError as exc:
            job.fail(exc)
        except Exception:
            log.exception("job crashed")
            job.fail(errors.ServerError("internal error while following the job", code="internal"))

    async def poll(self, job: Job) -> None:
        """Follow a known task id through ``/midjourney/tasks`` until it is final or we give up."""
        assert job.task_id is not None
        interval = self.settings.poll_interval_s
        deadline = time.monotonic() + self.settings.timeout_s
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
                job.fail(errors.UpstreamTimeout(
                    f"task {job.task_id} was not finished after {self.settings.timeout_s:.0f} s",
                    next_step="Call get_task later with this task id; it may still finish.",
                ))
                return
            await anyio.sleep(interval)
            interval = min(interval * 1.5, 15.0)

    async def follow(self, job: Job, report: Report) -> None:
        """Report the job's progress until it is done: upstream changes, and heartbeats in silences."""
        meter = ProgressMeter()
        await report(meter.heartbeat(), "submitted, waiting for upstream")
        seen, last_progress = job.version, -1.0
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
