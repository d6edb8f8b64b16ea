"""A task's life on the simulator's event loop: queued, one event per progress step, then the
result or the planned failure (docs/upstream.md, "The simulator"), with the payloads upstream sends at each step.

State mutations hold ``state.lock`` briefly and never across an ``await``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from ..core import actions
from ..core.actions import Kind
from . import cdn
from .geometry import Size, fit_long_side, half
from .records import SimImage, SimTask
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


def image_payload(task: SimTask, *, image_url: str, size: Size, image_id: str, raw_url: str, raw: Size,
                  progress: int, acts: list[str]) -> dict[str, Any]:
    """The documented 11 keys, in the guide's order."""
    return {
        "image_url": image_url,
        "image_width": size[0],
        "image_height": size[1],
        "image_id": image_id,
        "raw_image_url": raw_url,
        "raw_image_width": raw[0],
        "raw_image_height": raw[1],
        "progress": progress,
        "actions": acts,
        "task_id": task.id,
        "success": True,
    }


def progress(state: SimState, task: SimTask, p: int) -> None:
    """An intermediate event: a blurry preview, no actions, and (like upstream) a fresh image_id."""
    with state.lock:
        if task.done:
            return
        if state.config.stable_intermediate_image_id and task.events:
            image_id = task.events[0]["image_id"]
        else:
            image_id = state.ids.image_id()
        raw = fit_long_side(task.result.get("raw", (1024, 1024)), 512)
        thumb = half(raw)
        preview = cdn.preview_url(task)
        payload = image_payload(task, image_url=f"{preview}?width={thumb[0]}&height={thumb[1]}", size=thumb,
                                image_id=image_id, raw_url=preview, raw=raw, progress=p, acts=[])
        task.progress = p
        task.events.append(payload)
        _notify(task)


def finish(state: SimState, task: SimTask) -> None:
    """Register the result image and emit the final payload."""
    with state.lock:
        if task.done or task.aborted:
            return
        cfg = state.config
        assert task.recipe is not None and task.kind is not None
        image_id = state.ids.image_id()
        r = task.result
        rec = SimImage(image_id=image_id, task_id=task.id, kind=task.kind,
                          actions=actions.ACTIONS_AFTER[task.kind], raw=r["raw"], thumb=r["thumb"],
                          cell=r["cell"], recipe=task.recipe, text=r["text"], urls=r["urls"],
                          base_single=r.get("base_single"), secret=state.url_secret())
        state.images[image_id] = rec
        url = cdn.image_url(task.base_url, rec)
        payload = image_payload(task, image_url=f"{url}?width={rec.thumb[0]}&height={rec.thumb[1]}",
                                size=rec.thumb, image_id=image_id, raw_url=url, raw=rec.raw, progress=100,
                                acts=list(rec.actions))
        if task.request.get("split_images") is True and rec.kind == Kind.GRID:
            payload["sub_image_urls"] = [cdn.tile_url(task.base_url, rec, k) for k in range(4)]
        if cfg.include_trace_in_success:
            payload["trace_id"] = task.trace_id
        task.image_id = image_id
        task.final = payload
        task.progress = 100
        task.status, task.finished_at = "succeeded", time.time()
        task.events.append(payload)
        _notify(task)
        state.keep(task, rec)


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
