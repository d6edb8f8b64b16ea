"""A task's life on the simulator's event loop: prepared, queued, one event per progress step, then the
result or the planned failure (docs/upstream.md, "The simulator"); what each event says is payloads.py's.

State mutations hold ``state.lock`` briefly and never across an ``await``.
"""

from __future__ import annotations

import asyncio
import logging
import time

from . import payloads, planning
from .records import SimTask
from .state import SimState

log = logging.getLogger("mj_mcp.sim")


async def run_job(state: SimState, task: SimTask, late: float = 0.0) -> None:
    """Queue, then one event per progress step, then the result or the planned failure; ``late``
    wall seconds of the plan are already past (a task resumed after a restart)."""
    plan = task.plan
    owed = late

    async def pause(seconds: float) -> None:
        nonlocal owed
        paid = min(owed, seconds)
        owed -= paid
        await asyncio.sleep(seconds - paid)

    try:
        await planning.prepare(state, task)
        await pause(plan.start_delay)
        with state.lock:
            task.status, task.started_at = "processing", time.time()
        if plan.fail_at is not None and plan.fail_at <= 0:
            fail(state, task, plan.fail_code, plan.fail_message)
            return
        for i, p in enumerate(plan.steps):
            if i > 0 or p > 0:
                await pause(plan.interval)
            if plan.fail_at is not None and p >= plan.fail_at:
                fail(state, task, plan.fail_code, plan.fail_message)
                return
            if p >= 100:
                break
            progress(state, task, p)
        finish(state, task)
    except asyncio.CancelledError:
        raise
    except Exception:  # a simulator bug must still end the task, visibly
        log.exception("simulated job %s crashed", task.id)
        fail(state, task, "api_error", "Internal server error.")


def resume(state: SimState, task: SimTask) -> None:
    """Go on with a task an earlier process accepted and did not finish (it is in the archive), as
    upstream goes on while a client restarts: from where its plan says it would be by now."""
    late = max(0.0, time.time() - task.created_at)
    task.job = asyncio.get_running_loop().create_task(run_job(state, task, late))


def _notify(task: SimTask) -> None:
    ev, task.changed = task.changed, asyncio.Event()
    if ev is not None:
        ev.set()


def progress(state: SimState, task: SimTask, p: int) -> None:
    """An intermediate event (payloads.py): for an image, a blurry preview, no actions, and (like
    upstream) a fresh image_id."""
    with state.lock:
        if task.done:
            return
        task.progress = p
        task.events.append(payloads.progress_payload(state, task, p))
        _notify(task)


def finish(state: SimState, task: SimTask) -> None:
    """Register what the task made and emit the final payload."""
    with state.lock:
        if task.done or task.aborted:
            return
        payload, image, video = payloads.final_payload(state, task)
        if image is not None:
            state.images[image.image_id] = image
            task.image_id = image.image_id
        if video is not None:
            state.videos[video.video_id] = video
            task.video_id = video.video_id
        task.final = payload
        task.progress = 100
        task.status, task.finished_at = "succeeded", time.time()
        task.events.append(payload)
        _notify(task)
        state.keep(task, image, video)


def fail(state: SimState, task: SimTask, code: str, message: str) -> None:
    with state.lock:
        if task.done or task.aborted:
            return
        task.error = {"code": code, "message": message}
        task.final = {"success": False, "task_id": task.id, "trace_id": task.trace_id, "error": dict(task.error)}
        task.status, task.finished_at = "failed", time.time()
        task.events.append(task.final)
        _notify(task)
        state.keep(task)


async def wait(task: SimTask, index: int, timeout: float | None = None) -> bool:
    """Wait until the task has more than ``index`` events or has ended; False on timeout."""
    if len(task.events) > index or task.done or task.aborted or task.changed is None:
        return True
    try:
        await asyncio.wait_for(task.changed.wait(), timeout)
    except TimeoutError:
        return False
    return True


async def wait_done(task: SimTask, timeout: float) -> bool:
    """Wait for the end of the task; False when ``timeout`` (wall seconds) passed first."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not task.done and not task.aborted:
        left = deadline - asyncio.get_running_loop().time()
        if left <= 0 or not await wait(task, len(task.events), left):
            return task.done
    return task.done
